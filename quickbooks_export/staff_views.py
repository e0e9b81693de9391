"""The staff pages office people export payments from: Payments (the home page), a payment, a batch's progress, the
export log, and what needs handling by hand in QuickBooks.

Views stay thin: they parse input, call one export service or read through selectors, and shape rows for the
templates (money is formatted here with billing.money.format_money, so templates never format numbers). Every page
needs a signed-in user; every export action needs `quickbooks_export.export_payments`, and the buttons for it are
only shown to people who have it. Pages read a constant number of queries whatever their size.
"""

from dataclasses import dataclass
from decimal import Decimal

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from billing import selectors as billing_selectors
from billing.forms import ManualItemHandledForm, RefundForm
from billing.models import Customer, Invoice, ManualHandlingItem, Payment
from billing.money import format_money
from billing.selectors import (
    ExportReadiness,
    InvoiceState,
    business_unit_for_request,
    in_business_unit,
    invoice_get_with_balances,
    payment_export_readiness_map,
    payment_with_amounts,
)
from billing.services import QUICKBOOKS_HELP
from fieldsync.exceptions import ApplicationError
from quickbooks_desktop import routing as export_routing
from quickbooks_export import holds, refund_recording
from quickbooks_export import mappings as mapping_services
from quickbooks_export import selectors as export_selectors
from quickbooks_export import services as export_services
from quickbooks_export.errors import QuickBooksError
from quickbooks_export.filters import PaymentFilter
from quickbooks_export.history import payment_history
from quickbooks_export.models import (
    ExportBatch,
    ExportBatchItem,
    InvoiceExportHold,
    QuickBooksMapping,
    QuickBooksTaxCodeMapping,
)

EXPORT_PERMISSION = "quickbooks_export.export_payments"
REFUND_PERMISSION = "billing.add_refund"
HANDLE_PERMISSION = "billing.change_manualhandlingitem"
export_required = permission_required(EXPORT_PERMISSION, raise_exception=True)
# Reading needs the model's view permission too: a signed-in account without it (a technician's, say) sees no
# payments, amounts or QuickBooks errors, only a 403.
view_payments_required = permission_required("billing.view_payment", raise_exception=True)
view_exports_required = permission_required("quickbooks_export.view_exportbatch", raise_exception=True)
view_manual_items_required = permission_required("billing.view_manualhandlingitem", raise_exception=True)

ExportStatus = Payment.ExportStatus
Outcome = ExportBatchItem.Outcome
# A failed item still worth retrying: its payment is still failed (a later retry may have exported it), or it is an
# invoice exported on its own that no later export put in QuickBooks.
RETRYABLE = Q(payment__export_status=ExportStatus.FAILED) | (
    Q(invoice__isnull=False)
    & ~Exists(
        ExportBatchItem.objects.filter(
            invoice=OuterRef("invoice"), id__gt=OuterRef("id"), outcome__in=[Outcome.CREATED, Outcome.LINKED]
        )
    )
)
# Payments already in QuickBooks: shown, never selectable for export.
IN_QUICKBOOKS = (ExportStatus.EXPORTED, ExportStatus.EXPORTED_MANUALLY, ExportStatus.IN_QUICKBOOKS)

PAGE_SIZES = (25, 50, 100, 200, 500)
DEFAULT_PAGE_SIZE = 50
# The filter fields of the Payments page, carried along by pagination links and by "select all matching".
FILTER_FIELDS = ("q", "status", "method", "received_from", "received_to", "amount_min", "amount_max", "customer")
# How the outcomes of a batch read on its page, in the order they are shown.
OUTCOME_LABELS = {
    Outcome.CREATED: "Created",
    Outcome.UPDATED: "Updated",
    Outcome.LINKED: "Already in QuickBooks",
    Outcome.SKIPPED: "Skipped",
    Outcome.FAILED: "Failed",
    Outcome.HELD: "On hold",
    Outcome.PENDING: "Waiting",
}


# --- presenting ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Badge:
    label: str
    tone: str  # ok, warn, bad, info, done, muted: a CSS class of .badge
    detail: str = ""


def export_status_badge(payment: Payment, readiness: ExportReadiness | None, failure: str = "") -> Badge:
    """What a payment's export status means to a person, with the reason when it is held or failed."""
    status = payment.export_status
    if status == ExportStatus.NOT_EXPORTED:
        if readiness is not None and not readiness.exportable:
            return Badge("Held", "warn", readiness.held_reason.removeprefix("Held: "))
        return Badge("Ready to export", "ok")
    if status == ExportStatus.QUEUED:
        return Badge("Queued", "info", "Waiting for the export to reach it.")
    if status == ExportStatus.EXPORTING:
        return Badge("Exporting", "info", "Being sent to QuickBooks now.")
    if status == ExportStatus.EXPORTED:
        detail = f"QuickBooks payment {payment.export_reference}" if payment.export_reference else ""
        return Badge("Exported", "done", detail)
    if status == ExportStatus.EXPORTED_MANUALLY:
        return Badge("Exported by hand", "done", "Entered in QuickBooks by a person.")
    if status == ExportStatus.IN_QUICKBOOKS:
        return Badge(
            "Recorded in QuickBooks",
            "done",
            f"Keyed in QuickBooks (payment {payment.export_reference}) and brought into FieldSync; never exported.",
        )
    if status == ExportStatus.FAILED:
        return Badge("Failed", "bad", failure or "QuickBooks refused it; open the payment to see why and retry.")
    if status == ExportStatus.ON_HOLD:
        return Badge("On hold", "warn", "QuickBooks' invoice does not match ours; open the payment to decide.")
    return Badge("Do not export", "muted", "Excluded from exports.")


