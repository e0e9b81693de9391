"""Reads of the export engine's records for pages and the API."""

from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.db.models import CharField, Count, Exists, OuterRef, Q, QuerySet
from django.db.models.functions import Cast, TruncDate
from django.utils import timezone

from billing import selectors as billing_selectors
from billing.models import Invoice, Payment
from billing.selectors import business_unit_chosen

from .models import (
    ExportAttempt,
    ExportBatch,
    ExportBatchItem,
    QuickBooksConnection,
    QuickBooksMapping,
    QuickBooksRequest,
)

Outcome = ExportBatchItem.Outcome


def in_companies_of(units: QuerySet, *, field: str = "realm_id") -> Q:
    """A filter for rows keyed by company (batches, links, changes, undos, reconciliations) of `units` (a query of
    unit ids): their companies' rows, and those of no other unit's company (QuickBooks Desktop's, a company never
    connected), so with one unit every row. A subquery: no query of its own."""
    mine = QuickBooksConnection.objects.filter(business_unit__in=units).values("realm_id")
    others = QuickBooksConnection.objects.exclude(business_unit__in=units).values("realm_id")
    return Q(**{f"{field}__in": mine}) | ~Q(**{f"{field}__in": others})


def in_business_unit_companies(request, *, field: str = "realm_id") -> Q:
    """in_companies_of the business unit the staff pages act on."""
    return in_companies_of(business_unit_chosen(request), field=field)


def export_batch_counts(*, batch_id: int) -> dict[str, int]:
    """total, done, and one count per outcome (pending, created, updated, linked, skipped, failed), in one query."""
    counts = {outcome: 0 for outcome in Outcome.values}
    rows = ExportBatchItem.objects.filter(batch_id=batch_id).values("outcome").annotate(n=Count("id")).order_by()
    for row in rows:
        counts[row["outcome"]] = row["n"]
    counts["total"] = sum(counts[outcome] for outcome in Outcome.values)
    counts["done"] = counts["total"] - counts[Outcome.PENDING]
    return counts


def export_batch_items(*, batch_id: int, outcome: str | None = None) -> QuerySet[ExportBatchItem]:
    items = ExportBatchItem.objects.filter(batch_id=batch_id).select_related(
        "payment", "payment__customer", "invoice", "invoice__customer"
    )
    if outcome:
        items = items.filter(outcome=outcome)
    return items.order_by("id")


def invoices_to_export_alone(*, realm_id: str, never_tried: bool = False) -> QuerySet[Invoice]:
    """Invoices with nothing to pay (billing_selectors.invoice_filter_nothing_to_pay) that the company does not have
    yet and no export is working on; with `never_tried`, only those no export ever asked for (automatic export: a
    failed one waits for a person, like a failed payment)."""
    mapped = QuickBooksMapping.objects.filter(
        realm_id=realm_id,
        kind=QuickBooksMapping.Kind.INVOICE,
        local_key=Cast(OuterRef("pk"), output_field=CharField()),
    )
    asked = ExportBatchItem.objects.filter(invoice=OuterRef("pk"), batch__realm_id=realm_id)
    if not never_tried:
        asked = asked.filter(outcome=Outcome.PENDING)
    of_its_unit = QuickBooksConnection.objects.filter(is_current=True, realm_id=realm_id).values("business_unit")
    return (
        billing_selectors.invoice_filter_nothing_to_pay()
        .filter(business_unit__in=of_its_unit)  # the company's business unit's invoices: not another unit's books
        .exclude(Exists(mapped))
        .exclude(Exists(asked))
    )


def invoice_items_failed_waiting() -> QuerySet[ExportBatchItem]:
    """The latest failed record of each invoice exported on its own that no later export put in QuickBooks or
    tried again: what waits for a person."""
    later = ExportBatchItem.objects.filter(invoice=OuterRef("invoice"), id__gt=OuterRef("id"))
    return (
        ExportBatchItem.objects.filter(invoice__isnull=False, outcome=Outcome.FAILED)
        .exclude(Exists(later))
        .select_related("invoice__customer")
        .order_by("-id")
    )


