"""The "Changed in QuickBooks" page: both versions, decisions by people who may export (POST, audited)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from billing.models import Payment
from quickbooks_export.changes import webhook_events_check
from quickbooks_export.models import QuickBooksChange, QuickBooksEvent, QuickBooksMapping
from tests.factories import issued_invoice, pay
from tests.quickbooks_export.export.conftest import export

pytestmark = pytest.mark.django_db
URL = reverse("exports:changes")
S = Payment.ExportStatus


def deleted_in_quickbooks(company, count: int = 1) -> list[Payment]:
    """Payments exported, then deleted in QuickBooks by hand, and found (as a webhook would make it)."""
    payments = [pay(issued_invoice(amount="75.00"), "75.00") for _ in range(count)]
    export(*payments)
    for payment in payments:
        payment.refresh_from_db()
        company.server.delete_entity(company.realm_id, "Payment", payment.export_reference)
        QuickBooksEvent.objects.create(
            event_id=f"e{payment.pk}",
            realm_id=company.realm_id,
            entity="Payment",
            qbo_id=payment.export_reference,
            operation="Delete",
        )
    webhook_events_check()
    return payments


def test_the_list_shows_both_versions_and_the_decisions_offered(office_client, qbo_company):
    [payment] = deleted_in_quickbooks(qbo_company)
    html = office_client.get(URL).content.decode()
    assert "Deleted in QuickBooks: payment" in html and f"#{payment.pk}" in html
    assert "total 75.00" in html and "by webhook" in html
    for button in ("Accept QuickBooks' version", "Send ours again", "Ignore"):
        assert button in html


def test_send_ours_again_makes_the_payment_exportable_and_export_puts_it_back(office_client, qbo_company):
    [payment] = deleted_in_quickbooks(qbo_company)
    change = QuickBooksChange.objects.get()

    response = office_client.post(reverse("exports:change_action", args=[change.pk, "resend"]), {"note": "typo"})

    assert response.status_code == 302
    change.refresh_from_db()
    assert (change.state, change.resolution, change.note) == ("resolved", "resend", "typo")
    assert change.resolved_by.username == "dana"
    payment.refresh_from_db()
    assert payment.export_status == S.NOT_EXPORTED
    assert not QuickBooksMapping.objects.filter(kind="payment", local_key=str(payment.pk)).exists()
    export(payment)
    assert len(qbo_company.entities("Payment")) == 1  # in QuickBooks again, once
    payment.refresh_from_db()
    assert payment.export_status == S.EXPORTED


def test_ignore_changes_nothing_but_is_recorded_and_cannot_be_decided_twice(office_client, qbo_company):
    [payment] = deleted_in_quickbooks(qbo_company)
    change = QuickBooksChange.objects.get()
    office_client.post(reverse("exports:change_action", args=[change.pk, "ignore"]))

    response = office_client.post(reverse("exports:change_action", args=[change.pk, "resend"]), follow=True)

    assert "Someone already dealt with this change." in response.content.decode()
    payment.refresh_from_db()
    assert payment.export_status == S.EXPORTED
    assert QuickBooksChange.objects.get().resolution == "ignore"


def test_people_without_the_export_permission_can_look_but_not_decide(viewer_client, qbo_company):
    deleted_in_quickbooks(qbo_company)
    change = QuickBooksChange.objects.get()
    html = viewer_client.get(URL).content.decode()
    assert "Deleted in QuickBooks" in html and "Send ours again" not in html
    assert viewer_client.post(reverse("exports:change_action", args=[change.pk, "ignore"])).status_code == 403
    assert viewer_client.get(reverse("exports:change_action", args=[change.pk, "ignore"])).status_code == 403
    assert QuickBooksChange.objects.get().state == "open"


def test_the_list_makes_the_same_queries_for_1_and_4_open_changes(office_client, qbo_company):
    counts = []
    for size in (1, 3):
        deleted_in_quickbooks(qbo_company, size)
        with CaptureQueriesContext(connection) as queries:
            assert office_client.get(URL).status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1]
