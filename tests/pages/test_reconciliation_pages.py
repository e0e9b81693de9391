"""The Reconciliation page: start a run (POST + CSRF, export permission), follow it, read it discrepancies first, a
page at a time in a fixed number of queries, and download it as CSV."""

import csv
import datetime
import io

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_q.models import OrmQ

from quickbooks_export.models import ReconciliationRun
from quickbooks_export.reconciliation import STALE_MESSAGE, reconciliation_run
from quickbooks_export.tasks import RECONCILIATION_TASK
from tests.factories import CustomerFactory, issued_invoice, pay
from tests.quickbooks_export.export.conftest import export

pytestmark = pytest.mark.django_db
URL = reverse("exports:reconciliation")
NOVEMBER = {"date_from": "2026-11-01", "date_to": "2026-11-30"}


def exported(count: int, *, name: str = "Rosa Diaz"):
    customer = CustomerFactory(display_name=name)
    payments = [pay(issued_invoice(customer=customer, amount="50.00"), "50.00") for _ in range(count)]
    export(*payments)
    for payment in payments:
        payment.refresh_from_db()
    return payments


def start(client, django_capture_on_commit_callbacks, **dates) -> ReconciliationRun:
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(URL, dates or NOVEMBER)
    run = ReconciliationRun.objects.latest("id")
    assert response.status_code == 302
    assert response["Location"] == reverse("exports:reconciliation_detail", args=[run.pk])
    return run


def test_reconcile_now_queues_a_run_whose_page_lists_discrepancies_first(
    office_client, qbo_company, django_capture_on_commit_callbacks
):
    first, second = exported(2)
    qbo_company.server.delete_entity(qbo_company.realm_id, "Payment", second.export_reference)

    run = start(office_client, django_capture_on_commit_callbacks)
    assert [row.task["func"] for row in OrmQ.objects.all()] == [RECONCILIATION_TASK]
    detail = reverse("exports:reconciliation_detail", args=[run.pk])
    progress = reverse("exports:reconciliation_progress", args=[run.pk])
    assert "Waiting to start" in office_client.get(detail).content.decode()
    assert f'hx-get="{progress}"' in office_client.get(progress).content.decode()  # polls while not finished
    reconciliation_run(run_id=run.pk)  # what the worker does
    assert "hx-get" not in office_client.get(progress).content.decode()

    html = office_client.get(detail).content.decode()
    assert 'id="discrepancy-count">2<' in html and 'id="read-count">2<' in html
    rows = html[html.index('id="reconciliation-rows"') :]
    # The deleted payment and its invoice (balance open again in QuickBooks) come before the matching records.
    order = [rows.index(text) for text in (f"Payment #{second.pk}", "Not in QuickBooks", "Matches")]
    assert order == sorted(order)
    assert "Balance differs" in rows and rows.index("Balance differs") < rows.index("Matches")
    listing = office_client.get(URL).content.decode()
    assert f'data-run="{run.pk}"' in listing and "2 invoices, 2 payments" in listing


def test_the_csv_has_every_record_discrepancies_first(office_client, qbo_company, django_capture_on_commit_callbacks):
    [payment] = exported(1, name="=HYPERLINK(evil)")
    qbo_company.server.edit_entity(qbo_company.realm_id, "Payment", payment.export_reference, {"TotalAmt": 55})
    run = start(office_client, django_capture_on_commit_callbacks)
    reconciliation_run(run_id=run.pk)

    response = office_client.get(reverse("exports:reconciliation_csv", args=[run.pk]))

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert f'filename="reconciliation-{run.pk}-20261101-20261130.csv"' in response["Content-Disposition"]
    lines = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    header, rows = lines[0], lines[1:]
    assert header[:3] == ["Status", "Discrepancies", "Record"]
    by_record = {row[2]: dict(zip(header, row, strict=True)) for row in rows}
    assert [row[0] for row in rows] == ["discrepancy", "ok"]  # the payment, then its invoice (still paid)
    paid = by_record[f"Payment #{payment.pk}"]
    assert (paid["Discrepancies"], paid["FieldSync total"], paid["QuickBooks total"]) == (
        "Total differs",
        "50.00",
        "55.00",
    )
    assert paid["Customer"] == "'=HYPERLINK(evil)"  # never a formula in a spreadsheet
    assert "QuickBooks shows Payment #" in paid["Explanation"]


def test_a_bad_range_is_refused_with_the_reason_and_nothing_starts(office_client, qbo_company):
    response = office_client.post(URL, {"date_from": "2026-12-02", "date_to": "2026-12-01"})

    assert response.status_code == 400 and "The first date is after the last one" in response.content.decode()
    assert not ReconciliationRun.objects.exists() and not OrmQ.objects.exists()


def test_viewers_see_runs_but_cannot_start_one_and_strangers_see_nothing(viewer_client, client, qbo_company):
    html = viewer_client.get(URL).content.decode()
    assert 'id="reconcile-form"' not in html and "Reconciliation" in html
    assert viewer_client.post(URL, NOVEMBER).status_code == 403
    client.logout()
    assert client.get(URL).status_code == 302  # to sign in
    run = ReconciliationRun.objects.create(realm_id=qbo_company.realm_id, trigger="page", **NOVEMBER)
    assert client.get(reverse("exports:reconciliation_csv", args=[run.pk])).status_code == 302
    assert not OrmQ.objects.exists() and ReconciliationRun.objects.count() == 1


def test_starting_needs_the_csrf_token(office_user, qbo_company):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(office_user)
    assert strict.post(URL, NOVEMBER).status_code == 403
    assert not ReconciliationRun.objects.exists()