@dataclass(frozen=True)
class PaymentRow:
    payment: Payment
    invoices: tuple[InvoiceState, ...]
    amount: str
    badge: Badge
    can_select: bool


def _latest_failures(payment_ids: list[int]) -> dict[int, str]:
    """The most recent failure message of each payment, in one query."""
    if not payment_ids:
        return {}
    failures: dict[int, str] = {}
    rows = (
        ExportBatchItem.objects.filter(payment_id__in=payment_ids, outcome=Outcome.FAILED)
        .order_by("payment_id", "-id")
        .values_list("payment_id", "message")
    )
    for payment_id, message in rows:
        failures.setdefault(payment_id, message)
    return failures


def payment_rows(payments: list[Payment]) -> list[PaymentRow]:
    """Rows for a page of payments (customer selected): two queries whatever the number of payments."""
    readiness = payment_export_readiness_map(payment_ids=[p.pk for p in payments])
    failures = _latest_failures([p.pk for p in payments if p.export_status == ExportStatus.FAILED])
    return [
        PaymentRow(
            payment=payment,
            invoices=readiness[payment.pk].invoices,
            amount=format_money(payment.amount, payment.currency),
            badge=export_status_badge(payment, readiness[payment.pk], failures.get(payment.pk, "")),
            can_select=payment.export_status not in IN_QUICKBOOKS,
        )
        for payment in payments
    ]


def _positive_int(value: str | None, default: int) -> int:
    try:
        number = int(value or default)
    except ValueError:
        return default
    return number if number > 0 else default


