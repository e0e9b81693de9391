"""Reads of the billing domain that need more than a filter: balances, and the fully-paid rule.

Balances are derived in SQL, never stored: total = lines + sales tax; paid = applications − refunds of those
applications; credited = credits on the invoice (refunds of money no longer owed); open balance = total − credited −
paid. The same annotations serve one invoice, a page of them, and the
payment-level exportability filter, so the numbers a person reads and the ones the export engine acts on agree.
"""

import decimal
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from django.db import connection
from django.db.models import (
    Case,
    DecimalField,
    Exists,
    ExpressionWrapper,
    F,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce, Round
from django.http import Http404

from .models import (
    BusinessUnit,
    Invoice,
    InvoiceCredit,
    InvoiceLine,
    JobType,
    ManualHandlingItem,
    Payment,
    PaymentApplication,
    Refund,
)
from .money import ZERO, format_money

_MONEY = DecimalField(max_digits=14, decimal_places=2)

# Invoices in these states never make a payment exportable, whatever their balance.
NOT_EXPORTABLE_INVOICE_STATUSES = (Invoice.Status.DRAFT, Invoice.Status.VOID)


def _sum_of(queryset: QuerySet, field: str, group_by: str) -> Coalesce:
    """A correlated SUM as an expression; 0.00 when there are no rows."""
    summed = queryset.order_by().values(group_by).annotate(total=Sum(field)).values("total")
    return Coalesce(Subquery(summed, output_field=_MONEY), Value(ZERO), output_field=_MONEY)


def _reversal_awaiting_quickbooks(invoice_ref) -> Exists:
    """A reversal of a payment on this invoice that QuickBooks does not know yet (its manual-handling item is open):
    QuickBooks still shows the reversed amount as paid, so a new payment there would over-apply the invoice."""
    return Exists(
        ManualHandlingItem.objects.filter(
            status=ManualHandlingItem.Status.OPEN,
            refund__kind=Refund.Kind.REVERSAL,
            refund__handling=Refund.Handling.QUICKBOOKS,
            refund__application__invoice=invoice_ref,
        )
    )


def invoice_with_balances(queryset: QuerySet[Invoice] | None = None) -> QuerySet[Invoice]:
    """Invoices annotated with `total`, `amount_paid`, `credited`, `open_balance` (Decimals) and
    `reversal_pending` (see _reversal_awaiting_quickbooks), in one query."""
    queryset = Invoice.objects.all() if queryset is None else queryset
    lines_total = _sum_of(InvoiceLine.objects.filter(invoice=OuterRef("pk")), "amount", "invoice")
    applied = _sum_of(PaymentApplication.objects.filter(invoice=OuterRef("pk")), "amount", "invoice")
    refunded = _sum_of(Refund.objects.filter(application__invoice=OuterRef("pk")), "amount", "application__invoice")
    credited = _sum_of(InvoiceCredit.objects.filter(invoice=OuterRef("pk")), "amount", "invoice")
    # Rounded to cents in SQL: SQLite adds decimals as binary floats, so 31 lines of 1.59 would sum to
    # 49.290000000000006 and leave a paid invoice "open" by a fraction of a cent. A no-op on PostgreSQL's numeric.
    return queryset.annotate(
        total=Round(ExpressionWrapper(lines_total + F("sales_tax"), output_field=_MONEY), 2, output_field=_MONEY),
        amount_paid=Round(ExpressionWrapper(applied - refunded, output_field=_MONEY), 2, output_field=_MONEY),
        credited=Round(credited, 2, output_field=_MONEY),
        reversal_pending=_reversal_awaiting_quickbooks(OuterRef("pk")),
    ).annotate(
        open_balance=Round(
            ExpressionWrapper(F("total") - F("credited") - F("amount_paid"), output_field=_MONEY),
            2,
            output_field=_MONEY,
        )
    )


def invoice_get_with_balances(*, invoice_id: int) -> Invoice:
    return invoice_with_balances().get(pk=invoice_id)


@dataclass(frozen=True)
class InvoiceBalances:
    """One invoice's balances as invoice_with_balances annotates them (same names, same Decimals)."""

    total: Decimal
    amount_paid: Decimal
    credited: Decimal
    open_balance: Decimal
    reversal_pending: bool


# invoice_with_balances for one invoice, written out once: building that annotated query costs Django several
# milliseconds of CPU on every call, and the payment path reads one invoice's balances per application. The same
# arithmetic in the same order (each part rounded to cents, the open balance from the rounded parts), so SQLite's
# binary-float sums round the same way; tests/billing/test_selectors.py compares the two. Placeholders in order: the
# open manual item's status, the reversal kind, the QuickBooks handling, the invoice id.
_INVOICE_BALANCES_SQL = """
SELECT b.total, b.amount_paid, b.credited, ROUND(b.total - b.credited - b.amount_paid, 2), b.reversal_pending
FROM (
    SELECT
        ROUND(COALESCE((SELECT SUM(l.amount) FROM billing_invoiceline l WHERE l.invoice_id = i.id), 0)
            + i.sales_tax, 2) AS total,
        ROUND(COALESCE((SELECT SUM(a.amount) FROM billing_paymentapplication a WHERE a.invoice_id = i.id), 0)
            - COALESCE((SELECT SUM(r.amount) FROM billing_refund r
                INNER JOIN billing_paymentapplication a ON r.application_id = a.id WHERE a.invoice_id = i.id), 0),
            2) AS amount_paid,
        ROUND(COALESCE((SELECT SUM(c.amount) FROM billing_invoicecredit c WHERE c.invoice_id = i.id), 0), 2)
            AS credited,
        EXISTS(SELECT 1 FROM billing_manualhandlingitem m INNER JOIN billing_refund r ON m.refund_id = r.id
            INNER JOIN billing_paymentapplication a ON r.application_id = a.id
            WHERE a.invoice_id = i.id AND m.status = %s AND r.kind = %s AND r.handling = %s) AS reversal_pending
    FROM billing_invoice i
    WHERE i.id = %s
) b
"""
# SQLite returns the rounded sums as floats (or integers): made Decimals as Django's SQLite backend makes them for an
# annotation (15 significant digits, no quantize), so both reads give the very same Decimal. PostgreSQL: numeric.
_decimal_from_sqlite = decimal.Context(prec=15).create_decimal_from_float


def _money_of(value) -> Decimal:
    return value if isinstance(value, Decimal) else _decimal_from_sqlite(value)


def invoice_balances(*, invoice_id: int) -> InvoiceBalances:
    """invoice_get_with_balances's numbers for one invoice, in one statement without building an ORM query (the
    payment path). Raises Invoice.DoesNotExist for an unknown id."""
    with connection.cursor() as cursor:
        cursor.execute(
            _INVOICE_BALANCES_SQL,
            [
                ManualHandlingItem.Status.OPEN.value,
                Refund.Kind.REVERSAL.value,
                Refund.Handling.QUICKBOOKS.value,
                invoice_id,
            ],
        )
        row = cursor.fetchone()
    if row is None:
        raise Invoice.DoesNotExist(f"No invoice has the id {invoice_id}.")
    total, amount_paid, credited, open_balance, reversal_pending = row
    return InvoiceBalances(
        total=_money_of(total),
        amount_paid=_money_of(amount_paid),
        credited=_money_of(credited),
        open_balance=_money_of(open_balance),
        reversal_pending=bool(reversal_pending),
    )


def invoice_filter_nothing_to_pay(queryset: QuerySet[Invoice] | None = None) -> QuerySet[Invoice]:
    """Issued invoices with a $0.00 total and no payment (warranty work): settled at issue, nothing to pay. They go
    to QuickBooks on their own, invoice-only; an invoice with payments goes with them (the fully-paid rule)."""
    return (
        invoice_with_balances(queryset)
        .filter(status=Invoice.Status.PAID, total=ZERO)
        .exclude(Exists(PaymentApplication.objects.filter(invoice=OuterRef("pk"))))
    )


def invoice_only_export_refusals(*, invoice_ids: Iterable[int]) -> dict[int, str]:
    """invoice id -> why it cannot go to QuickBooks on its own (no entry: it can), in words a person acts on."""
    invoices = invoice_with_balances(Invoice.objects.filter(pk__in=list(invoice_ids))).annotate(
        has_payments=Exists(PaymentApplication.objects.filter(invoice=OuterRef("pk")))
    )
    refusals = {}
    for invoice in invoices:
        if invoice.status in NOT_EXPORTABLE_INVOICE_STATUSES:
            refusals[invoice.pk] = f"{invoice.number} is {invoice.get_status_display().lower()}: nothing to export."
        elif invoice.total != ZERO:
            refusals[invoice.pk] = (
                f"{invoice.number} totals {format_money(invoice.total, invoice.currency)}: only an invoice with "
                "nothing to pay goes to QuickBooks on its own; this one goes with its payment once fully paid."
            )
        elif invoice.has_payments:
            refusals[invoice.pk] = f"{invoice.number} has payments: it goes to QuickBooks with them."
    return refusals


def payment_with_amounts(queryset: QuerySet[Payment] | None = None) -> QuerySet[Payment]:
    """Payments annotated with `amount_applied` (net of refunds of applications), `amount_refunded`,
    `unapplied_credit` (what is neither applied nor refunded) and `amount_netted` (the refunds the export takes out
    of what it posts: those recorded before the payment could be in QuickBooks)."""
    queryset = Payment.objects.all() if queryset is None else queryset
    applied = _sum_of(PaymentApplication.objects.filter(payment=OuterRef("pk")), "amount", "payment")
    refunded = _sum_of(Refund.objects.filter(payment=OuterRef("pk")), "amount", "payment")
    refunded_from_applications = _sum_of(
        Refund.objects.filter(payment=OuterRef("pk"), application__isnull=False), "amount", "payment"
    )
    netted = _sum_of(
        Refund.objects.filter(payment=OuterRef("pk"), handling=Refund.Handling.NETTED), "amount", "payment"
    )
    return queryset.annotate(
        gross_applied=applied,
        amount_refunded=refunded,
        amount_netted=netted,
        amount_applied=ExpressionWrapper(applied - refunded_from_applications, output_field=_MONEY),
        unapplied_credit=ExpressionWrapper(
            F("amount") - applied - (refunded - refunded_from_applications), output_field=_MONEY
        ),
    )


# --- The fully-paid rule ------------------------------------------------------------------------------------------
# A payment is exportable only when it is applied to at least one invoice and every invoice it is applied to is
# open or paid (not draft, not void), fully paid, and not waiting for a reversal to be entered in QuickBooks. Only
# live applications count: those with something left after the refunds the export nets out (an application
# reversed in full is dropped from what QuickBooks receives, so its invoice, even voided, holds nothing).
# The rule is written twice on purpose — as SQL for filtering
# a hundred thousand payments, and as Python that explains itself — right here, side by side, and a test checks
# they agree on every payment of the demo company.


def _netted_refunds_of(application_ref) -> Coalesce:
    """What the export takes out of an application: its reversals recorded before the payment reached QuickBooks.
    (The same rule as quickbooks_export.mappers.payment_net_applications.)"""
    return _sum_of(
        Refund.objects.filter(application=application_ref, kind=Refund.Kind.REVERSAL, handling=Refund.Handling.NETTED),
        "amount",
        "application",
    )


def _live_applications() -> QuerySet[PaymentApplication]:
    return PaymentApplication.objects.annotate(
        # Rounded like the balances: SQLite subtracts in binary floats (30.80 - 10.10 - 20.70 = 3.55e-15), and an
        # application reversed in full must come out as exactly 0 here, as in the Python twin and the mapper.
        live_amount=Round(
            ExpressionWrapper(F("amount") - _netted_refunds_of(OuterRef("pk")), output_field=_MONEY),
            2,
            output_field=_MONEY,
        )
    ).filter(live_amount__gt=0)


def _holding_invoices() -> QuerySet[Invoice]:
    """The invoices that hold their payments back: draft, void, not yet fully paid, or waiting for a reversal."""
    return invoice_with_balances().filter(
        Q(status__in=NOT_EXPORTABLE_INVOICE_STATUSES) | Q(open_balance__gt=0) | Q(reversal_pending=True)
    )


def payment_filter_exportable(queryset: QuerySet[Payment]) -> QuerySet[Payment]:
    """The payments of `queryset` that the fully-paid rule lets go to QuickBooks."""
    applied = _live_applications().filter(payment=OuterRef("pk"))
    holding = _holding_invoices().filter(
        Exists(_live_applications().filter(invoice=OuterRef("pk"), payment=OuterRef(OuterRef("pk"))))
    )
    return queryset.filter(Exists(applied), ~Exists(holding))


def payment_filter_held(queryset: QuerySet[Payment]) -> QuerySet[Payment]:
    """The payments of `queryset` that the fully-paid rule holds back: exactly those not exportable.

    Written as a correlated NOT EXISTS of the exportable filter (rather than an OR of two EXISTS) so PostgreSQL checks
    the rule row by row along the list's ordering index and stops after a page: 7 ms instead of 0.4 s for the first
    page of held payments among 100,000.
    """
    exportable = payment_filter_exportable(Payment.objects.filter(pk=OuterRef("pk")))
    return queryset.filter(~Exists(exportable))


@dataclass(frozen=True)
class InvoiceState:
    invoice_id: int
    number: str
    status: str
    total: Decimal
    amount_paid: Decimal
    open_balance: Decimal
    currency: str
    reversal_pending: bool = False

    @property
    def hold_reason(self) -> str | None:
        if self.status == Invoice.Status.DRAFT:
            return f"{self.number} is still a draft; issue it first"
        if self.status == Invoice.Status.VOID:
            return f"{self.number} is void"
        if self.open_balance > 0:
            return f"{self.number} still has {format_money(self.open_balance, self.currency)} open"
        if self.reversal_pending:
            return (
                f"{self.number} still shows paid in QuickBooks until the reversed payment is entered there "
                "(see Manual handling)"
            )
        return None


@dataclass(frozen=True)
class ExportReadiness:
    payment_id: int
    invoices: tuple[InvoiceState, ...]
    # Numbers of the invoices whose part of the payment was reversed in full (not sent to QuickBooks).
    reversed_in_full: tuple[str, ...] = ()

    @property
    def exportable(self) -> bool:
        return bool(self.invoices) and all(invoice.hold_reason is None for invoice in self.invoices)

    @property
    def held_reason(self) -> str:
        """Why the payment waits, in words a person reads; empty when it is exportable."""
        if not self.invoices and self.reversed_in_full:
            return (
                f"Held: what it paid on {', '.join(self.reversed_in_full)} was reversed in full; "
                "nothing is left to send to QuickBooks."
            )
        if not self.invoices:
            return "Held: not applied to any invoice yet; apply it to an invoice first."
        reasons = [invoice.hold_reason for invoice in self.invoices if invoice.hold_reason]
        return f"Held: {'; '.join(reasons)}." if reasons else ""


def payment_export_readiness_map(*, payment_ids: Iterable[int]) -> dict[int, ExportReadiness]:
    """The fully-paid rule for many payments at once: one query for up to 2,000 payments."""
    payment_ids = list(payment_ids)
    rows = []
    for chunk in _chunks(payment_ids):  # one query for a page; one per 2,000 payments for a bulk selection
        rows.extend(
            invoice_with_balances(Invoice.objects.filter(applications__payment_id__in=chunk))
            .annotate(
                payment_id=F("applications__payment_id"),
                live_amount=Round(  # rounded as in _live_applications, so both twins agree on SQLite
                    ExpressionWrapper(
                        F("applications__amount") - _netted_refunds_of(OuterRef("applications__pk")),
                        output_field=_MONEY,
                    ),
                    2,
                    output_field=_MONEY,
                ),
            )
            .values(
                "live_amount",
                "id",
                "number",
                "status",
                "total",
                "amount_paid",
                "open_balance",
                "currency",
                "payment_id",
                "reversal_pending",
            )
            .order_by("payment_id", "number")
        )
    by_payment: dict[int, list[InvoiceState]] = defaultdict(list)
    reversed_in_full: dict[int, list[str]] = defaultdict(list)
    for row in rows:
        if row["live_amount"] <= 0:  # reversed in full: dropped from what goes to QuickBooks, so holds nothing
            reversed_in_full[row["payment_id"]].append(row["number"])
            continue
        by_payment[row["payment_id"]].append(
            InvoiceState(
                invoice_id=row["id"],
                number=row["number"],
                status=row["status"],
                total=row["total"],
                amount_paid=row["amount_paid"],
                open_balance=row["open_balance"],
                currency=row["currency"],
                reversal_pending=row["reversal_pending"],
            )
        )
    return {
        pid: ExportReadiness(
            payment_id=pid,
            invoices=tuple(by_payment.get(pid, ())),
            reversed_in_full=tuple(reversed_in_full.get(pid, ())),
        )
        for pid in payment_ids
    }


def payment_export_readiness(*, payment_id: int) -> ExportReadiness:
    return payment_export_readiness_map(payment_ids=[payment_id])[payment_id]


def manual_items_open_count() -> int:
    return ManualHandlingItem.objects.filter(status=ManualHandlingItem.Status.OPEN).count()


def job_types_of_unit(*, business_unit) -> QuerySet[JobType]:
    """A unit's job types, those no longer offered too (their jobs keep them), by name."""
    return JobType.objects.filter(business_unit=business_unit).order_by("name", "pk")


def payments_for_export(*, payment_ids: Iterable[int]) -> list[Payment]:
    """Payments with everything QuickBooks needs, in a fixed number of queries: the customer, each application's
    invoice (with its lines, balances and job: its type picks the QuickBooks class / location) and the refunds of each
    application."""
    invoices = invoice_with_balances().select_related("tax_rate", "job").prefetch_related("lines")
    applications = PaymentApplication.objects.select_related(None).prefetch_related(
        Prefetch("invoice", queryset=invoices), "refunds"
    )
    return list(
        payment_with_amounts(Payment.objects.filter(pk__in=list(payment_ids)))
        .select_related("customer")
        .prefetch_related(Prefetch("applications", queryset=applications))
        .order_by("pk")
    )


def payment_ids_with_invoice_partners(*, payment_ids: Iterable[int]) -> list[int]:
    """The payments given plus every payment that shares an invoice with them, transitively (a split payment
    brings its other invoices' payments too): an invoice goes to QuickBooks with all of its payments."""
    found = set(payment_ids)
    frontier = set(found)
    while frontier:
        invoice_ids = set()
        for chunk in _chunks(sorted(frontier)):
            invoice_ids.update(
                PaymentApplication.objects.filter(payment_id__in=chunk).values_list("invoice_id", flat=True)
            )
        partners = set()
        for chunk in _chunks(sorted(invoice_ids)):
            partners.update(
                PaymentApplication.objects.filter(invoice_id__in=chunk).values_list("payment_id", flat=True)
            )
        frontier = partners - found
        found |= partners
    return sorted(found)


def _chunks(values: list, size: int = 2000):
    for start in range(0, len(values), size):
        yield values[start : start + size]


# --- Business units -------------------------------------------------------------------------------------------------

BUSINESS_UNIT_SESSION_KEY = "business_unit_id"


def business_units_visible(user) -> QuerySet[BusinessUnit]:
    """The units a staff user sees and acts on (a query to compose; none of its own): superusers every unit; while
    the installation has one unit, everybody that one (so it works as before units); else the units they are a
    member of. Permissions still say what they may do there."""
    if not getattr(user, "is_authenticated", False):
        return BusinessUnit.objects.none()
    units = BusinessUnit.objects.all()
    if user.is_superuser:
        return units
    the_only_one = ~Exists(BusinessUnit.objects.exclude(pk=OuterRef("pk")))
    member = Exists(BusinessUnit.members.through.objects.filter(businessunit_id=OuterRef("pk"), user_id=user.pk))
    return units.filter(the_only_one | member)


def business_unit_chosen(request) -> QuerySet:
    """The business unit the staff pages act on, as a query of its id (one row at most) to compose into the page's
    own queries, so it costs no query of its own: the visible unit chosen in this session, else the first visible by
    name (the only one, in an installation with one)."""
    chosen = getattr(request, "session", {}).get(BUSINESS_UNIT_SESSION_KEY)
    first = [Case(When(pk=chosen, then=Value(0)), default=Value(1))] if isinstance(chosen, int) else []
    return business_units_visible(request.user).order_by(*first, "name", "pk").values("pk")[:1]


def in_business_unit(queryset: QuerySet, request, *, field: str = "business_unit") -> QuerySet:
    """`queryset` narrowed to the unit the page acts on (no extra query): a record of another unit is not there."""
    return queryset.filter(**{f"{field}__in": business_unit_chosen(request)})


def business_unit_for_request(request) -> BusinessUnit:
    """The unit itself (see business_unit_chosen), for pages that show or act on it. One query, once per request.
    Raises Http404 when the user sees no unit."""
    cached = getattr(request, "_business_unit", None)
    if cached is not None:
        return cached
    unit = BusinessUnit.objects.filter(pk__in=business_unit_chosen(request)).first()
    if unit is None and not BusinessUnit.objects.exists():  # a database emptied after migrating
        from .services import business_unit_default  # services import this module

        unit = business_unit_default()
    if unit is None:
        raise Http404("You are not a member of any business unit.")
    request._business_unit = unit
    return unit
