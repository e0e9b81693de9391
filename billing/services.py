"""Every write to the billing domain. Each service validates first and changes nothing when it refuses.

Row locks keep money consistent when people and API clients act at once: a service that changes what is paid on
an invoice locks the payment row first (if it exists), then the invoice rows in id order, so two payments recorded
at the same moment can never over-apply an invoice, and no two services wait on each other in a circle.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from fieldsync.exceptions import ApplicationError, ConflictError

from .models import (
    Customer,
    Invoice,
    InvoiceLine,
    Job,
    ManualHandlingItem,
    Payment,
    PaymentApplication,
    PaymentExportTransition,
    Refund,
    TaxRate,
)
from .money import ZERO, check_currency, format_money, parse_amount, quantize
from .selectors import invoice_get_with_balances, payment_with_amounts

ExportStatus = Payment.ExportStatus

# The only moves a payment's export status may make. The export engine drives them; people can mark a payment as
# exported by hand or exclude it. EXPORTED and EXPORTED_MANUALLY are final: nothing is ever exported twice.
EXPORT_TRANSITIONS: dict[str, frozenset[str]] = {
    ExportStatus.NOT_EXPORTED: frozenset({ExportStatus.QUEUED, ExportStatus.EXPORTED_MANUALLY, ExportStatus.EXCLUDED}),
    # QUEUED -> NOT_EXPORTED: found held when the worker picked it up.
    ExportStatus.QUEUED: frozenset({ExportStatus.EXPORTING, ExportStatus.NOT_EXPORTED, ExportStatus.FAILED}),
    # EXPORTING -> QUEUED: a retryable failure waiting for its next attempt, or a stale claim recovered.
    # EXPORTING -> ON_HOLD: QuickBooks' invoice does not match ours, so none of its payments is posted.
    ExportStatus.EXPORTING: frozenset(
        {ExportStatus.EXPORTED, ExportStatus.FAILED, ExportStatus.QUEUED, ExportStatus.ON_HOLD}
    ),
    # ON_HOLD -> NOT_EXPORTED: the hold was released ("Check again" found it fixed, or the invoice was unlinked).
    ExportStatus.ON_HOLD: frozenset({ExportStatus.NOT_EXPORTED, ExportStatus.EXPORTED_MANUALLY, ExportStatus.EXCLUDED}),
    ExportStatus.FAILED: frozenset({ExportStatus.QUEUED, ExportStatus.EXPORTED_MANUALLY, ExportStatus.EXCLUDED}),
    ExportStatus.EXCLUDED: frozenset({ExportStatus.NOT_EXPORTED}),
    ExportStatus.EXPORTED: frozenset(),
    ExportStatus.EXPORTED_MANUALLY: frozenset(),
}

# A refund of a payment in one of these states may already be in QuickBooks: a person must handle it there.
EXPORT_STATUSES_IN_QUICKBOOKS = frozenset(
    {ExportStatus.EXPORTING, ExportStatus.EXPORTED, ExportStatus.EXPORTED_MANUALLY}
)
# Applying a payment changes what QuickBooks would receive, so only payments not yet on their way may change.
EXPORT_STATUSES_EDITABLE = frozenset(
    {ExportStatus.NOT_EXPORTED, ExportStatus.FAILED, ExportStatus.EXCLUDED, ExportStatus.ON_HOLD}
)


def _full_clean(instance) -> None:
    try:
        instance.full_clean()
    except ValidationError as exc:
        raise ApplicationError(
            "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items()),
            code="invalid",
            extra=exc.message_dict,
        ) from None


# --- Customers and jobs -------------------------------------------------------------------------------------------


def customer_create(
    *,
    display_name: str,
    company_name: str = "",
    email: str = "",
    phone: str = "",
    billing_line1: str = "",
    billing_line2: str = "",
    billing_city: str = "",
    billing_region: str = "",
    billing_postal_code: str = "",
    billing_country: str = "US",
) -> Customer:
    customer = Customer(
        display_name=display_name.strip(),
        company_name=company_name.strip(),
        email=email.strip().lower(),
        phone=phone.strip(),
        billing_line1=billing_line1,
        billing_line2=billing_line2,
        billing_city=billing_city,
        billing_region=billing_region,
        billing_postal_code=billing_postal_code,
        billing_country=billing_country,
    )
    _full_clean(customer)
    customer.save()
    return customer


def job_create(
    *,
    customer: Customer,
    number: str,
    title: str,
    service_address: str = "",
    scheduled_on: date | None = None,
    completed_on: date | None = None,
    status: str = Job.Status.SCHEDULED,
) -> Job:
    job = Job(
        customer=customer,
        number=number.strip(),
        title=title.strip(),
        service_address=service_address,
        scheduled_on=scheduled_on,
        completed_on=completed_on,
        status=status,
    )
    _full_clean(job)
    job.save()
    return job


# --- Invoices -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LineInput:
    service_name: str
    unit_price: Decimal | str
    quantity: Decimal | str = "1"
    description: str = ""
    taxable: bool = True


def tax_rate_create(*, name: str, percentage: Decimal | str) -> TaxRate:
    try:
        value = Decimal(str(percentage))
    except ArithmeticError:
        value = None
    if isinstance(percentage, float) or value is None or not value.is_finite() or not (0 <= value <= 100):
        raise ApplicationError(
            f'A tax rate is a percentage from 0 to 100 written as text (e.g. "10.25"), not {percentage!r}.',
            code="invalid_tax_rate",
        )
    rate = TaxRate(name=name.strip(), percentage=value)
    _full_clean(rate)
    rate.save()
    return rate


def invoice_tax_compute(*, lines: Iterable[InvoiceLine], rate: TaxRate) -> Decimal:
    """The tax of an invoice at `rate`: each taxable line's amount times the percentage, rounded half up to the cent,
    then added up. Line by line, not on the subtotal, because QuickBooks Online computes tax that way ("QuickBooks
    Online will always calculate line-by-line", Intuit staff on QuickBooks Community; docs/quickbooks_sales_tax.md
    [N]) and its total must equal ours to the cent; outside the US it takes no override."""
    return sum((quantize(line.amount * rate.percentage / Decimal(100)) for line in lines if line.taxable), ZERO)


def _invoice_tax_refresh(invoice: Invoice) -> None:
    if invoice.tax_rate_id is None:
        return
    invoice.sales_tax = invoice_tax_compute(lines=invoice.lines.all(), rate=invoice.tax_rate)
    invoice.save(update_fields=["sales_tax"])


@transaction.atomic
def invoice_create(
    *,
    customer: Customer,
    number: str,
    lines: Iterable[LineInput] = (),
    job: Job | None = None,
    issued_on: date | None = None,
    due_on: date | None = None,
    currency: str | None = None,
    sales_tax: Decimal | str = "0.00",
    tax_rate: TaxRate | None = None,
    memo: str = "",
) -> Invoice:
    """Create a draft invoice with its lines. Refuses another customer's job, a wrong currency, bad amounts.

    Tax: either `tax_rate` (the tax is computed from the taxable lines, see invoice_tax_compute) or a `sales_tax`
    amount (as before rates existed), not both."""
    if job is not None and job.customer_id != customer.pk:
        raise ApplicationError(f"Job {job.number} belongs to {job.customer}, not to {customer}.", code="wrong_customer")
    if due_on and issued_on and due_on < issued_on:
        raise ApplicationError("The due date cannot be before the issue date.", code="invalid_dates")
    if tax_rate is not None and parse_amount(sales_tax, field="sales_tax", allow_zero=True) != ZERO:
        raise ApplicationError(
            f"Give either a tax rate or a sales tax amount, not both: with {tax_rate.name} the tax is computed from "
            "the taxable lines.",
            code="tax_rate_and_amount",
        )
    if tax_rate is not None and not tax_rate.active:
        raise ApplicationError(f"The tax rate {tax_rate.name} is no longer in use.", code="tax_rate_inactive")
    invoice = Invoice(
        customer=customer,
        job=job,
        number=number.strip(),
        issued_on=issued_on,
        due_on=due_on,
        currency=check_currency(currency),
        sales_tax=parse_amount(sales_tax, field="sales_tax", allow_zero=True),
        tax_rate=tax_rate,
        memo=memo,
        status=Invoice.Status.DRAFT,
    )
    _full_clean(invoice)
    invoice.save()
    for line in lines:
        invoice_line_add(invoice=invoice, **line.__dict__)
    return invoice


@transaction.atomic
def invoice_line_add(
    *, invoice: Invoice, service_name: str, unit_price, quantity="1", description: str = "", taxable: bool = True
) -> InvoiceLine:
    if invoice.status != Invoice.Status.DRAFT:
        raise ApplicationError(
            f"{invoice.number} is {invoice.get_status_display().lower()}; only draft invoices can change.",
            code="invoice_not_draft",
        )
    quantity = parse_amount(quantity, field="quantity")
    unit_price = parse_amount(unit_price, field="unit_price", allow_zero=True)
    line = InvoiceLine(
        invoice=invoice,
        position=invoice.lines.count(),
        service_name=service_name.strip(),
        description=description,
        quantity=quantity,
        unit_price=unit_price,
        amount=quantize(quantity * unit_price),
        taxable=bool(taxable),
    )
    _full_clean(line)
    line.save()
    _invoice_tax_refresh(invoice)
    return line


def _lock_invoices(invoice_ids: Iterable[int]) -> dict[int, Invoice]:
    """Lock invoice rows in id order (one order everywhere: no deadlocks)."""
    locked = Invoice.objects.select_for_update().filter(pk__in=sorted(set(invoice_ids))).order_by("pk")
    return {invoice.pk: invoice for invoice in locked}


@transaction.atomic
def invoice_issue(*, invoice: Invoice, issued_on: date | None = None, due_on: date | None = None) -> Invoice:
    """Draft → open. The invoice needs at least one line and a total above zero."""
    invoice = _lock_invoices([invoice.pk])[invoice.pk]
    if invoice.status != Invoice.Status.DRAFT:
        raise ConflictError(
            f"{invoice.number} is already {invoice.get_status_display().lower()}.", code="invoice_not_draft"
        )
    balances = invoice_get_with_balances(invoice_id=invoice.pk)
    if not invoice.lines.exists():
        raise ApplicationError(f"{invoice.number} has no lines; add what was sold first.", code="invoice_empty")
    if balances.total <= 0:
        raise ApplicationError(f"{invoice.number} totals {format_money(balances.total)}.", code="invoice_zero")
    invoice.issued_on = issued_on or invoice.issued_on or timezone.localdate()
    invoice.due_on = due_on or invoice.due_on
    if invoice.due_on and invoice.due_on < invoice.issued_on:
        raise ApplicationError("The due date cannot be before the issue date.", code="invalid_dates")
    invoice.status = Invoice.Status.OPEN
    invoice.save(update_fields=["issued_on", "due_on", "status"])
    return invoice


@transaction.atomic
def invoice_void(*, invoice: Invoice) -> Invoice:
    """Void an invoice nobody has paid. Payments applied to it must be refunded first: nothing is deleted."""
    invoice = _lock_invoices([invoice.pk])[invoice.pk]
    if invoice.status == Invoice.Status.VOID:
        raise ConflictError(f"{invoice.number} is already void.", code="invoice_void")
    balances = invoice_get_with_balances(invoice_id=invoice.pk)
    if balances.amount_paid > 0:
        raise ApplicationError(
            f"{invoice.number} has {format_money(balances.amount_paid, invoice.currency)} paid on it; "
            "refund those payments before voiding it.",
            code="invoice_has_payments",
        )
    invoice.status = Invoice.Status.VOID
    invoice.voided_at = timezone.now()
    invoice.save(update_fields=["status", "voided_at"])
    return invoice


def _invoice_sync_paid_status(invoice: Invoice) -> None:
    """OPEN <-> PAID follows the balance. The caller holds the invoice's row lock."""
    if invoice.status not in (Invoice.Status.OPEN, Invoice.Status.PAID):
        return
    open_balance = invoice_get_with_balances(invoice_id=invoice.pk).open_balance
    status = Invoice.Status.PAID if open_balance <= 0 else Invoice.Status.OPEN
    if status != invoice.status:
        invoice.status = status
        invoice.save(update_fields=["status"])


