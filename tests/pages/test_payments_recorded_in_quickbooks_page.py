"""The "Changed in QuickBooks" page for payments keyed in QuickBooks, and "Accept QuickBooks' version" doing what it
says where that is safe."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from billing.models import Invoice, ManualHandlingItem, Payment
from quickbooks_export.changes import webhook_events_check
from quickbooks_export.models import (
    QuickBooksChange,
    QuickBooksEvent,
    QuickBooksMapping,
    QuickBooksMappingAudit,
    QuickBooksMappingSettings,
)
from tests.quickbooks_export.export.test_payments_recorded_in_quickbooks import exported_then_bounced, key_in_quickbooks

from .test_changed_in_quickbooks import deleted_in_quickbooks

pytestmark = pytest.mark.django_db
URL = reverse("exports:changes")


def recorded_in_quickbooks(company, count: int = 1, *, first: int = 0) -> list[dict]:
    """Payments keyed in QuickBooks against FieldSync's (bounced, reopened) invoices, notified and checked."""
    keyed = []
    for n in range(first, first + count):
        invoice = exported_then_bounced(company, number=f"INV-80{n:02d}")
        keyed.append(key_in_quickbooks(company, invoice))
        QuickBooksEvent.objects.create(
            event_id=f"k{keyed[-1]['Id']}",
            realm_id=company.realm_id,
            entity="Payment",
            qbo_id=keyed[-1]["Id"],
            operation="Create",
        )
    webhook_events_check()
    return keyed


def test_a_payment_recorded_in_quickbooks_is_listed_with_both_versions_and_bring_it_in(office_client, qbo_company):
    [keyed] = recorded_in_quickbooks(qbo_company)
    html = office_client.get(URL).content.decode()
    assert f"Payment of $100.00 recorded in QuickBooks against INV-8000 (QuickBooks payment {keyed['Id']})" in html
    assert "INV-8000: open, 100.00 open; no such payment" in html  # FieldSync's side
    assert "payment of 100.00 on 2026-12-01, Check, ref. 4417: 100.00 to INV-8000" in html  # QuickBooks' side
    assert "Bring it into FieldSync" in html


def test_the_list_makes_the_same_queries_for_1_and_3_payments_recorded_in_quickbooks(office_client, qbo_company):
    counts = []
    for first, size in ((0, 1), (1, 2)):
        recorded_in_quickbooks(qbo_company, size, first=first)
        with CaptureQueriesContext(connection) as queries:
            assert office_client.get(URL).status_code == 200
        counts.append(len(queries))
    assert QuickBooksChange.objects.filter(change="recorded").count() == 3
    assert counts[0] == counts[1]


def test_people_without_the_export_permission_cannot_bring_it_in(viewer_client, qbo_company):
    recorded_in_quickbooks(qbo_company)
    change = QuickBooksChange.objects.get(change="recorded")
    assert "Bring it into FieldSync" not in viewer_client.get(URL).content.decode()
    assert viewer_client.post(reverse("exports:change_action", args=[change.pk, "bring_in"])).status_code == 403
    assert not Payment.objects.filter(origin="quickbooks").exists()


def test_accept_for_a_payment_deleted_in_quickbooks_records_it_reversed_and_sends_nothing(office_client, qbo_company):
    [payment] = deleted_in_quickbooks(qbo_company)
    change = QuickBooksChange.objects.get()
    in_quickbooks = qbo_company.entities("Payment")

    response = office_client.post(reverse("exports:change_action", args=[change.pk, "accept"]), {"note": "bounced"})

    assert response.status_code == 302
    change.refresh_from_db()
    assert (change.state, change.resolution, change.note) == ("resolved", "accept", "bounced")
    [refund] = payment.refunds.all()
    assert (refund.kind, refund.amount) == ("reversal", payment.amount)
    invoice = Invoice.objects.get(applications__payment=payment)
    assert invoice.status == Invoice.Status.OPEN  # open again, as in QuickBooks
    assert ManualHandlingItem.objects.get(refund=refund).status == "handled"  # nothing to enter in QuickBooks
    assert not QuickBooksMapping.objects.filter(kind="payment", local_key=str(payment.pk)).exists()
    assert QuickBooksMappingAudit.objects.filter(action="unlink", local_key=str(payment.pk)).exists()
    assert qbo_company.entities("Payment") == in_quickbooks  # nothing sent