def export_batch_list() -> QuerySet[ExportBatch]:
    return ExportBatch.objects.select_related("created_by").order_by("-created_at", "-id")


def payment_export_attempts(*, payment_id: int) -> QuerySet[ExportAttempt]:
    return ExportAttempt.objects.filter(payment_id=payment_id).order_by("-at", "-id")


def invoice_export_attempts(*, invoice_id: int) -> QuerySet[ExportAttempt]:
    """The calls made to QuickBooks for an invoice exported on its own."""
    return ExportAttempt.objects.filter(invoice_id=invoice_id).order_by("-at", "-id")


def payment_quickbooks_links(*, payments: Iterable[Payment]) -> dict[int, str | None]:
    """Where a person sees each payment in QuickBooks (None until exported), in at most one query: Intuit's web app
    for real companies, the sandbox's inspection page of the company for the local one."""
    # QuickBooks Online Ids are digits; a QuickBooks Desktop TxnID ("8000000A-1733300001") has no web page to link to.
    exported = [payment for payment in payments if payment.export_reference.isdigit()]
    links: dict[int, str | None] = {payment.pk: None for payment in payments}
    if settings.QBO_ENVIRONMENT == "local":
        realms = (
            dict(
                QuickBooksMapping.objects.filter(
                    kind=QuickBooksMapping.Kind.PAYMENT, local_key__in=[str(p.pk) for p in exported]
                ).values_list("local_key", "realm_id")
            )
            if exported
            else {}
        )
        for payment in exported:
            # The sandbox's page of the payment, in words (its company view is a JSON dump for tests).
            realm = realms.get(str(payment.pk), "")
            links[payment.pk] = (
                f"{settings.QBO_SANDBOX_URL}/_sandbox/companies/{realm}/payments/{payment.export_reference}"
            )
        return links
    host = "app.sandbox.qbo.intuit.com" if settings.QBO_ENVIRONMENT == "sandbox" else "app.qbo.intuit.com"
    for payment in exported:
        links[payment.pk] = f"https://{host}/app/recvpayment?txnId={payment.export_reference}"
    return links


def payment_quickbooks_link(*, payment: Payment) -> str | None:
    return payment_quickbooks_links(payments=[payment])[payment.pk]


def changes_sent_by_day(*, days: int = 30) -> list[dict]:
    """What FieldSync changed in QuickBooks after export, per day, newest first, over the last `days` days (one query):
    `day`, `customers_updated` and `invoices_updated` (sparse updates, updates.py / invoice_updates.py) and
    `invoices_voided` (voids.py) and `payments_voided` (a whole payment reversed in FieldSync, refund_recording.py)
    — outbox rows QuickBooks answered, so an update re-sent after a lost answer counts once. Undone exports are not
    counted here: each undo has its own record. Days with nothing sent are left out."""
    from .services import REFUND_RECORDING_KIND, UPDATE_KIND, VOID_KIND

    done = QuickBooksRequest.objects.filter(
        state=QuickBooksRequest.State.DONE,
        kind__in=(UPDATE_KIND, VOID_KIND, REFUND_RECORDING_KIND),
        completed_at__gte=timezone.now() - timedelta(days=days),
    )
    updates = Q(kind=UPDATE_KIND)
    return list(
        done.annotate(day=TruncDate("completed_at"))
        .values("day")
        .annotate(
            customers_updated=Count("id", filter=updates & Q(local_key__startswith="customer:")),
            invoices_updated=Count("id", filter=updates & Q(local_key__startswith="invoice:")),
            invoices_voided=Count("id", filter=Q(kind=VOID_KIND)),
            payments_voided=Count("id", filter=Q(kind=REFUND_RECORDING_KIND, operation="Payment.void")),
        )
        .order_by("-day")
    )