# --- Payments -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApplicationInput:
    invoice: Invoice
    amount: Decimal | str


def _apply(*, payment: Payment, invoice: Invoice, amount: Decimal, available: Decimal) -> PaymentApplication:
    """Apply `amount` of a locked payment to a locked invoice. `available` is the payment's unapplied credit."""
    if invoice.customer_id != payment.customer_id:
        raise ApplicationError(
            f"{invoice.number} belongs to another customer ({invoice.customer}); a payment from "
            f"{payment.customer} can only pay that customer's invoices.",
            code="wrong_customer",
        )
    if invoice.status in (Invoice.Status.DRAFT, Invoice.Status.VOID):
        raise ApplicationError(
            f"{invoice.number} is {invoice.get_status_display().lower()}; payments apply only to issued invoices.",
            code="invoice_not_open",
        )
    if invoice.currency != payment.currency:
        raise ApplicationError(f"{invoice.number} is in {invoice.currency}.", code="currency_mismatch")
    open_balance = invoice_get_with_balances(invoice_id=invoice.pk).open_balance
    if amount > open_balance:
        raise ApplicationError(
            f"{format_money(amount, invoice.currency)} is more than the {format_money(open_balance, invoice.currency)} "
            f"open on {invoice.number}.",
            code="over_application",
            extra={"invoice": invoice.number, "open_balance": f"{open_balance:.2f}"},
        )
    if amount > available:
        raise ApplicationError(
            f"{format_money(amount, payment.currency)} is more than the {format_money(available, payment.currency)} "
            "of this payment left to apply.",
            code="over_application",
            extra={"unapplied": f"{available:.2f}"},
        )
    application, created = PaymentApplication.objects.get_or_create(
        payment=payment, invoice=invoice, defaults={"amount": amount}
    )
    if not created:
        application.amount += amount
        application.save(update_fields=["amount"])
    _invoice_sync_paid_status(invoice)
    return application


