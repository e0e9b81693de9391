"""Reads for the API: querysets shaped for a page of output in a constant number of queries.

Balances and the fully-paid rule come from billing.selectors; this module only adds what a page needs
(prefetches, and the export readiness of a whole page of payments in one query).
"""

from collections.abc import Iterable

from django.db.models import Count, Prefetch, QuerySet

from billing.models import Customer, Invoice, InvoiceLine, Job, Payment, PaymentApplication, Refund
from billing.money import ZERO
from billing.selectors import invoice_with_balances, payment_export_readiness_map, payment_with_amounts
from quickbooks_export.models import ExportBatchItem, InvoiceExportHold


def customer_list() -> QuerySet[Customer]:
    return Customer.objects.select_related("business_unit")


def job_list() -> QuerySet[Job]:
    """Jobs with their job type and unit (both named in every answer): one query per page."""
    return Job.objects.select_related("job_type", "business_unit")


def invoice_list() -> QuerySet[Invoice]:
    """Invoices with total / amount_paid / open_balance, their job and their lines: 2 queries per page."""
    return invoice_with_balances(Invoice.objects.select_related("job", "tax_rate", "business_unit")).prefetch_related(
        Prefetch("lines", queryset=InvoiceLine.objects.order_by("position", "id"))
    )


def invoice_get(*, number: str) -> Invoice | None:
    return invoice_list().filter(number=number).first()


def payment_list() -> QuerySet[Payment]:
    """Payments with their amounts, applications (with invoice numbers) and refunds: 3 queries per page."""
    return payment_with_amounts(Payment.objects.select_related("business_unit")).prefetch_related(
        Prefetch("applications", queryset=PaymentApplication.objects.select_related("invoice").order_by("id")),
        Prefetch(
            "refunds", queryset=Refund.objects.select_related("application__invoice", "manual_item").order_by("id")
        ),
    )


def payments_attach_readiness(payments: Iterable[Payment]) -> list[Payment]:
    """Set `export_readiness` (exportable, held_reason) on each payment, in one query for all of them."""
    payments = list(payments)
    readiness = payment_export_readiness_map(payment_ids=[payment.pk for payment in payments])
    on_hold = [p.pk for p in payments if p.export_status == Payment.ExportStatus.ON_HOLD]
    holds: dict[int, tuple[str, str]] = {}
    if on_hold:  # one more query, only when the page shows payments on hold
        rows = InvoiceExportHold.objects.filter(
            state=InvoiceExportHold.State.OPEN, invoice__applications__payment_id__in=on_hold
        ).values_list("invoice__applications__payment_id", "reason", "message")
        for payment_id, reason, message in rows:
            holds.setdefault(payment_id, (reason, message))
    for payment in payments:
        payment.export_readiness = readiness[payment.pk]
        payment.export_hold_reason, payment.export_hold_message = holds.get(payment.pk, ("", ""))
    return payments


def payment_get(*, payment_id: int) -> Payment | None:
    payment = payment_list().filter(pk=payment_id).first()
    if payment is not None:
        payments_attach_readiness([payment])
    return payment


def payment_as_recorded(payment: Payment) -> Payment:
    """A payment billing.services.payment_record just returned, shaped like payment_get's (amounts, applications,
    refunds, export readiness) from what the service already holds: no query. A new payment has no refund and is not
    exported (so not on hold); its applications and the fully-paid rule over its invoices come from the service,
    which computed them under the invoices' row locks. tests/api/test_payments.py checks the answer equals a GET."""
    applications = payment.applications_recorded
    applied = sum((application.amount for application in applications), ZERO)
    payment.gross_applied = payment.amount_applied = applied
    payment.amount_refunded = payment.amount_netted = ZERO
    payment.unapplied_credit = payment.amount - applied
    payment.export_hold_reason = payment.export_hold_message = ""
    # Django's own shape for prefetched rows (what prefetch_related leaves): payment.applications.all() and
    # payment.refunds.all() answer from these lists without a query.
    payment._prefetched_objects_cache = {
        "applications": _rows(PaymentApplication.objects.filter(payment=payment), applications),
        "refunds": _rows(Refund.objects.none(), []),
    }
    return payment


def _rows(queryset: QuerySet, rows: list) -> QuerySet:
    queryset._result_cache = list(rows)
    queryset._prefetch_done = True
    return queryset


def export_batches_attach_counts(batches: Iterable) -> list:
    """Set `counts` (total, done and one per outcome, as quickbooks_export.selectors.export_batch_counts) on each
    batch of a page, in one query for all of them."""
    batches = list(batches)
    outcomes = ExportBatchItem.Outcome.values
    counts = {batch.pk: dict.fromkeys(outcomes, 0) for batch in batches}
    rows = (
        ExportBatchItem.objects.filter(batch_id__in=list(counts))
        .values("batch_id", "outcome")
        .annotate(n=Count("id"))
        .order_by()
    )
    for row in rows:
        counts[row["batch_id"]][row["outcome"]] = row["n"]
    for batch in batches:
        batch_counts = counts[batch.pk]
        batch_counts["total"] = sum(batch_counts[outcome] for outcome in outcomes)
        batch_counts["done"] = batch_counts["total"] - batch_counts[ExportBatchItem.Outcome.PENDING]
        batch.counts = batch_counts
    return batches
