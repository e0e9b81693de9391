"""Real django-q2 workers (separate `manage.py qcluster` processes) on PostgreSQL, against the sandbox over HTTP.

SQLite serialises writers and would prove nothing here; these run only with DATABASE_URL=postgres://...
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from billing.models import Payment
from quickbooks_export.models import ExportBatch, ExportBatchItem, QuickBooksRequest
from quickbooks_export.selectors import export_batch_counts
from quickbooks_export.services import export_batch_start
from tests.factories import CustomerFactory, issued_invoice, pay

from .conftest import connect

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
S = Payment.ExportStatus
MANAGE = str(Path(settings.BASE_DIR) / "manage.py")
LOG_DIR = Path(settings.BASE_DIR) / "var" / "test-workers"
LOG_DIR.mkdir(parents=True, exist_ok=True)


def start_worker(server) -> subprocess.Popen:
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "fieldsync.settings.base",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "QBO_ENVIRONMENT": "local",
        "QBO_SANDBOX_URL": server.base_url,
        "QBO_DISCOVERY_URL": server.discovery_url,
        "QBO_API_BASE_URL": server.base_url,
        "OAUTHLIB_INSECURE_TRANSPORT": "1",
        "FIELDSYNC_WORKERS": "1",
        "FIELDSYNC_TASK_TIMEOUT": "20",
        "FIELDSYNC_TASK_RETRY": "25",  # an unacknowledged task is delivered again after this
        "EXPORT_RUN_SECONDS": "6",
        "EXPORT_LEASE_SECONDS": "5",
        "FIELDSYNC_LOG_LEVEL": "WARNING",
    }
    log = open(LOG_DIR / f"worker-{time.monotonic_ns()}.log", "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(  # noqa: S603
        [sys.executable, MANAGE, "qcluster"], env=env, start_new_session=True, stdout=log, stderr=subprocess.STDOUT
    )


def kill(worker: subprocess.Popen, sig=signal.SIGKILL) -> None:
    """Signal the worker's whole process group (the cluster and its worker processes)."""
    for signum in (sig, signal.SIGKILL):
        try:
            os.killpg(worker.pid, signum)
        except ProcessLookupError:
            return
        try:
            worker.wait(timeout=15)
            return
        except subprocess.TimeoutExpired:
            continue


def paid_invoices(count: int, customers: int = 40) -> list[Payment]:
    people = [CustomerFactory() for _ in range(customers)]
    return [pay(issued_invoice(customer=people[i % customers], amount="100.00"), "100.00") for i in range(count)]


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def exported_count() -> int:
    return Payment.objects.filter(export_status=S.EXPORTED).count()


@pytest.fixture
def company(qbo_sandbox_factory, settings):
    return connect(qbo_sandbox_factory(latency_ms=20), settings)


def test_two_workers_and_two_overlapping_batches_create_each_payment_once(company):
    payments = paid_invoices(200)
    ids = [p.pk for p in payments]
    workers = [start_worker(company.server), start_worker(company.server)]
    try:
        first = export_batch_start(payments=ids, selection="first", source="page")
        second = export_batch_start(payments=ids, selection="second", source="api")
        wait_for(
            lambda: ExportBatch.objects.filter(pk__in=[first.pk, second.pk], status="finished").count() == 2,
            timeout=240,
            what="both batches to finish",
        )
    finally:
        for worker in workers:
            kill(worker, signal.SIGTERM)

    outcomes = {b: export_batch_counts(batch_id=b) for b in (first.pk, second.pk)}
    messages = set(ExportBatchItem.objects.exclude(message="").values_list("outcome", "message")[:20])
    assert len(company.entities("Payment")) == 200, (outcomes, messages)
    assert len(company.entities("Invoice")) == 200
    assert len(company.entities("Customer")) == 40
    assert exported_count() == 200
    created = export_batch_counts(batch_id=first.pk)["created"] + export_batch_counts(batch_id=second.pk)["created"]
    assert created == 200


def test_a_worker_killed_mid_batch_loses_nothing_and_duplicates_nothing(company):
    payments = paid_invoices(200)
    worker = start_worker(company.server)
    try:
        batch = export_batch_start(payments=[p.pk for p in payments], selection="all", source="page")
        wait_for(lambda: exported_count() >= 30, timeout=120, what="the first payments to be exported")
        kill(worker)  # SIGKILL the whole cluster: no cleanup, lease held, claims left EXPORTING
        assert exported_count() < 200, "the kill came too late to prove anything"

        worker = start_worker(company.server)
        wait_for(
            lambda: ExportBatch.objects.filter(pk=batch.pk, status="finished").exists(),
            timeout=240,
            what="the batch to finish after recovery",
        )
    finally:
        kill(worker, signal.SIGTERM)

    qbo_payments = company.entities("Payment")
    assert len(qbo_payments) == 200
    assert len({p["PrivateNote"] for p in qbo_payments}) == 200  # one QuickBooks payment per FieldSync payment
    assert exported_count() == 200
    assert not Payment.objects.filter(export_status=S.EXPORTING).exists()
    assert not QuickBooksRequest.objects.filter(state=QuickBooksRequest.State.PENDING).exists()
    assert export_batch_counts(batch_id=batch.pk)["created"] == 200