@transaction.atomic
def payment_record(
    *,
    customer: Customer,
    amount: Decimal | str,
    method: str,
    received_on: date,
    reference: str = "",
    currency: str | None = None,
    memo: str = "",
    applications: Iterable[ApplicationInput] = (),
) -> Payment:
    """Record money received and apply it to invoices, all or nothing. What is not applied is unapplied credit."""
    applications = list(applications)
    if method not in Payment.Method.values:
        raise ApplicationError(
            f"Unknown payment method {method!r}; use one of {', '.join(Payment.Method.values)}.",
            code="invalid_method",
        )
    amount = parse_amount(amount)
    parsed = [(item.invoice, parse_amount(item.amount, field="application amount")) for item in applications]
    invoice_numbers = [invoice.number for invoice, _ in parsed]
    if len(set(invoice_numbers)) != len(invoice_numbers):
        raise ApplicationError("An invoice appears twice in the applications.", code="duplicate_invoice")
    total_applied = sum((value for _, value in parsed), ZERO)
    if total_applied > amount:
        raise ApplicationError(
            f"The applications add up to {format_money(total_applied)}, more than the payment of "
            f"{format_money(amount)}.",
            code="over_application",
        )
    payment = Payment(
        customer=customer,
        amount=amount,
        currency=check_currency(currency),
        method=method,
        reference=reference.strip(),
        received_on=received_on,
        memo=memo,
    )
    _full_clean(payment)
    payment.save()
    locked = _lock_invoices(invoice.pk for invoice, _ in parsed)
    available = amount
    for invoice, value in parsed:
        _apply(payment=payment, invoice=locked[invoice.pk], amount=value, available=available)
        available -= value
    return payment


