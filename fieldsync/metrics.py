"""Export metrics in Prometheus' text format (prometheus_client), at /metrics.

Two kinds of numbers, both right however many web and worker processes run on however many machines:

- What lives in the database is counted when Prometheus scrapes, by a custom collector (a handful of constant-cost
  queries): payments by export status, payments held back by the fully-paid rule, export batch items by outcome,
  failed QuickBooks requests in the outbox, and the age of the oldest export item still waiting.
- QuickBooks HTTP calls (by kind and outcome, 429s included) happen in worker processes that have no HTTP server, so
  they are counted in the database too: each process adds up its calls in memory and adds them to
  fieldsync.QuickBooksCallCount at the end of every export task and every web request that made any (one UPDATE per
  kind/outcome pair, never per call, never inside the call). prometheus_client's multiprocess mode was the other
  choice; it sums files of one machine only, so workers on a second machine would be missing.

The endpoint wants `Authorization: Bearer <FIELDSYNC_METRICS_TOKEN>`, or a signed-in staff user; with neither it
answers 401/403 (secure by default: no token set means only staff sessions).
"""

import hmac
import logging
import threading
from collections import Counter

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import Count, F
from django.http import HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

logger = logging.getLogger(__name__)

# --- QuickBooks calls, counted per process and flushed to the database ---------------------------------------------
_pending_calls: Counter = Counter()
_pending_lock = threading.Lock()
_recorded = 0  # calls counted by this process so far: tells a request whether it made any


def quickbooks_calls_recorded() -> int:
    return _recorded


def quickbooks_call_kind(method: str, url: str) -> str:
    """query, read, write or batch: what Intuit meters (reads and queries) apart from what it does not (writes)."""
    path = url.split("?", 1)[0].rstrip("/")
    if path.endswith("/query"):
        return "query"
    if path.endswith("/batch"):
        return "batch"
    return "read" if method.upper() == "GET" else "write"


def quickbooks_call_outcome(status: int | None) -> str:
    if status is None:
        return "network_error"
    if status == 429:
        return "throttled"
    if 200 <= status < 300:
        return "ok"
    if status in (401, 403):
        return "unauthorized"
    return "client_error" if status < 500 else "server_error"


def quickbooks_call_record(*, method: str, url: str, status: int | None) -> None:
    """Count one QuickBooks HTTP call in this process (no I/O; see quickbooks_calls_flush)."""
    global _recorded
    with _pending_lock:
        _pending_calls[(quickbooks_call_kind(method, url), quickbooks_call_outcome(status))] += 1
        _recorded += 1


def quickbooks_calls_flush() -> None:
    """Add this process's counted calls to the database totals. Nothing to add: no query at all. A failure keeps the
    counts for the next flush and never fails the work that made the calls."""
    from fieldsync.models import QuickBooksCallCount

    with _pending_lock:
        pending = dict(_pending_calls)
        _pending_calls.clear()
    if not pending:
        return
    try:
        with transaction.atomic():
            for (kind, outcome), count in sorted(pending.items()):
                updated = QuickBooksCallCount.objects.filter(kind=kind, outcome=outcome).update(
                    count=F("count") + count
                )
                if not updated:
                    row, created = QuickBooksCallCount.objects.get_or_create(
                        kind=kind, outcome=outcome, defaults={"count": count}
                    )
                    if not created:
                        QuickBooksCallCount.objects.filter(pk=row.pk).update(count=F("count") + count)
    except DatabaseError:
        logger.warning("Could not store QuickBooks call counts; keeping them for the next try", exc_info=True)
        with _pending_lock:
            _pending_calls.update(pending)


# --- The collector: database counts at scrape time -----------------------------------------------------------------
class ExportCollector:
    """Reads the database when Prometheus scrapes: 6 queries, whatever the number of payments or processes."""

    def collect(self):
        from billing.models import Payment
        from billing.selectors import payment_filter_held
        from fieldsync.models import QuickBooksCallCount
        from quickbooks_export.models import ExportBatchItem, QuickBooksRequest

        payments = GaugeMetricFamily(
            "fieldsync_payments", "Payments by export status (held ones are not_exported).", labels=["export_status"]
        )
        by_status = dict(Payment.objects.values_list("export_status").annotate(n=Count("id")).order_by())
        for status in Payment.ExportStatus.values:
            payments.add_metric([status], by_status.get(status, 0))
        yield payments

        held = payment_filter_held(Payment.objects.filter(export_status=Payment.ExportStatus.NOT_EXPORTED)).count()
        yield GaugeMetricFamily(
            "fieldsync_payments_held", "Payments not exported that the fully-paid rule holds back.", value=held
        )

        items = GaugeMetricFamily(
            "fieldsync_export_items", "Export batch items by outcome (pending = queued work).", labels=["outcome"]
        )
        by_outcome = dict(ExportBatchItem.objects.values_list("outcome").annotate(n=Count("id")).order_by())
        for outcome in ExportBatchItem.Outcome.values:
            items.add_metric([outcome], by_outcome.get(outcome, 0))
        yield items

        oldest = (
            ExportBatchItem.objects.filter(outcome=ExportBatchItem.Outcome.PENDING)
            .order_by("id")
            .values_list("batch__created_at", flat=True)
            .first()
        )
        age = (timezone.now() - oldest).total_seconds() if oldest else 0.0
        yield GaugeMetricFamily(
            "fieldsync_export_queue_age_seconds", "Age of the oldest export item still waiting (0: none).", value=age
        )

        yield GaugeMetricFamily(
            "fieldsync_quickbooks_outbox_pending",
            "Creates written to the outbox and not yet answered by QuickBooks.",
            value=QuickBooksRequest.objects.filter(state=QuickBooksRequest.State.PENDING).count(),
        )

        calls = CounterMetricFamily(
            "fieldsync_quickbooks_calls",
            "QuickBooks API HTTP calls by kind (query, read, write, batch) and outcome (ok, throttled = 429, "
            "unauthorized, client_error, server_error, network_error), all processes.",
            labels=["kind", "outcome"],
        )
        throttled = 0
        for kind, outcome, count in QuickBooksCallCount.objects.values_list("kind", "outcome", "count"):
            calls.add_metric([kind, outcome], count)
            throttled += count if outcome == "throttled" else 0
        yield calls
        yield CounterMetricFamily(
            "fieldsync_quickbooks_throttled", "QuickBooks answers 429 (too many requests), all kinds.", value=throttled
        )


def _authorized(request) -> tuple[bool, int]:
    token = settings.FIELDSYNC_METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer "):
        if hmac.compare_digest(header.removeprefix("Bearer ").strip().encode(), token.encode()):
            return True, 200
        return False, 401
    if request.user.is_authenticated:
        return (True, 200) if request.user.is_staff else (False, 403)
    return False, 401


@never_cache
def metrics_view(request):
    allowed, status = _authorized(request)
    if not allowed:
        response = HttpResponse(
            "Metrics need 'Authorization: Bearer <FIELDSYNC_METRICS_TOKEN>' or a signed-in staff user.\n",
            status=status,
            content_type="text/plain",
        )
        if status == 401:
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ExportCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