def _back(request: HttpRequest, default: str) -> str:
    """Where a form asked to go back to, if it is a page of this site."""
    back = request.POST.get("back", "")
    allowed = url_has_allowed_host_and_scheme(
        back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return back if back and allowed else default


def _filter_query(data) -> str:
    """The active filters as a query string (no page, no size)."""
    query = data.copy()
    for key in list(query.keys()):
        if key not in FILTER_FIELDS or not any(v.strip() for v in query.getlist(key)):
            del query[key]
    return query.urlencode()


# --- Payments -----------------------------------------------------------------------------------------------------


def _payment_filter(request: HttpRequest, data) -> PaymentFilter:
    # An empty query string means "no filter" (an unbound FilterSet), so the first visit shows every payment (of the
    # business unit the pages act on).
    bound = {key: data.get(key) for key in FILTER_FIELDS if (data.get(key) or "").strip()}
    return PaymentFilter(bound or None, queryset=in_business_unit(Payment.objects, request))


@login_required
@view_payments_required
@require_GET
def payment_list(request: HttpRequest) -> HttpResponse:
    """The bulk page: filter, tick, export. The page never counts the matches itself (over 100,000 payments a count
    under the fully-paid rule costs most of a second); `payment_count` fills the number in once the page is shown."""
    payment_filter = _payment_filter(request, request.GET)
    size = _positive_int(request.GET.get("size"), DEFAULT_PAGE_SIZE)
    size = size if size in PAGE_SIZES else DEFAULT_PAGE_SIZE
    page = _positive_int(request.GET.get("page"), 1)
    offset = (page - 1) * size
    queryset = payment_filter.qs.select_related("customer").order_by("-received_on", "-id")
    payments = list(queryset[offset : offset + size + 1])  # one more than a page says whether there is a next page
    has_next = len(payments) > size
    payments = payments[:size]
    customer_id = payment_filter.form.cleaned_data.get("customer") if payment_filter.is_bound else None
    customer_name = (
        Customer.objects.filter(pk=int(customer_id)).values_list("display_name", flat=True).first()
        if customer_id
        else None
    )
    filter_query = _filter_query(request.GET)
    context = {
        "nav": "payments",
        "filter": payment_filter,
        "rows": payment_rows(payments),
        "page": page,
        "size": size,
        "page_sizes": PAGE_SIZES,
        "first_index": offset + 1,
        "last_index": offset + len(payments),
        "has_next": has_next,
        "has_previous": page > 1,
        "filter_query": filter_query,
        "filtered": bool(filter_query),
        "filter_values": [(key, request.GET.get(key)) for key in FILTER_FIELDS if request.GET.get(key, "").strip()],
        "customer_name": customer_name,
        "without_customer_query": _filter_query(_without(request.GET, "customer")),
        "can_export": request.user.has_perm(EXPORT_PERMISSION),
    }
    return render(request, "exports/payment_list.html", context)


def _without(data, key: str):
    query = data.copy()
    query.pop(key, None)
    return query


@login_required
@view_payments_required
@require_GET
def payment_count(request: HttpRequest) -> HttpResponse:
    """How many payments match the filters, and how many of them can be selected (those not in QuickBooks yet), in
    one query: a fragment the Payments page loads once it is shown."""
    counts = _payment_filter(request, request.GET).qs.aggregate(
        count=Count("pk"), selectable=Count("pk", filter=~Q(export_status__in=IN_QUICKBOOKS))
    )
    return render(request, "exports/_payment_count.html", counts)


@login_required
@export_required
@require_POST
def payments_export(request: HttpRequest) -> HttpResponse:
    """Export Payments: start a batch of the ticked payments, or of every payment matching the filters."""
    filter_query = _filter_query(request.POST)
    back = reverse("exports:payment_list") + (f"?{filter_query}" if filter_query else "")
    if request.POST.get("scope") == "matching":
        payment_filter = _payment_filter(request, request.POST)
        described = payment_filter.describe()
        # As on the page, where they have no checkbox: payments already in QuickBooks are never selected.
        payments = payment_filter.qs.exclude(export_status__in=IN_QUICKBOOKS)
        selection = f"Every payment matching {described}" if described else "Every payment"
    else:
        ids = sorted({int(value) for value in request.POST.getlist("payment") if value.isdigit()})
        if not ids:
            messages.error(request, "Tick the payments to export first (or choose “select all matching”).")
            return redirect(back)
        if not _any_ready(ids):
            which = "the ticked payment is" if len(ids) == 1 else f"all {len(ids)} ticked payments are"
            messages.error(
                request,
                f"Nothing was exported: {which} held or already on their way (see the reason under each). "
                "Record what is still open on their invoices first, then export them.",
            )
            return redirect(back)
        payments = in_business_unit(Payment.objects.filter(pk__in=ids), request)  # another unit's: not selectable
        selection = f"{len(ids)} selected payment{'s' if len(ids) != 1 else ''}"
    try:
        batch = export_routing.export_batch_start(
            payments=payments, selection=selection, user=request.user, source=ExportBatch.Source.PAGE
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect(back)
    return redirect("exports:batch_detail", batch_id=batch.pk)


def _any_ready(payment_ids: list[int]) -> bool:
    """Whether an export of these payments would send anything: one of them not yet sent and not held. Two
    queries for a page of ticks (an export of only held payments would be an empty batch that says "Done")."""
    if len(payment_ids) > 2000:
        return True  # a bulk selection: the batch reports what it skipped
    sendable = list(
        Payment.objects.filter(
            pk__in=payment_ids, export_status__in=(ExportStatus.NOT_EXPORTED, ExportStatus.FAILED)
        ).values_list("pk", flat=True)
    )
    readiness = payment_export_readiness_map(payment_ids=sendable) if sendable else {}
    return any(state.exportable for state in readiness.values())


# --- One payment --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AppliedInvoice:
    number: str
    status: str
    applied: str
    total: str
    paid: str
    open_balance: str
    hold_reason: str | None
    # "Record the remaining $50.00": the payment form filled in for what is still open on an issued invoice.
    record_remaining_url: str = ""


def _export_panel_context(request: HttpRequest, payment: Payment, *, batch: ExportBatch | None = None) -> dict:
    """Everything the QuickBooks card of a payment shows: status, why, link, actions, the batch in flight, history."""
    readiness = payment_export_readiness_map(payment_ids=[payment.pk])[payment.pk]
    failure = _latest_failures([payment.pk]).get(payment.pk, "") if payment.export_status == ExportStatus.FAILED else ""
    item = None
    counts = None
    if batch is not None:
        item = batch.items.filter(payment_id=payment.pk).first()
        counts = export_selectors.export_batch_counts(batch_id=batch.pk)
    in_flight = payment.export_status in (ExportStatus.QUEUED, ExportStatus.EXPORTING) or (
        batch is not None and batch.status != ExportBatch.Status.FINISHED
    )
    return {
        "payment": payment,
        "readiness": readiness,
        "badge": export_status_badge(payment, readiness, failure),
        "quickbooks_link": export_selectors.payment_quickbooks_link(payment=payment),
        "history": payment_history(payment_id=payment.pk),
        "record_remaining": _record_remaining_links(request, payment, readiness),
        "batch": batch,
        "batch_counts": counts,
        "item": item,
        "in_flight": in_flight,
        "can_export": request.user.has_perm(EXPORT_PERMISSION),
        # Open QuickBooks holds of the invoices it pays (one query, only for a payment on hold).
        "holds": list(
            InvoiceExportHold.objects.filter(
                state=InvoiceExportHold.State.OPEN, invoice__applications__payment_id=payment.pk
            ).select_related("invoice")
        )
        if payment.export_status == ExportStatus.ON_HOLD
        else [],
    }


def _record_remaining_links(request: HttpRequest, payment: Payment, readiness: ExportReadiness) -> list[tuple]:
    """("Record the remaining $50.00 on INV-1043", url of the payment form filled in) for each issued invoice of a
    held payment that still has money open, for people who may record payments."""
    if payment.export_status != ExportStatus.NOT_EXPORTED or not request.user.has_perm("billing.add_payment"):
        return []
    form = reverse("records:payment_create", args=[payment.customer_id])
    return [
        (
            f"Record the remaining {format_money(state.open_balance, state.currency)} on {state.number}",
            f"{form}?invoice={state.invoice_id}&amount={state.open_balance:.2f}",
        )
        for state in readiness.invoices
        if state.status == Invoice.Status.OPEN and state.open_balance > 0
    ]


def _payment_or_404(request: HttpRequest, payment_id: int) -> Payment:
    return get_object_or_404(in_business_unit(Payment.objects.select_related("customer"), request), pk=payment_id)


def _batches(request: HttpRequest) -> QuerySet[ExportBatch]:
    return ExportBatch.objects.filter(export_selectors.in_business_unit_companies(request))  # not another unit's


@login_required
@view_payments_required
@require_GET
def payment_detail(request: HttpRequest, payment_id: int) -> HttpResponse:
    payments = in_business_unit(Payment.objects.select_related("customer"), request)
    payment = get_object_or_404(payment_with_amounts(payments), pk=payment_id)
    panel = _export_panel_context(request, payment)
    states = {invoice.invoice_id: invoice for invoice in panel["readiness"].invoices}
    applied = []
    can_record = request.user.has_perm("billing.add_payment")
    for application in payment.applications.select_related("invoice").order_by("invoice__number"):
        state = states.get(application.invoice_id)
        if state is None:  # reversed in full: no longer part of what goes to QuickBooks, so not in the rule's list
            balances = invoice_get_with_balances(invoice_id=application.invoice_id)
            state = InvoiceState(
                invoice_id=balances.pk,
                number=balances.number,
                status=balances.status,
                total=balances.total,
                amount_paid=balances.amount_paid,
                open_balance=balances.open_balance,
                currency=balances.currency,
            )
        currency = application.invoice.currency
        applied.append(
            AppliedInvoice(
                number=state.number,
                status=application.invoice.get_status_display(),
                applied=format_money(application.amount, currency),
                total=format_money(state.total, currency),
                paid=format_money(state.amount_paid, currency),
                open_balance=format_money(state.open_balance, currency),
                hold_reason=state.hold_reason,
                record_remaining_url=(
                    reverse("records:payment_create", args=[payment.customer_id])
                    + f"?invoice={application.invoice_id}&amount={state.open_balance:.2f}"
                    if can_record and state.status == Invoice.Status.OPEN and state.open_balance > 0
                    else ""
                ),
            )
        )
    refunds = [
        (refund, format_money(refund.amount, payment.currency))
        for refund in payment.refunds.select_related("application__invoice", "created_by", "manual_item")
    ]
    can_refund = request.user.has_perm(REFUND_PERMISSION)
    context = {
        **panel,
        "nav": "payments",
        "amounts": {
            "amount": format_money(payment.amount, payment.currency),
            "applied": format_money(payment.amount_applied, payment.currency),
            "refunded": format_money(payment.amount_refunded, payment.currency),
            "credit": format_money(payment.unapplied_credit, payment.currency),
            "has_credit": payment.unapplied_credit != Decimal("0"),
            "has_refunds": payment.amount_refunded != Decimal("0"),
        },
        "applied_invoices": applied,
        "refunds": refunds,
        "can_refund": can_refund,
        "refund_form": RefundForm(payment=payment) if can_refund else None,
    }
    return render(request, "exports/payment_detail.html", context)


@dataclass(frozen=True)
class PartnerRow:
    payment: Payment
    amount: str
    invoices: str


def _partners_sent_along(payment: Payment) -> list[PartnerRow]:
    """The other payments a single export of `payment` would send with it (those sharing an invoice with it,
    transitively, and not yet in QuickBooks), in three queries."""
    ids = set(billing_selectors.payment_ids_with_invoice_partners(payment_ids=[payment.pk])) - {payment.pk}
    if not ids:
        return []
    others = (
        Payment.objects.filter(pk__in=ids)
        .exclude(export_status__in=IN_QUICKBOOKS)
        .prefetch_related("applications__invoice")
        .order_by("received_on", "pk")
    )
    return [
        PartnerRow(
            payment=other,
            amount=format_money(other.amount, other.currency),
            invoices=", ".join(sorted(a.invoice.number for a in other.applications.all())),
        )
        for other in others
    ]


def _render_panel(request: HttpRequest, payment: Payment, *, batch=None, error: str = ""):
    context = _export_panel_context(request, payment, batch=batch)
    context["error"] = error
    return render(request, "exports/_export_panel.html", context)


@login_required
@view_payments_required
@require_GET
def payment_export_panel(request: HttpRequest, payment_id: int) -> HttpResponse:
    """The QuickBooks card of a payment; the page polls it while an export of the payment is under way."""
    payment = _payment_or_404(request, payment_id)
    batch_id = request.GET.get("batch", "")
    batch = get_object_or_404(_batches(request), pk=int(batch_id)) if batch_id.isdigit() else None
    return _render_panel(request, payment, batch=batch)


def _panel_or_redirect(request: HttpRequest, payment: Payment, action) -> HttpResponse:
    """Run an export action on one payment; show the result in place (htmx) or on the payment's page."""
    try:
        batch = action()
    except ApplicationError as exc:
        if request.htmx:
            return _render_panel(request, payment, error=exc.message)
        messages.error(request, exc.message)
        return redirect("exports:payment_detail", payment_id=payment.pk)
    if request.htmx:
        payment.refresh_from_db()
        return _render_panel(request, payment, batch=batch if isinstance(batch, ExportBatch) else None)
    return redirect("exports:payment_detail", payment_id=payment.pk)


@login_required
@export_required
@require_POST
def payment_export(request: HttpRequest, payment_id: int) -> HttpResponse:
    """Export to QuickBooks: a batch of this one payment (and any payment sharing its invoices).

    When other payments would go too (an invoice goes to QuickBooks with all its payments), nothing is sent until
    the person has seen which ones and confirmed (`confirmed=1`)."""
    payment = _payment_or_404(request, payment_id)
    partners = _partners_sent_along(payment)
    if partners and request.POST.get("confirmed") != "1":
        context = _export_panel_context(request, payment)
        context["confirm_partners"] = partners
        if request.htmx:
            return render(request, "exports/_export_panel.html", context)
        names = ", ".join(f"{row.amount} received {row.payment.received_on:%b %-d, %Y}" for row in partners)
        messages.warning(
            request,
            f"Nothing was sent yet: exporting this payment also sends {names}. Press Export to QuickBooks to confirm.",
        )
        return redirect("exports:payment_detail", payment_id=payment.pk)
    return _panel_or_redirect(
        request,
        payment,
        lambda: export_routing.export_payment_start(
            payment_id=payment.pk, user=request.user, source=ExportBatch.Source.PAGE
        ),
    )


@login_required
@export_required
@require_POST
def invoice_export(request: HttpRequest, invoice_id: int) -> HttpResponse:
    """Export to QuickBooks an invoice with nothing to pay ($0.00, no payment), on its own; else say why not."""
    invoice = get_object_or_404(in_business_unit(Invoice.objects, request), pk=invoice_id)
    try:
        batch = export_routing.export_invoice_start(
            invoice_id=invoice.pk, user=request.user, source=ExportBatch.Source.PAGE
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect(_back(request, reverse("records:invoice_detail", kwargs={"invoice_id": invoice.pk})))
    return redirect("exports:batch_detail", batch_id=batch.pk)


@login_required
@export_required
@require_POST
def payment_retry(request: HttpRequest, payment_id: int) -> HttpResponse:
    payment = _payment_or_404(request, payment_id)
    if request.POST.get("next") == "batch":
        try:
            batch = export_routing.export_payment_retry(payment_id=payment.pk, user=request.user)
        except ApplicationError as exc:
            messages.error(request, exc.message)
            return redirect(_back(request, reverse("exports:log")))
        return redirect("exports:batch_detail", batch_id=batch.pk)
    return _panel_or_redirect(
        request, payment, lambda: export_routing.export_payment_retry(payment_id=payment.pk, user=request.user)
    )


HOLD_ACTIONS = {
    "check-again": (holds.invoice_hold_check_again, "QuickBooks matches now: its payments are being exported."),
    "update-quickbooks": (
        holds.invoice_hold_update_quickbooks,
        "The QuickBooks invoice now matches FieldSync: its payments are being exported.",
    ),
    "unlink": (holds.invoice_hold_unlink, "Unlinked: the next export links or creates the invoice afresh."),
}


@login_required
@export_required
@require_POST
def payment_hold_action(request: HttpRequest, payment_id: int, hold_id: int, action: str) -> HttpResponse:
    """Check again, Update the QuickBooks invoice to match FieldSync, or Unlink, for one invoice hold."""
    payment = _payment_or_404(request, payment_id)
    if action not in HOLD_ACTIONS:
        raise Http404("No such action.")
    # The hold must be one of this payment's invoices' (a hold id from another payment's page is not this page's).
    if not InvoiceExportHold.objects.filter(pk=hold_id, invoice__applications__payment_id=payment.pk).exists():
        raise Http404("No such hold on this payment.")
    # Changing the QuickBooks invoice or its link needs what the links page needs for the same change.
    if action != "check-again" and not request.user.has_perm(MANAGE_MAPPINGS_PERMISSION):
        raise PermissionDenied
    service, done = HOLD_ACTIONS[action]
    try:
        service(hold_id=hold_id, user=request.user)
    except (ApplicationError, QuickBooksError) as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, done)
    return redirect("exports:payment_detail", payment_id=payment.pk)


def _status_action(request: HttpRequest, payment_id: int, action, done: str, *, needs_note: bool) -> HttpResponse:
    """Mark exported by hand, exclude, include: a plain form post, then back to the payment with what happened."""
    payment = _payment_or_404(request, payment_id)
    note = request.POST.get("note", "").strip()
    try:
        if needs_note and not note:
            raise ApplicationError("Add a note saying why, so the next person knows.")
        action(payment_id=payment.pk, user=request.user, **({"note": note} if needs_note else {}))
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, done)
    return redirect("exports:payment_detail", payment_id=payment.pk)


@login_required
@export_required
@require_POST
def payment_mark_exported(request: HttpRequest, payment_id: int) -> HttpResponse:
    return _status_action(
        request,
        payment_id,
        export_services.payment_mark_exported_manually,
        "Marked as exported by hand: FieldSync will not send it to QuickBooks.",
        needs_note=True,
    )


@login_required
@export_required
@require_POST
def payment_exclude(request: HttpRequest, payment_id: int) -> HttpResponse:
    return _status_action(
        request,
        payment_id,
        export_services.payment_exclude,
        "Excluded: this payment will not be exported until someone includes it again.",
        needs_note=True,
    )


@login_required
@export_required
@require_POST
def payment_include(request: HttpRequest, payment_id: int) -> HttpResponse:
    return _status_action(
        request,
        payment_id,
        export_services.payment_include,
        "Included again: the payment can be exported once its invoices are fully paid.",
        needs_note=False,
    )


# --- Batches ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutcomeCount:
    outcome: str
    label: str
    count: int


def _progress_context(batch: ExportBatch) -> dict:
    counts = export_selectors.export_batch_counts(batch_id=batch.pk)
    total = counts["total"]
    done = counts["done"]
    finished = batch.status == ExportBatch.Status.FINISHED
    retryable = (
        ExportBatchItem.objects.filter(RETRYABLE, batch=batch, outcome=Outcome.FAILED).count()
        if finished and counts[Outcome.FAILED]
        else 0
    )
    return {
        "batch": batch,
        "counts": counts,
        "retryable": retryable,
        "finished": finished,
        "percent": 100 if finished and not total else (round(100 * done / total) if total else 0),
        "outcomes": [
            OutcomeCount(outcome, label, counts[outcome])
            for outcome, label in OUTCOME_LABELS.items()
            if outcome != Outcome.PENDING and (counts[outcome] or outcome in (Outcome.CREATED, Outcome.FAILED))
        ],
    }


@login_required
@view_exports_required
@require_GET
def batch_detail(request: HttpRequest, batch_id: int) -> HttpResponse:
    batch = get_object_or_404(_batches(request).select_related("created_by"), pk=batch_id)
    context = {**_progress_context(batch), "nav": "log", "can_export": request.user.has_perm(EXPORT_PERMISSION)}
    return render(request, "exports/batch_detail.html", context)


@login_required
@view_exports_required
@require_GET
def batch_progress(request: HttpRequest, batch_id: int) -> HttpResponse:
    """The progress fragment the batch page polls every second until the batch is finished."""
    batch = get_object_or_404(_batches(request), pk=batch_id)
    context = {**_progress_context(batch), "can_export": request.user.has_perm(EXPORT_PERMISSION)}
    return render(request, "exports/_batch_progress.html", context)


@dataclass(frozen=True)
class ItemRow:
    item: ExportBatchItem
    amount: str
    label: str


def _item_amount(item: ExportBatchItem) -> str:
    """The payment's amount, or $0.00 for an invoice exported on its own (only one with nothing to pay goes so)."""
    if item.payment_id is None:
        return format_money(Decimal("0.00"), item.invoice.currency)
    return format_money(item.payment.amount, item.payment.currency)


@login_required
@view_exports_required
@require_GET
def batch_items(request: HttpRequest, batch_id: int, outcome: str) -> HttpResponse:
    """The records of a batch with one outcome (or all), with the reason or QuickBooks' error in plain words."""
    batch = get_object_or_404(_batches(request).select_related("created_by"), pk=batch_id)
    if outcome != "all" and outcome not in Outcome.values:
        raise Http404("No such outcome.")
    items = export_selectors.export_batch_items(batch_id=batch.pk, outcome=None if outcome == "all" else outcome)
    page = Paginator(items.order_by("id"), 100).get_page(request.GET.get("page"))
    rows = [
        ItemRow(item=item, amount=_item_amount(item), label=OUTCOME_LABELS[item.outcome]) for item in page.object_list
    ]
    context = {
        **_progress_context(batch),
        "nav": "log",
        "outcome": outcome,
        "outcome_label": "All records" if outcome == "all" else OUTCOME_LABELS[outcome],
        "rows": rows,
        "page_obj": page,
        "can_export": request.user.has_perm(EXPORT_PERMISSION),
    }
    return render(request, "exports/batch_items.html", context)


@login_required
@export_required
@require_POST
def batch_retry_failed(request: HttpRequest, batch_id: int) -> HttpResponse:
    batch = get_object_or_404(_batches(request), pk=batch_id)
    try:
        retry = export_routing.export_batch_retry_failed(batch_id=batch.pk, user=request.user)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect(_back(request, reverse("exports:batch_detail", kwargs={"batch_id": batch.pk})))
    return redirect("exports:batch_detail", batch_id=retry.pk)


# --- Export log ---------------------------------------------------------------------------------------------------


def _batches_with_counts(queryset: QuerySet[ExportBatch]) -> QuerySet[ExportBatch]:
    """A page of batches with their outcome counts, in one query (the counts are counts of items, never stored)."""
    return queryset.annotate(
        n_total=Count("items"),
        **{f"n_{outcome}": Count("items", filter=Q(items__outcome=outcome)) for outcome in Outcome.values},
        # Failed here and not exported since (a later retry may have): what "retry the failed" would send again.
        n_retryable=Count(
            "items",
            filter=Q(items__outcome=Outcome.FAILED)
            & (Q(items__payment__export_status=ExportStatus.FAILED) | Q(items__invoice__isnull=False)),
        ),
    )


CHANGES_SENT_DAYS = 30  # the export log's "Changes sent to QuickBooks": updates and voids per day, this far back


@login_required
@view_exports_required
@require_GET
def export_log(request: HttpRequest) -> HttpResponse:
    batches = Paginator(
        _batches_with_counts(_batches(request).select_related("created_by")).order_by("-created_at", "-id"), 25
    ).get_page(request.GET.get("page"))
    # Failed records whose payment is still failed (a later retry may have exported it), newest first.
    failed = []
    seen: set[int] = set()
    failed_items = (
        ExportBatchItem.objects.filter(RETRYABLE, outcome=Outcome.FAILED)
        .filter(  # the chosen unit's payments and invoices (an item names one or the other)
            Q(payment__business_unit__in=billing_selectors.business_unit_chosen(request))
            | Q(invoice__business_unit__in=billing_selectors.business_unit_chosen(request))
        )
        .select_related("payment__customer", "invoice__customer", "batch")
        .order_by("-id")[:100]
    )
    seen_invoices: set[int] = set()
    for item in failed_items:
        if item.payment_id is None and item.invoice_id not in seen_invoices:
            seen_invoices.add(item.invoice_id)
            failed.append(ItemRow(item=item, amount=_item_amount(item), label=""))
        elif item.payment_id is not None and item.payment_id not in seen:
            seen.add(item.payment_id)
            failed.append(ItemRow(item=item, amount=_item_amount(item), label=""))
    context = {
        "nav": "log",
        "batches": batches,
        "failed": failed[:50],
        "changes_sent": export_selectors.changes_sent_by_day(days=CHANGES_SENT_DAYS),
        "changes_sent_days": CHANGES_SENT_DAYS,
        "can_export": request.user.has_perm(EXPORT_PERMISSION),
    }
    return render(request, "exports/export_log.html", context)


# --- Needs manual handling ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ManualItemRow:
    item: ManualHandlingItem
    amount: str
    payment_amount: str
    quickbooks_link: str | None
    form: ManualItemHandledForm | None
    # What QuickBooks needs, in a few words, and Intuit's help article for it.
    transaction: str = ""
    help_url: str = ""
    # "Record it in QuickBooks for me" is offered (the company allows it and the transaction is unambiguous).
    recordable: bool = False


QUICKBOOKS_TRANSACTION = {
    "no_longer_owed": "a Refund Receipt",
    "reversal": "a change to the payment (void it, or lower what it applies to the invoice)",
    "unapplied_credit": "a Check or Expense to Accounts Receivable, linked to the payment's credit",
}


@login_required
@view_manual_items_required
@require_GET
def manual_items(request: HttpRequest) -> HttpResponse:
    """Refunds of payments already in QuickBooks, with exactly what to do there; handled ones stay, with the note."""
    can_handle = request.user.has_perm(HANDLE_PERMISSION)
    can_record = (
        can_handle
        and request.user.has_perm(EXPORT_PERMISSION)
        and refund_recording.record_refunds_allowed(business_unit_id=business_unit_for_request(request).pk)
    )
    related = ("customer", "payment", "refund__application__invoice", "handled_by")
    open_items = (
        in_business_unit(ManualHandlingItem.objects, request, field="payment__business_unit")
        .filter(status=ManualHandlingItem.Status.OPEN)
        .select_related(*related)
    )
    handled = Paginator(
        in_business_unit(ManualHandlingItem.objects, request, field="payment__business_unit")
        .filter(status=ManualHandlingItem.Status.HANDLED)
        .select_related(*related)
        .order_by("-handled_at", "-id"),
        25,
    ).get_page(request.GET.get("page"))

    open_list = list(open_items.order_by("created_at", "id"))
    handled_list = list(handled.object_list)
    links = export_selectors.payment_quickbooks_links(payments=[item.payment for item in open_list + handled_list])

    def row(item: ManualHandlingItem, *, form: bool) -> ManualItemRow:
        return ManualItemRow(
            item=item,
            amount=format_money(item.amount, item.payment.currency),
            payment_amount=format_money(item.payment.amount, item.payment.currency),
            quickbooks_link=links[item.payment_id],
            form=ManualItemHandledForm(auto_id=f"item{item.pk}_%s") if form and can_handle else None,
            transaction=QUICKBOOKS_TRANSACTION.get(item.refund.kind, "") if item.refund else "",
            help_url=QUICKBOOKS_HELP.get(item.refund.kind, "") if item.refund else "",
            recordable=form and can_record and not refund_recording.refund_recording_blocker(item=item, allowed=True),
        )

    context = {
        "nav": "manual",
        "open_rows": [row(item, form=True) for item in open_list],
        "handled_rows": [row(item, form=False) for item in handled_list],
        "handled_page": handled,
        "can_handle": can_handle,
    }
    return render(request, "exports/manual_items.html", context)


@login_required
@permission_required(HANDLE_PERMISSION, raise_exception=True)
@permission_required(EXPORT_PERMISSION, raise_exception=True)
@require_POST
def manual_item_record(request: HttpRequest, item_id: int) -> HttpResponse:
    """“Record it in QuickBooks for me”: FieldSync posts the item's transaction once and marks it handled."""
    get_object_or_404(in_business_unit(ManualHandlingItem.objects, request, field="payment__business_unit"), pk=item_id)
    try:
        item = refund_recording.manual_item_record_in_quickbooks(item_id=item_id, user=request.user)
    except ApplicationError as exc:
        messages.error(request, f"Not recorded in QuickBooks: {exc.message}")
    else:
        if refund_recording.recorded_as_void(item):
            what = "the whole payment was reversed, so it was voided there (its invoices are open again)"
        else:
            what = f"refund of {format_money(item.amount, item.payment.currency)} to {item.customer}"
        messages.success(
            request, f"Recorded in QuickBooks (payment {item.handled_quickbooks_id}): {what}. Marked handled."
        )
    return redirect("exports:manual_items")


MANAGE_MAPPINGS_PERMISSION = "quickbooks_export.manage_quickbooks_connection"


@login_required
@view_exports_required
@require_GET
def mapping_list(request: HttpRequest) -> HttpResponse:
    """Every link between our customers, items, invoices, payments and QuickBooks records, stale ones first when
    asked; 50 a page, in four queries (count, page, customer names, invoice numbers)."""
    kind = request.GET.get("kind", "")
    of_unit = export_selectors.in_business_unit_companies(request)
    queryset = QuickBooksMapping.objects.filter(of_unit).order_by("kind", "local_key", "id")
    if kind in QuickBooksMapping.Kind.values:
        queryset = queryset.filter(kind=kind)
    if request.GET.get("stale"):
        queryset = queryset.exclude(stale_reason="")
    page = Paginator(queryset, 50).get_page(request.GET.get("page"))
    rows = list(page.object_list)
    labels = mapping_services.mapping_labels(rows)
    context = {
        "nav": "mappings",
        "page": page,
        "rows": [(m, labels[m.pk]) for m in rows],
        "kinds": QuickBooksMapping.Kind.choices,
        "kind": kind,
        "stale": bool(request.GET.get("stale")),
        "can_manage": request.user.has_perm(MANAGE_MAPPINGS_PERMISSION),
        # Tax codes are chosen on the QuickBooks page (from the company's live list); listed here too.
        "tax_code_mappings": list(
            QuickBooksTaxCodeMapping.objects.filter(of_unit).select_related("tax_rate").order_by("tax_rate__name")
        )
        if not kind
        else [],
    }
    return render(request, "exports/mappings.html", context)


@login_required
@permission_required(MANAGE_MAPPINGS_PERMISSION, raise_exception=True)
@require_POST
def mapping_action(request: HttpRequest, mapping_id: int, action: str) -> HttpResponse:
    """Unlink, link to a different QuickBooks record (`qbo_id`), or make the QuickBooks record active again."""
    of_unit = export_selectors.in_business_unit_companies(request)
    if QuickBooksMapping.objects.filter(pk=mapping_id).exclude(of_unit).exists():
        raise Http404("No such link.")  # another business unit's
    note = request.POST.get("note", "").strip()
    try:
        if action == "unlink":
            mapping_services.mapping_unlink(mapping_id=mapping_id, user=request.user, note=note)
            messages.success(request, "Unlinked: the next export links or creates it afresh.")
        elif action == "relink":
            mapping = mapping_services.mapping_relink(
                mapping_id=mapping_id, qbo_id=request.POST.get("qbo_id", ""), user=request.user, note=note
            )
            messages.success(request, f"Linked to QuickBooks record {mapping.qbo_id} ({mapping.qbo_name}).")
        elif action == "reactivate":
            mapping_services.mapping_reactivate(mapping_id=mapping_id, user=request.user)
            messages.success(request, "Made active again in QuickBooks.")
        else:
            raise Http404("No such action.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect(_back(request, reverse("exports:mappings")))
