import pytest

from billing.models import ManualHandlingItem, Payment, Refund
from tests.factories import CustomerFactory, issued_invoice, pay

pytestmark = pytest.mark.django_db


def refund_body(**fields):
    return {"reason": "Overcharged", "refunded_on": "2026-11-12", "method": "card", **fields}


def test_a_refund_against_a_payment_reopens_the_invoice(api):
    invoice = issued_invoice(amount="100.00", number="INV-1042")
    payment = pay(invoice, "100.00")
    response = api.post(f"payments/{payment.pk}/refunds/", refund_body(amount="25.00", invoice="INV-1042"))
    assert response.status_code == 201
    refund = response.json()
    assert refund["payment"] == payment.pk and refund["amount"] == "25.00" and refund["invoice"] == "INV-1042"

    shown = api.get(f"payments/{payment.pk}/").json()
    assert shown["amount_refunded"] == "25.00" and shown["amount_applied"] == "75.00"
    assert shown["refunds"][0]["id"] == refund["id"]
    assert shown["held_reason"] == "Held: INV-1042 still has $25.00 open."
    assert api.get("invoices/INV-1042/").json()["status"] == "open"


def test_a_refund_of_unapplied_credit_names_no_invoice(api):
    customer = CustomerFactory()
    payment = api.post(
        "payments/", {"customer": customer.pk, "amount": "30.00", "method": "cash", "received_on": "2026-11-10"}
    ).json()
    response = api.post(f"payments/{payment['id']}/refunds/", refund_body(amount="30.00"))
    assert response.status_code == 201 and response.json()["invoice"] is None


def test_a_refund_larger_than_what_remains_is_refused(api):
    payment = pay(issued_invoice(amount="100.00"), "100.00")
    api.post(f"payments/{payment.pk}/refunds/", refund_body(amount="80.00"))
    response = api.post(f"payments/{payment.pk}/refunds/", refund_body(amount="30.00"))
    assert response.status_code == 400
    assert response.json()["code"] == "refund_exceeds_payment"
    assert Refund.objects.count() == 1


def test_a_refund_needs_a_reason_and_a_good_amount(api):
    payment = pay(issued_invoice(amount="100.00"), "100.00")
    response = api.post(f"payments/{payment.pk}/refunds/", refund_body(amount=5.0, reason=""))
    assert response.status_code == 400
    details = response.json()["details"]
    assert details["amount"][0]["code"] == "float_not_allowed"
    assert details["reason"][0]["code"] == "blank"


def test_a_refund_for_an_invoice_the_payment_does_not_pay_is_refused(api):
    payment = pay(issued_invoice(amount="100.00"), "100.00")
    other = issued_invoice(amount="10.00")
    response = api.post(f"payments/{payment.pk}/refunds/", refund_body(amount="5.00", invoice=other.number))
    assert response.status_code == 400 and response.json()["code"] == "not_applied_to_invoice"


def test_a_refund_of_an_unknown_payment_is_404(api):
    assert api.post("payments/999999/refunds/", refund_body(amount="5.00")).status_code == 404


def test_a_refund_of_an_exported_payment_waits_for_a_person(api):
    payment = pay(issued_invoice(amount="100.00"), "100.00")
    Payment.objects.filter(pk=payment.pk).update(export_status=Payment.ExportStatus.EXPORTED, export_reference="88")
    response = api.post(f"payments/{payment.pk}/refunds/", refund_body(amount="10.00"))
    assert response.status_code == 201
    item = ManualHandlingItem.objects.get()
    assert item.refund_id == response.json()["id"] and item.quickbooks_reference == "88"


@pytest.mark.parametrize(
    "kind, status, open_balance",
    [("no_longer_owed", "to_enter", "0.00"), ("reversal", "netted", "25.00")],
)
def test_a_refund_says_its_kind_and_its_quickbooks_status(api, kind, status, open_balance):
    invoice = issued_invoice(amount="100.00", number="INV-1050")
    payment = pay(invoice, "100.00")
    response = api.post(f"payments/{payment.pk}/refunds/", refund_body(amount="25.00", kind=kind))
    assert response.status_code == 201
    body = response.json()
    assert body["kind"] == kind and body["quickbooks_status"] == status and body["quickbooks_id"] is None
    shown = api.get(f"payments/{payment.pk}/").json()["refunds"][0]
    assert shown["kind"] == kind and shown["quickbooks_status"] == status
    assert api.get("invoices/INV-1050/").json()["open_balance"] == open_balance


def test_an_overpayment_refund_larger_than_the_credit_is_refused_with_what_to_do(api):
    payment = pay(issued_invoice(amount="550.00"), "550.00", payment_amount="560.00")
    response = api.post(f"payments/{payment.pk}/refunds/", refund_body(amount="60.00", kind="unapplied_credit"))
    assert response.status_code == 400
    assert response.json()["code"] == "refund_exceeds_credit"
    assert "unapplied credit of $10.00" in response.json()["message"]
    assert not Refund.objects.exists()