def test_accept_is_unavailable_for_another_amount_and_says_what_to_do(office_client, qbo_company):
    [payment] = deleted_in_quickbooks(qbo_company)
    change = QuickBooksChange.objects.get()
    change.change = QuickBooksChange.Change.AMOUNT
    change.save()

    html = office_client.get(URL).content.decode()
    assert "Accept QuickBooks&#x27; version" not in html and "Accept QuickBooks' version</button>" not in html
    assert "correct the amount in QuickBooks" in html
    response = office_client.post(reverse("exports:change_action", args=[change.pk, "accept"]), follow=True)
    assert "correct the amount in QuickBooks" in response.content.decode()
    change.refresh_from_db()
    assert change.state == "open"
    assert not payment.refunds.exists()


def test_a_payment_brought_in_shows_where_it_was_recorded_and_offers_no_export(office_client, qbo_company):
    QuickBooksMappingSettings.objects.filter(realm_id=qbo_company.realm_id).update(bring_in_quickbooks_payments=True)
    [keyed] = recorded_in_quickbooks(qbo_company)
    payment = Payment.objects.get(origin="quickbooks")

    html = office_client.get(reverse("exports:payment_detail", args=[payment.pk])).content.decode()

    assert "Recorded in QuickBooks" in html
    assert f"Keyed in QuickBooks (payment {keyed['Id']}) and brought into FieldSync; never exported." in html
    assert reverse("exports:payment_export", args=[payment.pk]) not in html
    assert reverse("exports:payment_undo", args=[payment.pk]) not in html
    assert "Needs manual handling" in html  # a refund of it would be entered in QuickBooks


def test_the_bring_in_setting_is_on_the_quickbooks_page(client, qbo_company, django_user_model):
    from django.contrib.auth.models import Permission

    from quickbooks_export.forms import MappingSettingsForm

    assert "bring_in_quickbooks_payments" in MappingSettingsForm.base_fields
    settings_row = QuickBooksMappingSettings.objects.get(realm_id=qbo_company.realm_id)
    assert settings_row.bring_in_quickbooks_payments is False  # off by default
    admin = django_user_model.objects.create_user("owner", password="pw")
    admin.user_permissions.add(
        *Permission.objects.filter(codename__in=["manage_quickbooks_connection", "view_quickbooksconnection"])
    )
    client.force_login(admin)
    html = client.get(reverse("quickbooks_export:settings")).content.decode()
    assert "Bring in payments recorded in QuickBooks" in html


def test_a_payment_brought_in_then_deleted_in_quickbooks_can_be_accepted_not_sent(office_client, qbo_company):
    QuickBooksMappingSettings.objects.filter(realm_id=qbo_company.realm_id).update(bring_in_quickbooks_payments=True)
    [keyed] = recorded_in_quickbooks(qbo_company)
    payment = Payment.objects.get(origin="quickbooks")
    qbo_company.server.delete_entity(qbo_company.realm_id, "Payment", keyed["Id"])
    QuickBooksEvent.objects.create(
        event_id="gone", realm_id=qbo_company.realm_id, entity="Payment", qbo_id=keyed["Id"], operation="Delete"
    )
    webhook_events_check()
    change = QuickBooksChange.objects.get(change="deleted", local_key=str(payment.pk))

    html = office_client.get(URL).content.decode()
    assert reverse("exports:change_action", args=[change.pk, "resend"]) not in html
    response = office_client.post(reverse("exports:change_action", args=[change.pk, "resend"]), follow=True)
    assert "nothing of ours to send" in response.content.decode()
    assert QuickBooksChange.objects.get(pk=change.pk).state == "open"

    office_client.post(reverse("exports:change_action", args=[change.pk, "accept"]))

    [refund] = payment.refunds.all()
    assert (refund.kind, refund.amount) == ("reversal", payment.amount)
    assert Invoice.objects.get(applications__payment=payment).status == Invoice.Status.OPEN
    assert not QuickBooksMapping.objects.filter(kind="payment", qbo_id=keyed["Id"]).exists()
