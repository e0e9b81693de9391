"""/metrics: export counts from the database at scrape time, QuickBooks calls from every process, and no metrics for
anyone without the token or a staff session."""

import pytest
from django.contrib.auth import get_user_model
from prometheus_client.parser import text_string_to_metric_families

from billing.models import Payment
from fieldsync import metrics
from fieldsync.models import QuickBooksCallCount
from quickbooks_export.services import export_batch_start
from tests.factories import issued_invoice, pay
from tests.quickbooks_export.conftest import make_connection

pytestmark = pytest.mark.django_db
TOKEN = "metrics-test-token-0123456789"


@pytest.fixture(autouse=True)
def _token(settings):
    settings.FIELDSYNC_METRICS_TOKEN = TOKEN


def scrape(client) -> dict[tuple, float]:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def test_without_the_token_or_a_staff_session_there_are_no_metrics(client, settings):
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics")["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401

    clerk = get_user_model().objects.create_user(username="clerk", password="x")
    client.force_login(clerk)
    assert client.get("/metrics").status_code == 403

    clerk.is_staff = True
    clerk.save()
    assert client.get("/metrics").status_code == 200

    settings.FIELDSYNC_METRICS_TOKEN = ""  # no token configured: a bearer header proves nothing
    client.logout()
    assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 401


def test_export_counts_come_from_the_database(client, django_assert_num_queries):
    make_connection()
    ready = [pay(issued_invoice(amount="100.00", number=f"INV-{n}"), "100.00") for n in range(3)]
    pay(issued_invoice(amount="100.00", number="INV-HELD"), "40.00")  # held: the invoice is not paid in full
    export_batch_start(payments=[p.pk for p in ready], selection="three", source="api")
    Payment.objects.filter(pk=ready[0].pk).update(export_status=Payment.ExportStatus.FAILED)

    with django_assert_num_queries(6):
        samples = scrape(client)

    assert samples[("fieldsync_payments", (("export_status", "queued"),))] == 2
    assert samples[("fieldsync_payments", (("export_status", "failed"),))] == 1
    assert samples[("fieldsync_payments", (("export_status", "not_exported"),))] == 1
    assert samples[("fieldsync_payments", (("export_status", "exported"),))] == 0
    assert samples[("fieldsync_payments_held", ())] == 1
    assert samples[("fieldsync_export_items", (("outcome", "pending"),))] == 3
    assert samples[("fieldsync_export_queue_age_seconds", ())] >= 0
    assert samples[("fieldsync_quickbooks_outbox_pending", ())] == 0


def test_queue_age_is_the_age_of_the_oldest_waiting_item(client):
    from datetime import timedelta

    from django.utils import timezone

    from quickbooks_export.models import ExportBatch

    make_connection()
    batch = export_batch_start(payments=[pay(issued_invoice(amount="10.00"), "10.00").pk], selection="1", source="api")
    ExportBatch.objects.filter(pk=batch.pk).update(created_at=timezone.now() - timedelta(minutes=10))

    age = scrape(client)[("fieldsync_export_queue_age_seconds", ())]

    assert 600 <= age < 660


def test_quickbooks_calls_are_counted_by_kind_and_outcome_across_flushes(client):
    metrics.quickbooks_calls_flush()  # calls earlier tests made in this process
    QuickBooksCallCount.objects.all().delete()
    base = "https://quickbooks.api.intuit.com/v3/company/123"
    metrics.quickbooks_call_record(method="GET", url=f"{base}/query?query=select", status=200)
    metrics.quickbooks_call_record(method="GET", url=f"{base}/query?query=select", status=429)
    metrics.quickbooks_call_record(method="POST", url=f"{base}/batch", status=200)
    metrics.quickbooks_call_record(method="POST", url=f"{base}/payment", status=400)
    metrics.quickbooks_call_record(method="GET", url=f"{base}/customer/5", status=None)
    metrics.quickbooks_calls_flush()
    # A second process (or run) adds to the same totals.
    metrics.quickbooks_call_record(method="GET", url=f"{base}/query", status=200)
    metrics.quickbooks_calls_flush()

    samples = scrape(client)

    calls = {k[1]: v for k, v in samples.items() if k[0] == "fieldsync_quickbooks_calls_total"}
    assert calls == {
        (("kind", "query"), ("outcome", "ok")): 2,
        (("kind", "query"), ("outcome", "throttled")): 1,
        (("kind", "batch"), ("outcome", "ok")): 1,
        (("kind", "write"), ("outcome", "client_error")): 1,
        (("kind", "read"), ("outcome", "network_error")): 1,
    }
    assert samples[("fieldsync_quickbooks_throttled_total", ())] == 1
    assert QuickBooksCallCount.objects.count() == 5


def test_nothing_to_flush_costs_no_query(django_assert_num_queries):
    metrics.quickbooks_calls_flush()
    with django_assert_num_queries(0):
        metrics.quickbooks_calls_flush()
