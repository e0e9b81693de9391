"""Recording payments: against one invoice, split across several, unapplied credit applied later; the held
payment's page offers "Record the remaining $50.00" with the form filled in."""

from decimal import Decimal

import pytest
from django.urls import reverse

from billing.models import Payment, PaymentApplication
from billing.selectors import invoice_get_with_balances, payment_export_readiness
from tests.factories import CustomerFactory, issued_invoice, pay

pytestmark = pytest.mark.django_db


def payment_data(**fields) -> dict:
    return {"amount": "100.00", "method": "check", "received_on": "2026-12-02", "reference": "1001", **fields}


def test_recording_a_payment_against_one_invoice_pays_it(clerk_client):
    invoice = issued_invoice(amount="100.00", number="INV-1")
    url = reverse("records:payment_create", args=[invoice.customer_id])
    response = clerk_client.post(url, payment_data(**{f"apply_{invoice.pk}": "100.00"}))
    payment = Payment.objects.get()
    assert response["Location"] == reverse("exports:payment_detail", args=[payment.pk])
    assert (payment.amount, payment.method, payment.reference) == (Decimal("100.00"), "check", "1001")
    invoice.refresh_from_db()
    assert invoice.status == "paid"
    assert payment_export_readiness(payment_id=payment.pk).exportable


def test_one_payment_split_across_two_invoices(clerk_client):
    customer = CustomerFactory()
    first = issued_invoice(customer=customer, amount="60.00")
    second = issued_invoice(customer=customer, amount="90.00")
    url = reverse("records:payment_create", args=[customer.pk])
    clerk_client.post(url, payment_data(amount="150", **{f"apply_{first.pk}": "60", f"apply_{second.pk}": "90"}))
    applied = dict(PaymentApplication.objects.values_list("invoice__number", "amount"))
    assert applied == {first.number: Decimal("60.00"), second.number: Decimal("90.00")}


def test_money_not_applied_stays_as_credit_and_can_be_applied_later(clerk_client):
    customer = CustomerFactory()
    url = reverse("records:payment_create", args=[customer.pk])
    clerk_client.post(url, payment_data(amount="80.00"))
    payment = Payment.objects.get()
    invoice = issued_invoice(customer=customer, amount="50.00", number="INV-C")
    page = clerk_client.get(reverse("records:invoice_detail", args=[invoice.pk])).content.decode()
    assert "Unapplied credit" in page and "Apply it here" in page
    response = clerk_client.post(
        reverse("records:payment_apply_credit", args=[payment.pk]), {"invoice": invoice.pk, "amount": "50.00"}
    )
    assert response.status_code == 302
    assert invoice_get_with_balances(invoice_id=invoice.pk).open_balance == Decimal("0.00")


def test_applying_more_credit_than_is_left_is_refused_and_changes_nothing(clerk_client):
    customer = CustomerFactory()
    clerk_client.post(reverse("records:payment_create", args=[customer.pk]), payment_data(amount="30.00"))
    payment = Payment.objects.get()
    invoice = issued_invoice(customer=customer, amount="50.00")
    response = clerk_client.post(
        reverse("records:payment_apply_credit", args=[payment.pk]), {"invoice": invoice.pk, "amount": "40.00"}
    )
    assert response.status_code == 400
    assert "$40.00 is more than the $30.00 of this payment left to apply." in response.content.decode()
    assert not PaymentApplication.objects.exists()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"amount": "abc"}, "Amount received: type an amount in figures, like 150.00."),
        ({"amount": "1e3"}, "Amount received: type an amount in figures, like 150.00."),
        ({"amount": "0"}, "Amount received must be greater than zero (got 0)."),
        ({"amount": "10.001"}, "Amount received 10.001 has more than two decimal places."),
        ({"amount": "50.00", "apply": "60.00"}, "The applications add up to $60.00, more than the payment of $50.00."),
        ({"amount": "200.00", "apply": "150.00"}, "$150.00 is more than the $100.00 open on INV-2."),
        ({"received_on": ""}, "This field is required."),
        ({"method": "bitcoin"}, "Select a valid choice. bitcoin is not one of the available choices."),
    ],
)
def test_a_bad_payment_is_refused_in_place_and_nothing_is_saved(clerk_client, fields, message):
    invoice = issued_invoice(amount="100.00", number="INV-2")
    data = payment_data(**fields)
    if "apply" in data:
        data[f"apply_{invoice.pk}"] = data.pop("apply")
    response = clerk_client.post(reverse("records:payment_create", args=[invoice.customer_id]), data)
    assert response.status_code == 400
    page = response.content.decode()
    assert message in page and "Nothing was saved" in page
    assert not Payment.objects.exists() and not PaymentApplication.objects.exists()
    invoice.refresh_from_db()
    assert invoice.status == "open"


def test_a_held_deposit_offers_to_record_the_remaining_amount_with_the_form_filled_in(clerk_client):
    invoice = issued_invoice(amount="250.00", number="INV-3")
    deposit = pay(invoice, "200.00")
    page = clerk_client.get(reverse("exports:payment_detail", args=[deposit.pk])).content.decode()
    assert "INV-3 still has $50.00 open" in page
    link = reverse("records:payment_create", args=[invoice.customer_id]) + f"?invoice={invoice.pk}&amp;amount=50.00"
    assert f'<a href="{link}">Record the remaining $50.00</a>' in page  # beside the invoice
    assert (
        f'<a class="button primary" href="{link}">Record the remaining $50.00 on INV-3</a>' in page
    )  # QuickBooks card
    form = clerk_client.get(link.replace("&amp;", "&")).context["form"]
    assert form[f"apply_{invoice.pk}"].value() == "50.00" and form["amount"].value() == "50.00"
    response = clerk_client.post(
        link.replace("&amp;", "&"), payment_data(amount="50.00", **{f"apply_{invoice.pk}": "50.00"})
    )
    assert response.status_code == 302
    assert payment_export_readiness(payment_id=deposit.pk).exportable


def test_no_record_the_remaining_link_without_the_permission(viewer_client):
    invoice = issued_invoice(amount="250.00")
    deposit = pay(invoice, "200.00")
    page = viewer_client.get(reverse("exports:payment_detail", args=[deposit.pk])).content.decode()
    assert "Record the remaining" not in page
