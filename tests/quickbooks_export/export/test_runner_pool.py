"""One django-q2 worker keeps several companies exporting at once (quickbooks_export/runner_pool.py).

Real `manage.py qcluster` processes with one worker process each, on PostgreSQL, against the sandbox over HTTP with
QuickBooks' per-company limits: each company's runner waits for its own batch budget, and the worker serves the other
companies' runners in threads meanwhile. Runs only with DATABASE_URL=postgres://...
"""

import signal
import time

import pytest
from django.utils import timezone

from billing.models import Payment
from quickbooks_export.models import ExportBatch, ExportRunnerLease, QuickBooksRequest
from quickbooks_export.services import export_batch_start
from tests.factories import BusinessUnitFactory, CustomerFactory, issued_invoice, pay

from .conftest import connect
from .test_workers import kill, start_worker

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
S = Payment.ExportStatus
PAYMENTS_PER_COMPANY = 90  # 6 batch requests each: 3 a 5-second bucket, so each runner has to wait for its budget


@pytest.fixture
def three_companies(qbo_sandbox_factory, settings, monkeypatch):
    settings.EXPORT_MAX_RETRY_AFTER_SECONDS = 0.2
    monkeypatch.setenv("FIELDSYNC_EXPORT_COMPANIES_PER_WORKER", "3")
    server = qbo_sandbox_factory(latency_ms=20)
    companies = []
    for n in range(3):
        unit = BusinessUnitFactory(name=f"Unit {n}")
        company = connect(server, settings, company_name=f"Plumbing {n}", business_unit=unit)
        people = [CustomerFactory(business_unit=unit) for _ in range(10)]
        payments = [
            pay(issued_invoice(customer=people[i % 10], amount="100.00"), "100.00") for i in range(PAYMENTS_PER_COMPANY)
        ]
        companies.append((company, payments))
    return companies


def start_batches(companies) -> list[ExportBatch]:
    return [
        export_batch_start(payments=[p.pk for p in payments], selection=f"company {n}", source="page")
        for n, (_, payments) in enumerate(companies)
    ]


def wait_sampling_runners(batches, timeout: float, *, until=None) -> list[int]:
    """Wait for every batch to finish (or `until()`), sampling how many companies have a live runner."""
    samples, deadline = [], time.monotonic() + timeout
    ids = [b.pk for b in batches]
    while time.monotonic() < deadline:
        samples.append(ExportRunnerLease.objects.filter(expires_at__gt=timezone.now()).count())
        if until is not None and until():
            return samples
        if not ExportBatch.objects.filter(pk__in=ids).exclude(status="finished").exists():
            return samples
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s; runners seen {max(samples, default=0)}")


def assert_each_payment_once_in_its_company(companies) -> None:
    for company, payments in companies:
        in_quickbooks = company.entities("Payment")
        assert len(in_quickbooks) == PAYMENTS_PER_COMPANY
        assert len({p["PrivateNote"] for p in in_quickbooks}) == PAYMENTS_PER_COMPANY  # one per FieldSync payment
        references = sorted(Payment.objects.filter(pk__in=[p.pk for p in payments]).values_list("export_reference"))
        assert [r for (r,) in references] == sorted(p["Id"] for p in in_quickbooks)
        assert len(company.entities("Invoice")) == PAYMENTS_PER_COMPANY
    assert Payment.objects.filter(export_status=S.EXPORTED).count() == 3 * PAYMENTS_PER_COMPANY
    assert not QuickBooksRequest.objects.filter(state=QuickBooksRequest.State.PENDING).exists()


def test_one_worker_exports_three_companies_at_once_each_payment_once(three_companies):
    worker = start_worker(three_companies[0][0].server)
    try:
        batches = start_batches(three_companies)
        samples = wait_sampling_runners(batches, timeout=240)
    finally:
        kill(worker, signal.SIGTERM)

    # One worker process: with a runner holding it for a whole run, only one company could have a live lease.
    assert max(samples) == 3, samples
    assert_each_payment_once_in_its_company(three_companies)


def test_a_worker_killed_while_serving_three_companies_loses_and_duplicates_nothing(three_companies):
    worker = start_worker(three_companies[0][0].server)
    try:
        batches = start_batches(three_companies)
        exported = lambda: Payment.objects.filter(export_status=S.EXPORTED).count()  # noqa: E731
        samples = wait_sampling_runners(batches, timeout=120, until=lambda: exported() >= 30)
        kill(worker)  # SIGKILL the whole cluster: every company's lease held, claims left EXPORTING
        assert max(samples) >= 2, samples
        assert exported() < 3 * PAYMENTS_PER_COMPANY, "the kill came too late to prove anything"

        worker = start_worker(three_companies[0][0].server)  # its leases expire (5 s); the task is delivered again
        wait_sampling_runners(batches, timeout=240)
    finally:
        kill(worker, signal.SIGTERM)

    assert not Payment.objects.filter(export_status=S.EXPORTING).exists()
    assert_each_payment_once_in_its_company(three_companies)