def _lock_payment(payment: Payment) -> Payment:
    return Payment.objects.select_for_update().select_related("customer").get(pk=payment.pk)


@transaction.atomic
def payment_apply(*, payment: Payment, invoice: Invoice, amount: Decimal | str) -> PaymentApplication:
    """Apply part of a payment's unapplied credit to an invoice of the same customer."""
    amount = parse_amount(amount)
    payment = _lock_payment(payment)
    if payment.export_status not in EXPORT_STATUSES_EDITABLE:
        raise ConflictError(
            f"Payment #{payment.pk} is {payment.get_export_status_display().lower()}; "
            "its applications can no longer change here.",
            code="payment_in_export",
        )
    invoice = _lock_invoices([invoice.pk])[invoice.pk]
    available = payment_with_amounts(Payment.objects.filter(pk=payment.pk)).get().unapplied_credit
    return _apply(payment=payment, invoice=invoice, amount=amount, available=available)


# --- Refunds ------------------------------------------------------------------------------------------------------


def _choose_refund_source(*, payment: Payment, amount: Decimal, invoice: Invoice | None) -> PaymentApplication | None:
    """Which application a refund comes out of; None means the payment's unapplied credit."""
    applications = list(payment.applications.select_related("invoice"))
    if invoice is not None:
        for application in applications:
            if application.invoice_id == invoice.pk:
                return application
        raise ApplicationError(
            f"Payment #{payment.pk} is not applied to {invoice.number}.", code="not_applied_to_invoice"
        )
    credit = payment_with_amounts(Payment.objects.filter(pk=payment.pk)).get().unapplied_credit
    if amount <= credit:
        return None
    if len(applications) == 1:
        return applications[0]
    numbers = ", ".join(application.invoice.number for application in applications)
    raise ApplicationError(
        f"Payment #{payment.pk} is split across {numbers}; say which invoice the refund is for.",
        code="refund_invoice_required",
    )


