"""A payment keyed by hand in QuickBooks against an invoice FieldSync exported: brought in once (setting on), or
listed for a person (setting off, or when it does not fit), through the real clients against the sandbox."""

import datetime
import json
import time
from decimal import Decimal

import pytest
from django.urls import reverse

from billing import services as billing_services
from billing.models import Invoice, Payment
from quickbooks_export.cdc import cdc_sweep
from quickbooks_export.changes import webhook_events_check
from quickbooks_export.models import (
    QuickBooksChange,
    QuickBooksMapping,
    QuickBooksMappingAudit,
    QuickBooksMappingSettings,
    QuickBooksPaymentMethodMapping,
)
from quickbooks_export.sandbox.config import ManualClock
from tests.factories import issued_invoice, pay

from .conftest import connect, export
from .test_sandbox_webhooks import receiver  # noqa: F401 - the fixture

pytestmark = pytest.mark.django_db
TOKEN = "sandbox-verifier-token"


def bring_in(company, on: bool) -> None:
    QuickBooksMappingSettings.objects.filter(realm_id=company.realm_id).update(bring_in_quickbooks_payments=on)


def exported_then_bounced(company, *, number: str = "INV-7001") -> Invoice:
    """INV paid by check and exported; the check bounced: reversed in FieldSync and deleted in QuickBooks, as the
    hand-over says. The invoice is open again on both sides, waiting for the customer to pay again."""
    invoice = issued_invoice(amount="100.00", number=number)
    payment = pay(invoice, "100.00")
    export(payment)
    payment.refresh_from_db()
    billing_services.refund_record(
        payment=payment,
        amount="100.00",
        reason="Check bounced",
        refunded_on=datetime.date(2026, 11, 20),
        method="check",
        kind="reversal",
    )
    company.server.delete_entity(company.realm_id, "Payment", payment.export_reference)
    return invoice


def key_in_quickbooks(company, invoice: Invoice, amount: str = "100.00") -> dict:
    """A bookkeeper receives the new check in QuickBooks, against FieldSync's invoice."""
    qbo_invoice = QuickBooksMapping.objects.get(realm_id=company.realm_id, kind="invoice", local_key=str(invoice.pk))
    qbo_customer = QuickBooksMapping.objects.get(
        realm_id=company.realm_id, kind="customer", local_key=str(invoice.customer_id)
    )
    check = QuickBooksPaymentMethodMapping.objects.get(settings__realm_id=company.realm_id, method="check")
    return company.server.create_entity(
        company.realm_id,
        "Payment",
        {
            "CustomerRef": {"value": qbo_customer.qbo_id},
            "TotalAmt": amount,
            "TxnDate": "2026-12-01",
            "PaymentRefNum": "4417",
            "PaymentMethodRef": {"value": check.qbo_payment_method_id},
            "Line": [{"Amount": amount, "LinkedTxn": [{"TxnId": qbo_invoice.qbo_id, "TxnType": "Invoice"}]}],
        },
    )


def deliver(client, received: list, *, payment_created: str, copies: int = 2, timeout: float = 5.0) -> None:
    """Once the sandbox has notified the creation of QuickBooks payment `payment_created` (`copies` times: its
    duplicate switch), hand everything it notified to FieldSync's endpoint, in the order it came."""

    def created(body: bytes) -> bool:
        payload = json.loads(body)
        if isinstance(payload, list):  # CloudEvents
            return any(
                e["type"] == "qbo.payment.created.v1" and e["intuitentityid"] == payment_created for e in payload
            )
        return any(
            e["name"] == "Payment" and e["operation"] == "Create" and e["id"] == payment_created
            for n in payload["eventNotifications"]
            for e in n["dataChangeEvent"]["entities"]
        )

    def notified() -> int:
        return sum(1 for _, body in list(received) if created(body))

    deadline = time.monotonic() + timeout
    while notified() < copies and time.monotonic() < deadline:
        time.sleep(0.05)
    assert notified() == copies
    for signature, body in list(received):
        response = client.post(
            reverse("quickbooks_export:webhooks"),
            body,
            content_type="application/json",
            headers={"intuit-signature": signature},
        )
        assert response.status_code == 200