def test_the_pages_and_the_csv_make_the_same_queries_for_2_and_12_records(
    office_client, qbo_company, django_capture_on_commit_callbacks
):
    counts = []
    for size in (1, 5):
        exported(size)
        run = start(office_client, django_capture_on_commit_callbacks)
        reconciliation_run(run_id=run.pk)
        for url in (
            reverse("exports:reconciliation_detail", args=[run.pk]),
            URL,
            reverse("exports:reconciliation_csv", args=[run.pk]),
        ):
            with CaptureQueriesContext(connection) as queries:
                response = office_client.get(url)
                if response.streaming:
                    b"".join(response.streaming_content)  # the CSV's queries happen as it streams
            counts.append(len(queries))
    assert counts[:3] == counts[3:]


def test_a_range_with_nothing_exported_says_nothing_was_checked(
    office_client, qbo_company, django_capture_on_commit_callbacks
):
    """Not "QuickBooks matches FieldSync" when there was nothing to compare (the demo's exports are older than the
    default range): say so, and how to reconcile them."""
    exported(1)
    run = start(office_client, django_capture_on_commit_callbacks, date_from="2026-01-01", date_to="2026-01-31")
    reconciliation_run(run_id=run.pk)

    html = office_client.get(reverse("exports:reconciliation_detail", args=[run.pk])).content.decode()
    assert 'id="nothing-checked"' in html and "matches FieldSync" not in html
    run = start(office_client, django_capture_on_commit_callbacks)  # November: the exported payment's month
    reconciliation_run(run_id=run.pk)
    html = office_client.get(reverse("exports:reconciliation_detail", args=[run.pk])).content.decode()
    assert "QuickBooks matches FieldSync for every record checked" in html and 'id="nothing-checked"' not in html


def test_a_second_reconcile_now_is_told_a_run_is_under_way_with_a_link_to_it(
    office_client, qbo_company, django_capture_on_commit_callbacks
):
    run = start(office_client, django_capture_on_commit_callbacks)

    response = office_client.post(URL, NOVEMBER)

    html = response.content.decode()
    detail = reverse("exports:reconciliation_detail", args=[run.pk])
    assert response.status_code == 409
    assert f"Reconciliation #{run.pk} is still under way for this QuickBooks company" in html
    assert f'<a href="{detail}" id="busy-run-link">Follow reconciliation #{run.pk}</a>' in html
    assert list(ReconciliationRun.objects.values_list("pk", flat=True)) == [run.pk]
    assert [row.task["func"] for row in OrmQ.objects.all()] == [RECONCILIATION_TASK]  # the first run's only


def test_a_run_whose_worker_died_is_shown_as_stopped_and_a_new_run_can_start(
    office_client, qbo_company, django_capture_on_commit_callbacks
):
    dead = start(office_client, django_capture_on_commit_callbacks)
    # Its worker took it (queued -> running), then died: no end, no progress for over 30 minutes.
    ReconciliationRun.objects.filter(pk=dead.pk).update(
        state=ReconciliationRun.State.RUNNING, started_at=timezone.now() - datetime.timedelta(minutes=31)
    )
    progress = reverse("exports:reconciliation_progress", args=[dead.pk])

    fragment = office_client.get(progress).content.decode()
    assert "Stopped" in fragment and "hx-get" not in fragment  # not polled for ever
    assert "stopped without finishing" in fragment and "start a new reconciliation" in fragment
    assert "Stopped (still reading after 30 minutes)" in office_client.get(URL).content.decode()

    new = start(office_client, django_capture_on_commit_callbacks)

    dead.refresh_from_db()
    assert new.pk != dead.pk and new.state == ReconciliationRun.State.QUEUED
    assert dead.state == ReconciliationRun.State.FAILED and dead.message == STALE_MESSAGE
    assert dead.finished_at is not None
    assert STALE_MESSAGE in office_client.get(reverse("exports:reconciliation_detail", args=[dead.pk])).content.decode()


def test_a_run_whose_task_was_lost_before_it_started_stops_nothing_after_30_minutes(
    office_client, qbo_company, django_capture_on_commit_callbacks
):
    lost = start(office_client, django_capture_on_commit_callbacks)
    # Queued, and no worker ever claimed it (a worker died before claiming it; Redis delivers at most once).
    ReconciliationRun.objects.filter(pk=lost.pk).update(created_at=timezone.now() - datetime.timedelta(minutes=31))

    assert "Stopped (never started after 30 minutes)" in office_client.get(URL).content.decode()
    new = start(office_client, django_capture_on_commit_callbacks)

    lost.refresh_from_db()
    assert new.pk != lost.pk and new.state == ReconciliationRun.State.QUEUED
    assert lost.state == ReconciliationRun.State.FAILED and lost.message == STALE_MESSAGE


def test_a_run_queued_less_than_30_minutes_ago_still_stops_a_new_one(
    office_client, qbo_company, django_capture_on_commit_callbacks
):
    queued = start(office_client, django_capture_on_commit_callbacks)
    ReconciliationRun.objects.filter(pk=queued.pk).update(created_at=timezone.now() - datetime.timedelta(minutes=29))

    response = office_client.post(URL, NOVEMBER)

    assert response.status_code == 409 and ReconciliationRun.objects.count() == 1


def test_a_run_reading_for_less_than_30_minutes_still_stops_a_new_one(office_client, qbo_company):
    ReconciliationRun.objects.create(
        realm_id=qbo_company.realm_id,
        date_from=datetime.date(2026, 11, 1),
        date_to=datetime.date(2026, 11, 30),
        trigger="page",
        state=ReconciliationRun.State.RUNNING,
        started_at=timezone.now() - datetime.timedelta(minutes=29),
    )

    response = office_client.post(URL, NOVEMBER)

    assert response.status_code == 409 and ReconciliationRun.objects.count() == 1
