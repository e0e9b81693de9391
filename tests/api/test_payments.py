from decimal import Decimal

import pytest

from billing.models import Payment, PaymentApplication
from tests.factories import CustomerFactory, InvoiceFactory, issued_invoice, pay

pytestmark = pytest.mark.django_db


def body(**fields):
    return {"method": "card", "received_on": "2026-11-10", **fields}


def test_a_payment_to_one_invoice_by_its_number_applies_the_whole_amount(api):
    invoice = issued_invoice(amount="100.00", number="INV-1042")
    response = api.post("payments/", body(invoice="INV-1042", amount="100.00", reference="ch_1"))
    assert response.status_code == 201
    payment = response.json()
    assert payment["customer"] == invoice.customer_id
    assert payment["applications"] == [{"invoice": "INV-1042", "amount": "100.00"}]
    assert payment["amount_applied"] == "100.00" and payment["unapplied_credit"] == "0.00"
    assert payment["export_status"] == "not_exported" and payment["export_reference"] == ""
    assert payment["exportable"] is True and payment["held_reason"] == ""


def test_a_payment_split_across_invoices_shows_why_it_is_held(api):
    customer = CustomerFactory()
    issued_invoice(customer=customer, amount="100.00", number="INV-1042")
    issued_invoice(customer=customer, amount="75.00", number="INV-1043")
    response = api.post(
        "payments/",
        body(
            customer=customer.pk,
            amount="160.00",
            applications=[{"invoice": "INV-1042", "amount": "100.00"}, {"invoice": "INV-1043", "amount": "50.00"}],
        ),
    )
    assert response.status_code == 201
    payment = response.json()
    assert payment["unapplied_credit"] == "10.00"
    assert payment["exportable"] is False
    assert payment["held_reason"] == "Held: INV-1043 still has $25.00 open."


@pytest.mark.parametrize(
    ("amount", "code"),
    [
        (100.0, "float_not_allowed"),
        (100, "number_not_allowed"),
        ("100.005", "too_many_decimal_places"),
        ("-100.00", "not_positive"),
        ("0.00", "not_positive"),
        ("1e2", "not_a_number"),
        ("12345678901.00", "too_large"),
    ],
)
def test_bad_amounts_are_refused_with_a_specific_field_error(api, amount, code):
    invoice = issued_invoice(amount="100.00")
    response = api.post("payments/", body(invoice=invoice.number, amount=amount))
    assert response.status_code == 400
    error = response.json()
    assert error["code"] == "invalid"
    assert error["details"]["amount"][0]["code"] == code
    assert not Payment.objects.exists()


def test_a_float_in_an_application_is_refused(api):
    invoice = issued_invoice(amount="100.00")
    response = api.post(
        "payments/",
        body(customer=invoice.customer_id, amount="100.00", applications=[{"invoice": invoice.number, "amount": 50.5}]),
    )
    assert response.status_code == 400
    assert response.json()["details"]["applications"][0]["amount"][0]["code"] == "float_not_allowed"


def test_a_wrong_currency_is_refused(api):
    invoice = issued_invoice(amount="100.00")
    response = api.post("payments/", body(invoice=invoice.number, amount="100.00", currency="CAD"))
    assert response.status_code == 400
    assert response.json()["details"]["currency"][0]["code"] == "currency_mismatch"
    assert not Payment.objects.exists()


def test_another_customers_invoice_is_refused(api):
    theirs = issued_invoice(amount="100.00")
    response = api.post("payments/", body(customer=CustomerFactory().pk, invoice=theirs.number, amount="100.00"))
    assert response.status_code == 400
    assert response.json()["code"] == "wrong_customer"
    assert not Payment.objects.exists()


def test_more_than_the_open_balance_is_refused(api):
    invoice = issued_invoice(amount="100.00", number="INV-1042")
    pay(invoice, "60.00")
    response = api.post("payments/", body(invoice="INV-1042", amount="50.00"))
    assert response.status_code == 400
    error = response.json()
    assert error["code"] == "over_application"
    assert error["details"]["invoice"] == "INV-1042"
    assert Decimal(error["details"]["open_balance"]) == Decimal("40.00")  # "40" on SQLite: see billing._apply
    assert error["message"] == "$50.00 is more than the $40.00 open on INV-1042."
    assert Payment.objects.count() == 1


def test_applications_adding_up_to_more_than_the_payment_are_refused(api):
    invoice = issued_invoice(amount="100.00")
    response = api.post(
        "payments/",
        body(
            customer=invoice.customer_id, amount="50.00", applications=[{"invoice": invoice.number, "amount": "60.00"}]
        ),
    )
    assert response.status_code == 400 and response.json()["code"] == "over_application"


def test_an_unknown_invoice_number_is_a_field_error(api):
    response = api.post("payments/", body(invoice="INV-404", amount="10.00"))
    assert response.status_code == 400
    assert response.json()["details"]["invoice"][0]["code"] == "does_not_exist"


def test_invoice_and_applications_together_are_refused(api):
    invoice = issued_invoice(amount="100.00")
    response = api.post(
        "payments/",
        body(invoice=invoice.number, amount="10.00", applications=[{"invoice": invoice.number, "amount": "10.00"}]),
    )
    assert response.status_code == 400
    assert response.json()["details"]["invoice"][0]["code"] == "invoice_and_applications"