def brought_in() -> list[Payment]:
    return list(Payment.objects.filter(origin=Payment.Origin.QUICKBOOKS))


@pytest.mark.parametrize("fmt", ["cloudevents", "legacy"])
def test_a_payment_keyed_in_quickbooks_is_brought_in_once_by_webhook(
    fmt,
    receiver,  # noqa: F811 - the fixture imported above
    qbo_sandbox_factory,
    settings,
    client,
):
    settings.QBO_WEBHOOK_VERIFIER_TOKEN = TOKEN
    server = qbo_sandbox_factory(
        webhook_url=receiver.url, webhook_verifier_token=TOKEN, webhook_format=fmt, webhook_duplicate=True
    )
    company = connect(server, settings)
    bring_in(company, True)
    invoice = exported_then_bounced(company)
    keyed = key_in_quickbooks(company, invoice)
    in_quickbooks_before = len(company.entities("Payment"))

    deliver(client, receiver.received, payment_created=keyed["Id"])
    webhook_events_check()

    [payment] = brought_in()
    assert payment.amount == Decimal("100.00")
    assert payment.export_status == Payment.ExportStatus.IN_QUICKBOOKS
    assert (payment.method, payment.reference, payment.received_on) == ("check", "4417", datetime.date(2026, 12, 1))
    assert payment.export_reference == keyed["Id"]
    assert [(a.invoice_id, a.amount) for a in payment.applications.all()] == [(invoice.pk, Decimal("100.00"))]
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID
    mapping = QuickBooksMapping.objects.get(realm_id=company.realm_id, kind="payment", qbo_id=keyed["Id"])
    assert mapping.local_key == str(payment.pk)
    assert QuickBooksMappingAudit.objects.filter(action="bring_in", local_key=str(payment.pk)).count() == 1
    assert not QuickBooksChange.objects.filter(change="recorded").exists()

    # Intuit delivers again, later, and the sweep sees the same payment: nothing more.
    deliver(client, receiver.received, payment_created=keyed["Id"])
    webhook_events_check()
    cdc_sweep()
    assert len(brought_in()) == 1
    assert not QuickBooksChange.objects.filter(change="recorded").exists()

    # Never exported back: an export of it posts nothing to QuickBooks.
    batch = export(payment)
    assert batch.items.get(payment=payment).outcome == "linked"
    assert len(company.entities("Payment")) == in_quickbooks_before


def test_with_webhooks_lost_the_sweep_brings_it_in_once(qbo_sandbox_factory, settings):
    clock = ManualClock()
    company = connect(qbo_sandbox_factory(clock=clock), settings)
    bring_in(company, True)
    invoice = exported_then_bounced(company)
    clock.advance(5)
    keyed = key_in_quickbooks(company, invoice)

    cdc_sweep()
    cdc_sweep()  # the overlap sees it again

    [payment] = brought_in()
    assert payment.export_reference == keyed["Id"]
    assert payment.applications.get().invoice_id == invoice.pk


def test_setting_off_lists_it_and_bring_it_in_brings_it_in_once(
    qbo_sandbox_factory, settings, client, django_user_model
):
    from django.contrib.auth.models import Permission

    clock = ManualClock()
    company = connect(qbo_sandbox_factory(clock=clock), settings)
    bring_in(company, False)
    invoice = exported_then_bounced(company)
    clock.advance(5)
    keyed = key_in_quickbooks(company, invoice)

    cdc_sweep()
    cdc_sweep()

    assert brought_in() == []
    [change] = QuickBooksChange.objects.filter(change="recorded")
    assert (change.qbo_id, change.state, change.found_by) == (keyed["Id"], "open", "cdc")
    assert change.theirs["total"] == "100.00"
    assert change.theirs["invoices"] == [
        {"qbo_id": change.theirs["invoices"][0]["qbo_id"], "number": "INV-7001", "amount": "100.00"}
    ]
    assert change.ours["invoices"][0]["open_balance"] == "100.00"

    user = django_user_model.objects.create_user("bookkeeper", password="pw")
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_exportbatch", "export_payments"]))
    client.force_login(user)
    url = reverse("exports:change_action", args=[change.pk, "bring_in"])
    response = client.post(url, {"note": "Customer paid again by check"}, follow=True)
    assert response.status_code == 200
    [payment] = brought_in()
    change.refresh_from_db()
    assert (change.state, change.resolution, change.resolved_by, change.note) == (
        "resolved",
        "bring_in",
        user,
        "Customer paid again by check",
    )
    assert change.local_key == str(payment.pk)

    response = client.post(url, follow=True)  # a second click
    assert "already dealt with" in response.content.decode()
    cdc_sweep()
    assert brought_in() == [payment]


