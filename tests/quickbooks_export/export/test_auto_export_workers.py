"""Automatic export and undo with real row locks and a real django-q2 worker (PostgreSQL only, like test_workers.py)."""

import signal

import pytest

from billing.models import Payment
from quickbooks_export.auto_export import auto_export_settings_update, auto_export_start
from quickbooks_export.models import AutoExportSettings, ExportBatch, ExportBatchItem, QuickBooksRequest
from quickbooks_export.undo import export_undo_run, export_undo_start
from tests.concurrency import run_at_once
from tests.factories import CustomerFactory, issued_invoice, pay

from .conftest import connect, export
from .test_workers import kill, start_worker, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
S = Payment.ExportStatus
Mode = AutoExportSettings.Mode


@pytest.fixture
def company(qbo_sandbox_factory, settings):
    return connect(qbo_sandbox_factory(latency_ms=20), settings)


def test_automatic_runs_at_the_same_moment_make_one_batch_and_queue_each_payment_once(company):
    auto_export_settings_update(realm_id=company.realm_id, mode=Mode.HOURLY, nightly_at=None, user=None)
    for _ in range(20):
        pay(issued_invoice(amount="10.00"), "10.00")

    results = run_at_once(*[auto_export_start for _ in range(4)])

    batches = [r for r in results if isinstance(r, ExportBatch)]
    assert len(batches) == 1 and results.count(None) == 3, results
    assert ExportBatchItem.objects.filter(batch=batches[0]).count() == 20
    assert Payment.objects.filter(export_status=S.QUEUED).count() == 20


def test_a_payment_that_settles_an_invoice_is_exported_by_the_worker_by_itself(company):
    auto_export_settings_update(realm_id=company.realm_id, mode=Mode.WHEN_PAID, nightly_at=None, user=None)
    invoice = issued_invoice(customer=CustomerFactory(display_name="Kim Park"), amount="250.00", number="INV-3100")
    pay(invoice, "50.00")
    worker = start_worker(company.server)
    try:
        final = pay(invoice, "200.00")  # committed: billing's hook queues the automatic export task
        wait_for(
            lambda: Payment.objects.filter(pk=final.pk, export_status=S.EXPORTED).exists(),
            timeout=90,
            what="the worker to export the paid invoice",
        )
    finally:
        kill(worker, signal.SIGTERM)

    [batch] = ExportBatch.objects.all()
    assert batch.source == ExportBatch.Source.AUTOMATIC
    [qbo_invoice] = company.entities("Invoice")
    assert (qbo_invoice["DocNumber"], str(qbo_invoice["Balance"])) == ("INV-3100", "0")
    assert len(company.entities("Payment")) == 2
    assert Payment.objects.filter(export_status=S.EXPORTED).count() == 2


def test_two_undos_of_one_export_at_the_same_moment_record_one_and_void_each_object_once(company):
    payments = [pay(issued_invoice(amount="30.00"), "30.00") for _ in range(3)]
    batch = export(*payments)

    started = run_at_once(*[lambda: export_undo_start(user=None, batch_id=batch.pk) for _ in range(2)])
    undos = [r for r in started if not isinstance(r, Exception)]
    assert len(undos) == 1, started
    assert "already being undone" in str(next(r for r in started if isinstance(r, Exception)))

    results = run_at_once(*[lambda: export_undo_run(undo_id=undos[0].pk) for _ in range(2)])  # a task delivered twice
    assert "done" in results, results
    if "busy" in results:  # the other waited for the company's lease: run it as its retry would
        assert export_undo_run(undo_id=undos[0].pk) == "done"
    assert QuickBooksRequest.objects.filter(kind="undo").count() == 6  # 3 payments + 3 invoices, once each
    assert all(str(p["TotalAmt"]) == "0" for p in company.entities("Payment"))
    assert Payment.objects.filter(export_status=S.NOT_EXPORTED).count() == 3