def test_a_payment_with_neither_customer_nor_invoice_is_refused(api):
    response = api.post("payments/", body(amount="10.00"))
    assert response.status_code == 400
    assert response.json()["details"]["customer"][0]["code"] == "required"


def test_unapplied_credit_applied_later(api):
    customer = CustomerFactory()
    invoice = issued_invoice(customer=customer, amount="100.00")
    created = api.post("payments/", body(customer=customer.pk, amount="100.00")).json()
    assert created["held_reason"] == "Held: not applied to any invoice yet; apply it to an invoice first."

    response = api.post(f"payments/{created['id']}/applications/", {"invoice": invoice.number, "amount": "100.00"})
    assert response.status_code == 201
    assert response.json()["exportable"] is True
    assert PaymentApplication.objects.get().amount == invoice.applications.get().amount


def test_read_a_payment(api):
    payment = pay(issued_invoice(amount="100.00"), "100.00")
    body_ = api.get(f"payments/{payment.pk}/").json()
    assert body_["id"] == payment.pk and body_["amount"] == "100.00"
    assert api.get("payments/999999/").status_code == 404
    assert api.get("payments/99999999999999999999999/").status_code == 404


def test_list_payments_with_filters(api):
    exportable = pay(issued_invoice(amount="100.00"), "100.00")
    held = pay(issued_invoice(amount="100.00", number="INV-77"), "40.00")
    Payment.objects.filter(pk=exportable.pk).update(export_status=Payment.ExportStatus.EXPORTED, export_reference="9")

    def ids(**params):
        response = api.get("payments/", params)
        assert response.status_code == 200, response.content
        return [p["id"] for p in response.json()["results"]]

    assert ids() == [held.pk, exportable.pk]
    assert ids(exportable="true") == [exportable.pk]
    assert ids(exportable="false") == [held.pk]
    assert ids(export_status="exported") == [exportable.pk]
    assert ids(export_status=["exported", "not_exported"]) == [held.pk, exportable.pk]
    assert ids(invoice="INV-77") == [held.pk]
    assert ids(customer=held.customer_id) == [held.pk]
    assert ids(received_on_after="2026-11-11") == []
    assert api.get("payments/", {"export_status": "bogus"}).status_code == 400
    assert api.get("payments/", {"received_on_after": "yesterday"}).status_code == 400


def test_following_export_status_changes(api):
    payment = pay(issued_invoice(amount="100.00"), "100.00")
    before = api.get("payments/").json()["results"][0]["created_at"]
    Payment.objects.filter(pk=payment.pk).update(
        export_status=Payment.ExportStatus.EXPORTED, export_status_changed_at="2030-01-01T00:00:00Z"
    )
    changed = api.get("payments/", {"export_status_changed_after": before}).json()["results"]
    assert [(p["id"], p["export_status"]) for p in changed] == [(payment.pk, "exported")]


def test_pages_follow_the_cursor(api):
    invoice = issued_invoice(amount="1000.00")
    payments = [pay(invoice, "10.00") for _ in range(5)]
    first = api.get("payments/", {"page_size": 2}).json()
    assert [p["id"] for p in first["results"]] == [payments[4].pk, payments[3].pk]
    second = api.client.get(first["next"], headers=api.headers).json()
    assert [p["id"] for p in second["results"]] == [payments[2].pk, payments[1].pk]
    assert api.get("payments/", {"cursor": "garbage"}).json()["details"]["cursor"][0]["code"] == "invalid_cursor"


def test_a_draft_invoice_cannot_be_paid(api):
    draft = InvoiceFactory()
    response = api.post("payments/", body(invoice=draft.number, amount="10.00"))
    assert response.status_code == 400 and response.json()["code"] == "invoice_not_open"


def test_the_answer_to_a_post_is_what_a_get_of_the_payment_shows(api):
    """POST answers from what payment_record computed under its locks (no read back): it must be the GET's answer."""
    customer = CustomerFactory()
    paid_before = issued_invoice(customer=customer, amount="90.00", number="INV-2001")
    pay(paid_before, "30.00")
    issued_invoice(customer=customer, amount="75.00", number="INV-1999")
    issued_invoice(customer=customer, amount="40.00", number="INV-2002")
    posts = [
        # Whole amount to one invoice, partly paid before: now paid in full, exportable.
        body(invoice="INV-2001", amount="60.00", reference="  ch_9  ", memo="Balance"),
        # Split, applications not in number order, both invoices still open, plus unapplied credit: held, the
        # reasons in invoice-number order as the stored rule gives them.
        body(
            customer=customer.pk,
            amount="100.00",
            applications=[{"invoice": "INV-2002", "amount": "15.00"}, {"invoice": "INV-1999", "amount": "25.00"}],
        ),
        # Only credit, applied to nothing.
        body(customer=customer.pk, amount="12.34", method="check"),
    ]
    for sent in posts:
        created = api.post("payments/", sent)
        assert created.status_code == 201, created.content

        shown = api.get(f"payments/{created.json()['id']}/").json()
        assert set(created.json()) == set(shown)
        for field, value in shown.items():
            assert created.json()[field] == value, field
    assert created.json()["held_reason"] == "Held: not applied to any invoice yet; apply it to an invoice first."
