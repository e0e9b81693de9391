"""A payment recorded in QuickBooks, found at the same moment by the webhook check and by the sweep (and by two
workers of the same notification): brought in once, never listed as refused (PostgreSQL: real row locks)."""

import pytest

from billing.models import Payment
from quickbooks_export.client import QuickBooksClient
from quickbooks_export.inbound import payments_consider, read_by_ids
from quickbooks_export.models import QuickBooksChange, QuickBooksMapping
from quickbooks_export.sandbox.config import ManualClock
from tests.concurrency import run_at_once

from .conftest import connect
from .test_payments_recorded_in_quickbooks import bring_in, exported_then_bounced, key_in_quickbooks

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_found_by_several_at_once_it_is_brought_in_once(qbo_sandbox_factory, settings):
    clock = ManualClock()
    company = connect(qbo_sandbox_factory(clock=clock, latency_ms=20), settings)
    bring_in(company, True)
    for round_ in range(3):  # a race lost by luck once must not pass: repeat it
        invoice = exported_then_bounced(company, number=f"INV-90{round_}")
        keyed = key_in_quickbooks(company, invoice)
        [row] = read_by_ids(QuickBooksClient.for_current_connection(), "Payment", [keyed["Id"]])

        def consider(found_by, row=row):
            return payments_consider(realm_id=company.realm_id, rows=[row], found_by=found_by)

        results = run_at_once(*(lambda f=f: consider(f) for f in ("webhook", "cdc", "webhook", "cdc")))

        assert all(r == {keyed["Id"]} for r in results), results
        [payment] = Payment.objects.filter(origin=Payment.Origin.QUICKBOOKS, export_reference=keyed["Id"])
        assert QuickBooksMapping.objects.get(kind="payment", qbo_id=keyed["Id"]).local_key == str(payment.pk)
        assert not QuickBooksChange.objects.filter(change="recorded").exists()
