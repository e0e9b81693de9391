"""Invoices with nothing to pay, asked for by overlapping batches and exported by runners started at the same moment,
on PostgreSQL (real row locks; SQLite serialises writers and would prove nothing): each goes to QuickBooks once."""

import pytest

from quickbooks_export.models import ExportBatchItem
from quickbooks_export.services import export_batch_start, export_run
from tests.concurrency import run_at_once
from tests.factories import CustomerFactory

from .conftest import connect, drain
from .test_invoice_only import warranty_invoice

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def company(qbo_sandbox_factory, settings):
    return connect(qbo_sandbox_factory(latency_ms=20), settings)


def test_runners_at_once_on_overlapping_batches_create_each_invoice_once(company):
    people = [CustomerFactory() for _ in range(5)]
    invoices = [warranty_invoice(f"INV-C{n}", customer=people[n % 5]) for n in range(40)]
    ids = [invoice.pk for invoice in invoices]
    starts = run_at_once(
        *[lambda s=s: export_batch_start(invoices=ids, selection=s, source="command") for s in ("a", "b", "c")]
    )
    assert not [r for r in starts if isinstance(r, Exception)], starts

    results = run_at_once(*[lambda: export_run(realm_id=company.realm_id, sleep=lambda s: None) for _ in range(4)])
    assert results.count("busy") >= 1, results  # one runner per company: that is the invoices' claim
    drain(company.realm_id)

    numbers = [row["DocNumber"] for row in company.entities("Invoice")]
    assert sorted(numbers) == sorted(f"INV-C{n}" for n in range(40))
    assert len(company.entities("Customer")) == 5
    outcomes = list(ExportBatchItem.objects.values_list("outcome", flat=True))
    assert outcomes.count("created") == 40 and outcomes.count("linked") == 80 and "pending" not in outcomes
