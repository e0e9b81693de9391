"""Reads of the export engine's records for pages and the API."""

from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Q, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from billing.models import Payment

from .models import ExportAttempt, ExportBatch, ExportBatchItem, QuickBooksMapping, QuickBooksRequest

Outcome = ExportBatchItem.Outcome


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
    items = ExportBatchItem.objects.filter(batch_id=batch_id).select_related("payment", "payment__customer")
    if outcome:
        items = items.filter(outcome=outcome)
    return items.order_by("id")


def export_batch_list() -> QuerySet[ExportBatch]:
    return ExportBatch.objects.select_related("created_by").order_by("-created_at", "-id")


def payment_export_attempts(*, payment_id: int) -> QuerySet[ExportAttempt]:
    return ExportAttempt.objects.filter(payment_id=payment_id).order_by("-at", "-id")


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
    `invoices_voided` (voids.py) — outbox rows QuickBooks answered, so an update re-sent after a lost answer counts
    once. Days with nothing sent are left out."""
    from .services import UPDATE_KIND, VOID_KIND

    done = QuickBooksRequest.objects.filter(
        state=QuickBooksRequest.State.DONE,
        kind__in=(UPDATE_KIND, VOID_KIND),
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
        )
        .order_by("-day")
    )
