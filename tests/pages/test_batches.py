"""A batch's progress page, its records by outcome, retries, and the export log."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from billing.models import Payment
from quickbooks_export.models import ExportBatch, ExportBatchItem
from quickbooks_export.services import export_batch_start
from tests.factories import CustomerFactory, issued_invoice, pay

from .conftest import break_payment_method, drain, repair_payment_method

pytestmark = pytest.mark.django_db
S = Payment.ExportStatus
Outcome = ExportBatchItem.Outcome


@pytest.fixture
def mixed_batch(qbo_company, office_user):
    """Two card payments that go in, one cash payment QuickBooks refuses, one held payment: exported to the end."""
    customer = CustomerFactory(display_name="Lakeview Property Management")
    good = [
        pay(issued_invoice(customer=customer, amount=f"{100 + i}.00"), f"{100 + i}.00", method="card") for i in range(2)
    ]
    bad = pay(issued_invoice(customer=customer, amount="55.00", number="INV-8800"), "55.00", method="cash")
    held = pay(issued_invoice(customer=customer, amount="90.00", number="INV-8801"), "30.00", method="card")
    mapping = break_payment_method(qbo_company.realm_id, "cash")
    batch = export_batch_start(
        payments=[p.pk for p in [*good, bad, held]], selection="4 selected payments", user=office_user, source="page"
    )
    drain(qbo_company.realm_id)
    batch.refresh_from_db()
    return {"batch": batch, "good": good, "bad": bad, "held": held, "mapping": mapping, "company": qbo_company}


def test_progress_polls_while_the_batch_runs_and_stops_when_it_is_finished(office_client, qbo_company, office_user):
    payments = [pay(issued_invoice(amount="100.00"), "100.00") for _ in range(3)]
    batch = export_batch_start(
        payments=[p.pk for p in payments], selection="3 selected", user=office_user, source="page"
    )

    page = office_client.get(reverse("exports:batch_detail", args=[batch.pk])).content.decode()
    assert "Waiting to start…" in page and "<strong>0</strong> of 3 done" in page
    assert f'hx-get="{reverse("exports:batch_progress", args=[batch.pk])}"' in page and 'hx-trigger="every 1s"' in page
    assert 'aria-valuenow="0"' in page and "3 selected" in page and "Dana Office" in page

    drain(qbo_company.realm_id)
    fragment = office_client.get(reverse("exports:batch_progress", args=[batch.pk]), headers={"HX-Request": "true"})

    html = fragment.content.decode()
    assert "<html" not in html and 'id="batch-progress"' in html
    assert "Finished" in html and "<strong>3</strong> of 3 done" in html and 'value="100"' in html
    assert "hx-trigger" not in html
    assert re.search(r'data-outcome="created">\s*<span class="n">3</span>', html)


def test_each_count_opens_its_records_with_the_reason_in_plain_words(office_client, mixed_batch):
    batch = mixed_batch["batch"]
    html = office_client.get(reverse("exports:batch_detail", args=[batch.pk])).content.decode()
    assert "Finished" in html and "1 payment failed" in html and "Retry 1 failed" in html
    for outcome, n in (("created", 2), ("failed", 1), ("skipped", 1)):
        assert re.search(rf'data-outcome="{outcome}">\s*<span class="n">{n}</span>', html), outcome

    failed = office_client.get(reverse("exports:batch_items", args=[batch.pk, "failed"])).content.decode()
    assert f'data-item="{ExportBatchItem.objects.get(payment=mixed_batch["bad"]).pk}"' in failed and "$55.00" in failed
    assert "QuickBooks rejected the request" in failed and "QuickBooks error " in failed
    assert "QuickBooks code" not in failed
    assert failed.count("<tr data-item=") == 1 and "Retry the failed payment" in failed

    skipped = office_client.get(reverse("exports:batch_items", args=[batch.pk, "skipped"])).content.decode()
    assert "Held: INV-8801 still has $60.00 open." in skipped

    everything = office_client.get(reverse("exports:batch_items", args=[batch.pk, "all"])).content.decode()
    assert everything.count("<tr data-item=") == 4


def test_retry_all_failed_of_a_batch_exports_them_once_fixed(office_client, mixed_batch):
    batch, bad = mixed_batch["batch"], mixed_batch["bad"]
    repair_payment_method(*mixed_batch["mapping"])

    response = office_client.post(reverse("exports:batch_retry_failed", args=[batch.pk]))

    retry = ExportBatch.objects.exclude(pk=batch.pk).get()
    assert response["Location"] == reverse("exports:batch_detail", args=[retry.pk])
    assert retry.source == ExportBatch.Source.RETRY
    drain(mixed_batch["company"].realm_id)
    bad.refresh_from_db()
    assert bad.export_status == S.EXPORTED


def test_retry_one_failed_record_from_the_log(office_client, mixed_batch):
    repair_payment_method(*mixed_batch["mapping"])
    log = office_client.get(reverse("exports:log")).content.decode()
    assert "Failed, waiting for you" in log and "QuickBooks rejected the request" in log

    response = office_client.post(
        reverse("exports:payment_retry", args=[mixed_batch["bad"].pk]), {"next": "batch", "back": "/exports/"}
    )

    retry = ExportBatch.objects.order_by("-pk").first()
    assert response["Location"] == reverse("exports:batch_detail", args=[retry.pk])
    assert retry.selection == f"retry of payment #{mixed_batch['bad'].pk}"


def test_retrying_what_no_longer_failed_is_explained(office_client, mixed_batch):
    good = mixed_batch["good"][0]
    response = office_client.post(
        reverse("exports:payment_retry", args=[good.pk]),
        {"next": "batch", "back": "https://evil.example/"},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == reverse("exports:log")  # never back to another site
    assert "is exported, not failed" in response.content.decode()


def test_export_log_lists_batches_newest_first_with_who_when_source_and_counts(office_client, mixed_batch):
    second = export_batch_start(payments=[mixed_batch["held"].pk], selection="payment again", source="page")

    html = office_client.get(reverse("exports:log")).content.decode().split('id="batches-heading"')[1]

    first = mixed_batch["batch"]
    assert html.index(f">#{second.pk}<") < html.index(f">#{first.pk}<")
    assert "Dana Office" in html and "Staff page" in html and "4 selected payments" in html
    assert "Finished with failures" in html and "Retry 1 failed" in html


def test_export_log_costs_the_same_queries_for_one_batch_and_many(office_client, mixed_batch):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert office_client.get(reverse("exports:log")).status_code == 200
        return len(captured)

    one = queries()
    for i in range(5):
        export_batch_start(payments=[mixed_batch["held"].pk], selection=f"again {i}", source="page")
    assert queries() == one


def test_times_are_shown_in_the_companys_time_zone(office_client, settings):
    import datetime

    settings.TIME_ZONE = "America/New_York"
    batch = ExportBatch.objects.create(source="page", selection="late one", realm_id="1", requested_by="Dana")
    ExportBatch.objects.filter(pk=batch.pk).update(
        created_at=datetime.datetime(2026, 11, 21, 2, 30, tzinfo=datetime.UTC)
    )

    html = office_client.get(reverse("exports:log")).content.decode()

    assert "Nov 20, 2026 9:30 PM" in html  # 02:30 UTC is the evening before in New York


def test_export_log_empty_state_says_how_to_export(office_client):
    html = office_client.get(reverse("exports:log")).content.decode()
    assert "No exports yet" in html and "Export Payments" in html


def test_batch_progress_query_count_does_not_grow_with_the_batch(office_client, qbo_company):
    payments = [pay(issued_invoice(amount="100.00"), "100.00") for _ in range(2)]
    small = export_batch_start(payments=[p.pk for p in payments], selection="2", source="page")
    more = [pay(issued_invoice(amount="100.00"), "100.00") for _ in range(20)]
    large = export_batch_start(payments=[p.pk for p in more], selection="20", source="page")

    def queries(batch) -> int:
        with CaptureQueriesContext(connection) as captured:
            office_client.get(reverse("exports:batch_progress", args=[batch.pk]))
        return len(captured)

    assert queries(small) == queries(large)


def test_once_retried_a_batch_no_longer_offers_to_retry_its_failures(office_client, mixed_batch):
    batch = mixed_batch["batch"]
    repair_payment_method(*mixed_batch["mapping"])
    office_client.post(reverse("exports:batch_retry_failed", args=[batch.pk]))
    drain(mixed_batch["company"].realm_id)

    page = office_client.get(reverse("exports:batch_detail", args=[batch.pk])).content.decode()
    assert "1 payment failed" in page and "exported or dealt with since" in page and "Retry" not in page
    log = office_client.get(reverse("exports:log")).content.decode()
    assert "failures since handled" in log and "Retry 1 failed" not in log and "Failed, waiting for you" not in log
