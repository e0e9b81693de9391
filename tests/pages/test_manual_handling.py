"""Needs manual handling: what to do in QuickBooks for each refund of an exported payment, and marking it handled."""

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from billing import services as billing_services
from billing.context_processors import manual_handling
from billing.models import ManualHandlingItem, Payment
from tests.factories import CustomerFactory, issued_invoice, pay

pytestmark = pytest.mark.django_db
S = Payment.ExportStatus
URL = reverse("exports:manual_items")
HTMX = {"HX-Request": "true"}


def exported_and_refunded(*, reference: str = "145", amount: str = "110.00") -> ManualHandlingItem:
    customer = CustomerFactory(display_name="Riverside Elementary PTA")
    payment = pay(
        issued_invoice(customer=customer, amount="330.00"),
        "330.00",
        reference="3381",
        received_on=datetime.date(2026, 10, 12),
    )
    for status in (S.QUEUED, S.EXPORTING, S.EXPORTED):
        billing_services.payment_export_status_transition(
            payment_id=payment.pk, to_status=status, export_reference=reference
        )
    billing_services.refund_record(
        payment=payment,
        amount=amount,
        reason="One unit was not inspected",
        refunded_on=datetime.date(2026, 10, 14),
        method="check",
    )
    return ManualHandlingItem.objects.get(payment=payment)


def test_an_open_item_says_exactly_what_to_enter_in_quickbooks(office_client, settings):
    settings.QBO_ENVIRONMENT = "production"
    exported_and_refunded()

    html = office_client.get(URL).content.decode()

    assert "Refund $110.00 to Riverside Elementary PTA" in html and "Refund Receipt" in html
    assert "Oct 14, 2026" in html and "Check" in html and "One unit was not inspected" in html
    assert "$330.00 received Oct 12, 2026" in html and "ref 3381" in html
    assert "Payment 145" in html and "https://app.qbo.intuit.com/app/recvpayment?txnId=145" in html
    assert "Mark handled" in html


def test_mark_handled_needs_a_note_shown_in_place(office_client):
    item = exported_and_refunded()

    response = office_client.post(reverse("billing:manual_item_handled", args=[item.pk]), {"note": ""}, headers=HTMX)

    html = response.content.decode()
    assert response.status_code == 200 and "<html" not in html and "This field is required." in html
    item.refresh_from_db()
    assert item.status == ManualHandlingItem.Status.OPEN


def test_handled_items_stay_visible_with_who_when_and_the_note(office_client, office_user):
    item = exported_and_refunded()

    response = office_client.post(
        reverse("billing:manual_item_handled", args=[item.pk]), {"note": "Refund Receipt 1043 entered"}, headers=HTMX
    )

    assert response["HX-Redirect"] == URL
    item.refresh_from_db()
    assert item.status == ManualHandlingItem.Status.HANDLED and item.handled_by == office_user
    html = office_client.get(URL).content.decode()
    assert "Marked handled: refund of $110.00 to Riverside Elementary PTA." in html
    assert "Nothing to do" in html
    handled = html.split('id="handled-heading"')[1]
    assert "Refund Receipt 1043 entered" in handled and "Dana Office" in handled and "$110.00" in handled


def test_marking_an_item_handled_twice_says_who_did_it_first(office_client, office_user):
    item = exported_and_refunded()
    billing_services.manual_item_mark_handled(item=item, user=office_user, note="done")

    html = office_client.post(
        reverse("billing:manual_item_handled", args=[item.pk]), {"note": "again"}, headers=HTMX
    ).content.decode()

    assert "Already marked handled by dana" in html


def test_an_item_for_a_payment_entered_by_hand_says_how_to_find_it(office_client):
    exported_and_refunded(reference="")
    html = office_client.get(URL).content.decode()
    assert "Entered by hand — find it in QuickBooks by customer, date and amount." in html


def test_empty_state_explains_what_appears_here(office_client):
    html = office_client.get(URL).content.decode()
    assert "Nothing to do" in html and "Nothing handled yet" in html


def test_navigation_shows_the_open_count(office_client, office_user):
    assert '<span class="count"' not in office_client.get(reverse("exports:log")).content.decode()
    first = exported_and_refunded()
    exported_and_refunded(amount="20.00")

    html = office_client.get(reverse("exports:log")).content.decode()
    assert 'title="2 open">2</span>' in html

    billing_services.manual_item_mark_handled(item=first, user=office_user, note="done")
    assert 'title="1 open">1</span>' in office_client.get(reverse("exports:log")).content.decode()


def test_the_count_is_one_query_and_none_for_anonymous_users(rf, office_user, django_assert_num_queries):
    from django.contrib.auth.models import AnonymousUser

    from .conftest import make_user

    exported_and_refunded()
    request = rf.get("/")
    request.user = office_user
    office_user.has_perm("billing.view_manualhandlingitem")  # permissions are loaded once per request anyway
    with django_assert_num_queries(1):
        assert int(str(manual_handling(request)["manual_items_open"])) == 1
    request.user = make_user("tech")  # no view permission: no badge, no count
    assert not manual_handling(request)["manual_items_open"]
    request.user = AnonymousUser()
    with django_assert_num_queries(0):
        assert not manual_handling(request)["manual_items_open"]


