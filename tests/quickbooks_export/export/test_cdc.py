"""Change Data Capture: with webhooks switched off (or lost), the sweep still finds what changed in QuickBooks."""

from datetime import timedelta

import pytest
from django.utils import timezone

from quickbooks_export import cdc
from quickbooks_export.cdc import cdc_sweep
from quickbooks_export.client import QuickBooksClient
from quickbooks_export.errors import QuickBooksError
from quickbooks_export.models import QuickBooksCdcCheckpoint, QuickBooksChange, QuickBooksEvent
from quickbooks_export.sandbox import accounting
from quickbooks_export.sandbox.config import ManualClock
from tests.factories import issued_invoice, pay

from .conftest import connect, export

pytestmark = pytest.mark.django_db


@pytest.fixture
def clock():
    return ManualClock()


@pytest.fixture
def company(qbo_sandbox_factory, settings, clock):
    settings.EXPORT_MAX_RETRY_AFTER_SECONDS = 0.2
    return connect(qbo_sandbox_factory(clock=clock), settings)


def exported_payments(count: int):
    payments = [pay(issued_invoice(amount="40.00"), "40.00") for _ in range(count)]
    export(*payments)
    for payment in payments:
        payment.refresh_from_db()
    return payments


def test_a_payment_deleted_in_quickbooks_is_found_by_the_sweep_without_any_webhook(company, clock):
    [payment] = exported_payments(1)
    clock.advance(5)
    company.server.delete_entity(company.realm_id, "Payment", payment.export_reference)

    assert cdc_sweep() == 1

    [change] = QuickBooksChange.objects.all()
    assert (change.change, change.local_key, change.found_by) == ("deleted", str(payment.pk), "cdc")
    assert not QuickBooksEvent.objects.exists()  # no webhook involved
    checkpoint = QuickBooksCdcCheckpoint.objects.get(realm_id=company.realm_id, entity="Payment")
    assert timezone.now() - timedelta(minutes=2) < checkpoint.changed_since < timezone.now()
    assert cdc_sweep() == 0  # seen again (overlap): still one change
    assert QuickBooksChange.objects.count() == 1


def test_a_checkpoint_older_than_30_days_starts_at_quickbooks_limit(company, clock):
    [payment] = exported_payments(1)
    QuickBooksCdcCheckpoint.objects.create(
        realm_id=company.realm_id, entity="Payment", changed_since=timezone.now() - timedelta(days=90)
    )
    QuickBooksCdcCheckpoint.objects.create(
        realm_id=company.realm_id, entity="Invoice", changed_since=timezone.now() - timedelta(days=90)
    )
    clock.advance(5)
    company.server.delete_entity(company.realm_id, "Payment", payment.export_reference)

    client = QuickBooksClient.for_current_connection()
    with pytest.raises(QuickBooksError, match="within the last 30 days"):
        client.cdc(["Payment"], changed_since=(timezone.now() - timedelta(days=90)).isoformat())

    assert cdc_sweep() == 1  # the sweep asks for 30 days, not 90


def test_an_answer_at_quickbooks_cap_is_narrowed_until_everything_is_seen(company, clock, monkeypatch):
    monkeypatch.setattr(accounting, "MAX_CDC_OBJECTS", 2)  # QuickBooks' 1,000, small enough for a test
    monkeypatch.setattr(cdc, "CAP", 2)
    payments = exported_payments(3)
    for payment in payments:
        clock.advance(2)
        company.server.delete_entity(company.realm_id, "Payment", payment.export_reference)

    assert cdc_sweep() == 3

    assert sorted(QuickBooksChange.objects.values_list("local_key", flat=True)) == sorted(str(p.pk) for p in payments)