@transaction.atomic
def refund_record(
    *,
    payment: Payment,
    amount: Decimal | str,
    reason: str,
    refunded_on: date,
    method: str,
    invoice: Invoice | None = None,
    user=None,
) -> Refund:
    """Record money given back.

    A refund re-opens the balance of the invoice it comes out of, so a payment not yet exported is held again.
    A refund of a payment that is (or may already be) in QuickBooks raises a ManualHandlingItem instead of
    changing QuickBooks behind anyone's back.
    """
    amount = parse_amount(amount)
    if not reason.strip():
        raise ApplicationError("Say why the money is refunded.", code="reason_required", extra={"reason": "required"})
    if method not in Refund.Method.values:
        raise ApplicationError(f"Unknown refund method {method!r}.", code="invalid_method")
    payment = _lock_payment(payment)
    source = _choose_refund_source(payment=payment, amount=amount, invoice=invoice)
    locked_invoice = _lock_invoices([source.invoice_id])[source.invoice_id] if source is not None else None

    amounts = payment_with_amounts(Payment.objects.filter(pk=payment.pk)).get()
    remaining = payment.amount - amounts.amount_refunded
    if amount > remaining:
        raise ApplicationError(
            f"{format_money(amount, payment.currency)} is more than the {format_money(remaining, payment.currency)} "
            f"left of payment #{payment.pk}.",
            code="refund_exceeds_payment",
            extra={"remaining": f"{remaining:.2f}"},
        )
    if source is not None:
        left_on_application = source.amount - sum((r.amount for r in source.refunds.all()), ZERO)
        if amount > left_on_application:
            raise ApplicationError(
                f"{format_money(amount, payment.currency)} is more than the "
                f"{format_money(left_on_application, payment.currency)} of this payment applied to "
                f"{source.invoice.number}.",
                code="refund_exceeds_application",
            )
    elif amount > amounts.unapplied_credit:
        raise ApplicationError(
            f"{format_money(amount)} is more than this payment's unapplied credit.",
            code="refund_exceeds_credit",
        )

    refund = Refund(
        payment=payment,
        application=source,
        amount=amount,
        reason=reason.strip(),
        refunded_on=refunded_on,
        method=method,
        created_by=user,
    )
    _full_clean(refund)
    refund.save()
    if locked_invoice is not None:
        _invoice_sync_paid_status(locked_invoice)
    if payment.export_status in EXPORT_STATUSES_IN_QUICKBOOKS:
        _manual_item_for_refund(payment=payment, refund=refund)
    return refund


def _manual_item_for_refund(*, payment: Payment, refund: Refund) -> ManualHandlingItem:
    money = format_money(refund.amount, payment.currency)
    where = (
        f"QuickBooks payment {payment.export_reference}"
        if payment.export_reference
        else "the payment in QuickBooks (it was entered by hand)"
    )
    if payment.export_status == ExportStatus.EXPORTING:
        where += " — the refund was recorded while the payment was being exported; check it arrived"
    reference = f", reference {payment.reference}" if payment.reference else ""
    instructions = (
        f"Record a refund of {money} to {payment.customer} in QuickBooks (a Refund Receipt dated "
        f"{refund.refunded_on:%Y-%m-%d}, paid by {refund.get_method_display().lower()}), against {where}: "
        f"{format_money(payment.amount, payment.currency)} received {payment.received_on:%Y-%m-%d}"
        f"{reference}. Reason given: {refund.reason}"
    )
    return ManualHandlingItem.objects.create(
        kind=ManualHandlingItem.Kind.REFUND_OF_EXPORTED_PAYMENT,
        customer=payment.customer,
        payment=payment,
        refund=refund,
        amount=refund.amount,
        quickbooks_reference=payment.export_reference,
        instructions=instructions,
    )