@pytest.mark.parametrize("environment", ["production", "local"])
def test_the_page_costs_the_same_queries_for_one_item_and_several(office_client, settings, environment):
    settings.QBO_ENVIRONMENT = environment
    exported_and_refunded()

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            office_client.get(URL)
        return len(captured)

    one = queries()
    for _ in range(3):
        exported_and_refunded(amount="10.00")
    assert queries() == one


def test_an_item_for_a_payment_still_on_its_way_says_to_wait_not_entered_by_hand(office_client):
    payment = pay(issued_invoice(amount="100.00"), "100.00")
    for status in (S.QUEUED, S.EXPORTING):
        billing_services.payment_export_status_transition(payment_id=payment.pk, to_status=status)
    billing_services.refund_record(
        payment=payment, amount="5.00", reason="x", refunded_on=datetime.date(2026, 10, 14), method="check"
    )
    html = office_client.get(URL).content.decode()
    assert "Not in QuickBooks yet" in html and "Entered by hand" not in html


def test_record_it_for_me_is_offered_only_when_the_company_allows_and_records_once(office_client, qbo_company):
    from decimal import Decimal

    from quickbooks_export.models import QuickBooksMappingSettings

    from .conftest import drain

    invoice = issued_invoice(amount="330.00")
    payment = pay(invoice, "330.00")
    office_client.post(reverse("exports:payment_export", args=[payment.pk]))
    drain(qbo_company.realm_id)
    payment.refresh_from_db()
    assert payment.export_status == S.EXPORTED
    billing_services.refund_record(
        payment=payment,
        amount="30.00",
        kind="reversal",
        reason="Chargeback",
        refunded_on=datetime.date(2026, 10, 14),
        method="card",
    )
    item = ManualHandlingItem.objects.get()
    assert "Record it in QuickBooks for me" not in office_client.get(URL).content.decode()  # off by default

    QuickBooksMappingSettings.objects.filter(realm_id=qbo_company.realm_id).update(record_refunds_for_me=True)
    assert "Record it in QuickBooks for me" in office_client.get(URL).content.decode()
    response = office_client.post(reverse("exports:manual_item_record", args=[item.pk]), follow=True)

    assert "Recorded in QuickBooks (payment" in response.content.decode()
    item.refresh_from_db()
    assert item.status == ManualHandlingItem.Status.HANDLED and item.handled_quickbooks_id == payment.export_reference
    [qbo_invoice] = qbo_company.entities("Invoice")
    assert Decimal(str(qbo_invoice["Balance"])) == Decimal("30.00")
    again = office_client.post(reverse("exports:manual_item_record", args=[item.pk]), follow=True)
    assert "Not recorded in QuickBooks: This item is already handled." in again.content.decode()


def test_record_it_for_me_voids_a_whole_reversal_or_says_why_it_cannot(office_client, qbo_company):
    from decimal import Decimal

    from quickbooks_export.models import QuickBooksMappingSettings

    from .conftest import drain

    QuickBooksMappingSettings.objects.update_or_create(
        realm_id=qbo_company.realm_id, defaults={"record_refunds_for_me": True}
    )
    changed, untouched = pay(issued_invoice(amount="90.00"), "90.00"), pay(issued_invoice(amount="70.00"), "70.00")
    for payment in (changed, untouched):
        office_client.post(reverse("exports:payment_export", args=[payment.pk]))
    drain(qbo_company.realm_id)
    for payment in (changed, untouched):
        payment.refresh_from_db()
        billing_services.refund_record(
            payment=payment,
            amount=str(payment.amount),
            kind="reversal",
            reason="Check bounced",
            refunded_on=datetime.date(2026, 10, 14),
            method="check",
        )
    qbo_company.server.edit_entity(qbo_company.realm_id, "Payment", changed.export_reference, {"PaymentRefNum": "77"})

    refused = office_client.post(
        reverse("exports:manual_item_record", args=[ManualHandlingItem.objects.get(payment=changed).pk]), follow=True
    )
    html = refused.content.decode()
    assert "Not recorded in QuickBooks: QuickBooks payment" in html and "was changed in QuickBooks" in html
    assert ManualHandlingItem.objects.get(payment=changed).status == ManualHandlingItem.Status.OPEN

    done = office_client.post(
        reverse("exports:manual_item_record", args=[ManualHandlingItem.objects.get(payment=untouched).pk]), follow=True
    )
    assert "the whole payment was reversed, so it was voided there" in done.content.decode()
    qbo_payments = {row["Id"]: row for row in qbo_company.entities("Payment")}
    assert Decimal(str(qbo_payments[untouched.export_reference]["TotalAmt"])) == 0
    assert Decimal(str(qbo_payments[changed.export_reference]["TotalAmt"])) == Decimal("90.00")