def test_a_payment_that_would_overpay_our_invoice_is_listed_not_brought_in(qbo_sandbox_factory, settings):
    clock = ManualClock()
    company = connect(qbo_sandbox_factory(clock=clock), settings)
    bring_in(company, True)
    invoice = issued_invoice(amount="100.00", number="INV-7002")
    ours = pay(invoice, "100.00")
    export(ours)
    ours.refresh_from_db()
    # Someone deleted FieldSync's payment in QuickBooks and keyed it again by hand: FieldSync has it paid already.
    clock.advance(5)
    company.server.delete_entity(company.realm_id, "Payment", ours.export_reference)
    keyed = key_in_quickbooks(company, invoice)

    cdc_sweep()

    assert brought_in() == []
    [change] = QuickBooksChange.objects.filter(change="recorded")
    assert change.qbo_id == keyed["Id"]
    assert "more than the $0.00 open on INV-7002" in change.ours["reason"]
    assert QuickBooksChange.objects.get(change="deleted").local_key == str(ours.pk)  # the deletion, as before


def test_a_payment_carrying_fieldsyncs_marker_is_never_brought_in(qbo_sandbox_factory, settings):
    """A create of FieldSync's whose answer was lost carries the marker: the export adopts it; it is not new."""
    clock = ManualClock()
    company = connect(qbo_sandbox_factory(clock=clock), settings)
    bring_in(company, True)
    invoice = exported_then_bounced(company)
    clock.advance(5)
    keyed = key_in_quickbooks(company, invoice)
    company.server.edit_entity(company.realm_id, "Payment", keyed["Id"], {"PrivateNote": "FieldSync payment #4242"})

    cdc_sweep()

    assert brought_in() == []
    assert not QuickBooksChange.objects.filter(change="recorded").exists()


def test_a_payment_that_also_pays_an_invoice_fieldsync_did_not_export_is_listed(qbo_sandbox_factory, settings):
    clock = ManualClock()
    company = connect(qbo_sandbox_factory(clock=clock), settings)
    bring_in(company, True)
    invoice = exported_then_bounced(company)
    ours = QuickBooksMapping.objects.get(realm_id=company.realm_id, kind="invoice", local_key=str(invoice.pk))
    theirs = company.server.create_entity(
        company.realm_id,
        "Invoice",
        {
            "CustomerRef": {"value": company.entities("Invoice")[0]["CustomerRef"]["value"]},
            "Line": [
                {
                    "DetailType": "SalesItemLineDetail",
                    "Amount": "30.00",
                    "SalesItemLineDetail": {"ItemRef": {"value": company.entities("Item")[0]["Id"]}},
                }
            ],
        },
    )
    clock.advance(5)
    keyed = company.server.create_entity(
        company.realm_id,
        "Payment",
        {
            "CustomerRef": theirs["CustomerRef"],
            "TotalAmt": "130.00",
            "Line": [
                {"Amount": "100.00", "LinkedTxn": [{"TxnId": ours.qbo_id, "TxnType": "Invoice"}]},
                {"Amount": "30.00", "LinkedTxn": [{"TxnId": theirs["Id"], "TxnType": "Invoice"}]},
            ],
        },
    )

    cdc_sweep()

    assert brought_in() == []
    [change] = QuickBooksChange.objects.filter(change="recorded")
    assert change.qbo_id == keyed["Id"]
    assert f"also pays QuickBooks invoice {theirs['Id']}, which FieldSync did not export" in change.ours["reason"]