@transaction.atomic
def manual_item_mark_handled(*, item: ManualHandlingItem, user, note: str) -> ManualHandlingItem:
    """Close a manual-handling item with a note saying what was done. Who and when are recorded."""
    if not note.strip():
        raise ApplicationError("Add a note saying what was done in QuickBooks.", code="note_required")
    item = ManualHandlingItem.objects.select_for_update().get(pk=item.pk)
    if item.status == ManualHandlingItem.Status.HANDLED:
        raise ConflictError(
            f"Already marked handled by {item.handled_by} on {item.handled_at:%Y-%m-%d %H:%M}.",
            code="already_handled",
        )
    item.status = ManualHandlingItem.Status.HANDLED
    item.handled_by = user
    item.handled_at = timezone.now()
    item.handled_note = note.strip()
    item.save(update_fields=["status", "handled_by", "handled_at", "handled_note"])
    return item


# --- Export status ------------------------------------------------------------------------------------------------


class IllegalExportTransition(ConflictError):
    code = "illegal_export_transition"


@transaction.atomic
def payment_export_status_transition(
    *,
    payment_id: int,
    to_status: str,
    expected_from: Iterable[str] | None = None,
    note: str = "",
    user=None,
    export_reference: str | None = None,
) -> Payment:
    """Move a payment's export status, under its row lock, and write the history row.

    `expected_from` makes the move a compare-and-set: the export engine claims a payment with
    expected_from={QUEUED}, so of two workers holding the same task only one wins; the other gets
    IllegalExportTransition and does nothing. Illegal moves (anything not in EXPORT_TRANSITIONS) are refused.
    """
    payment = Payment.objects.select_for_update().get(pk=payment_id)
    current = payment.export_status
    if expected_from is not None and current not in set(expected_from):
        raise IllegalExportTransition(
            f"Payment #{payment_id} is {payment.get_export_status_display().lower()}, not "
            f"{' or '.join(sorted(ExportStatus(s).label.lower() for s in expected_from))}.",
            extra={"current": current},
        )
    if to_status not in EXPORT_TRANSITIONS[current]:
        raise IllegalExportTransition(
            f"Payment #{payment_id} cannot go from {ExportStatus(current).label.lower()} to "
            f"{ExportStatus(to_status).label.lower()}.",
            extra={"current": current},
        )
    payment.export_status = to_status
    payment.export_status_changed_at = timezone.now()
    fields = ["export_status", "export_status_changed_at"]
    if export_reference is not None:
        payment.export_reference = export_reference
        fields.append("export_reference")
    payment.save(update_fields=fields)
    PaymentExportTransition.objects.create(
        payment=payment, from_status=current, to_status=to_status, note=note[:500], by=user
    )
    return payment


@transaction.atomic
def payment_export_status_bulk_transition(
    *, payment_ids: Iterable[int], to_status: str, expected_from: Iterable[str], note: str = "", user=None
) -> list[int]:
    """Move every payment of `payment_ids` that is in one of `expected_from` to `to_status`; return the ids moved.

    The compare-and-set form of payment_export_status_transition for thousands of payments at once: rows are locked,
    only legal moves are made, history rows are written, and payments in any other state are left alone (the caller
    learns which by the ids returned).
    """
    expected_from = set(expected_from)
    for status in expected_from:
        if to_status not in EXPORT_TRANSITIONS[status]:
            raise IllegalExportTransition(
                f"Payments cannot go from {ExportStatus(status).label.lower()} "
                f"to {ExportStatus(to_status).label.lower()}."
            )
    payment_ids = list(payment_ids)
    now = timezone.now()
    moved: list[tuple[int, str]] = []
    for start in range(0, len(payment_ids), 2000):  # stay under SQLite's bound-parameter limit
        chunk = payment_ids[start : start + 2000]
        rows = list(
            Payment.objects.select_for_update()
            .filter(pk__in=chunk, export_status__in=expected_from)
            .order_by("pk")
            .values_list("pk", "export_status")
        )
        Payment.objects.filter(pk__in=[pk for pk, _ in rows]).update(
            export_status=to_status, export_status_changed_at=now
        )
        moved.extend(rows)
    PaymentExportTransition.objects.bulk_create(
        [
            PaymentExportTransition(payment_id=pk, from_status=status, to_status=to_status, note=note[:500], by=user)
            for pk, status in moved
        ],
        batch_size=2000,
    )
    return [pk for pk, _ in moved]
