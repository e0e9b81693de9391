"""Record pages need a signed-in user and the model's permission: view to read, add/change to write. Without it:
no button, 403, and nothing changes."""

import pytest
from django.urls import reverse

from billing.models import Customer, Invoice, Job, Payment
from tests.factories import CustomerFactory, InvoiceFactory, InvoiceLineFactory, PaymentFactory
from tests.pages.conftest import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(db):
    customer = CustomerFactory(display_name="Kept Name")
    invoice = InvoiceFactory(customer=customer, number="INV-W")
    InvoiceLineFactory(invoice=invoice)
    payment = PaymentFactory(customer=customer)
    return {"customer": customer.pk, "invoice": invoice.pk, "payment": payment.pk}


def reads(w) -> list[tuple[str, str]]:
    """(url, the permission it needs)."""
    c, i = w["customer"], w["invoice"]
    return [
        (reverse("records:customer_list"), "view_customer"),
        (reverse("records:customer_detail", args=[c]), "view_customer"),
        (reverse("records:invoice_list"), "view_invoice"),
        (reverse("records:invoice_detail", args=[i]), "view_invoice"),
        (reverse("records:customer_create"), "add_customer"),
        (reverse("records:customer_edit", args=[c]), "change_customer"),
        (reverse("records:job_create", args=[c]), "add_job"),
        (reverse("records:invoice_create", args=[c]), "add_invoice"),
        (reverse("records:payment_create", args=[c]), "add_payment"),
        (reverse("records:payment_apply_credit", args=[w["payment"]]), "change_payment"),
    ]


def writes(w) -> list[tuple[str, dict, str]]:
    c, i = w["customer"], w["invoice"]
    return [
        (reverse("records:customer_create"), {"display_name": "New"}, "add_customer"),
        (reverse("records:customer_edit", args=[c]), {"display_name": "Changed"}, "change_customer"),
        (reverse("records:job_create", args=[c]), {"number": "J9", "title": "T", "status": "scheduled"}, "add_job"),
        (reverse("records:invoice_issue", args=[i]), {}, "change_invoice"),
        (reverse("records:invoice_void", args=[i]), {}, "change_invoice"),
        (
            reverse("records:payment_create", args=[c]),
            {"amount": "5.00", "method": "cash", "received_on": "2026-12-01"},
            "add_payment",
        ),
    ]


def nothing_changed(w) -> bool:
    return (
        Customer.objects.get().display_name == "Kept Name"
        and not Job.objects.exists()
        and Invoice.objects.get().status == "draft"
        and Payment.objects.count() == 1
    )


def test_anonymous_people_are_sent_to_sign_in_and_change_nothing(client, world):
    for url, _ in reads(world):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login")), url
    for url, data, _ in writes(world):
        assert client.post(url, data).status_code == 302, url
    assert nothing_changed(world)


def test_signed_in_without_the_permission_gets_403_everywhere_and_changes_nothing(client, world):
    client.force_login(make_user("tech"))
    for url, _ in reads(world):
        assert client.get(url).status_code == 403, url
    for url, data, _ in writes(world):
        assert client.post(url, data).status_code == 403, url
    assert nothing_changed(world)


def test_each_page_needs_exactly_its_own_permission(client, world):
    for n, (url, codename) in enumerate(reads(world)):
        client.force_login(make_user(f"only{n}", codename))
        assert client.get(url).status_code == 200, url


def test_readers_see_no_buttons_for_what_they_may_not_do(client, world):
    client.force_login(make_user("reader", "view_customer", "view_invoice"))
    page = client.get(reverse("records:customer_detail", args=[world["customer"]])).content.decode()
    for button in ("Edit", "New job", "New invoice", "Record a payment"):
        assert f">{button}</a>" not in page, button
    page = client.get(reverse("records:invoice_detail", args=[world["invoice"]])).content.decode()
    assert "Issue invoice" not in page and "Void INV-W" not in page
    assert "New customer" not in client.get(reverse("records:customer_list")).content.decode()


def test_the_menu_shows_customers_and_invoices_only_to_people_who_may_see_them(client, world):
    client.force_login(make_user("payments-only", "view_payment"))
    page = client.get(reverse("exports:payment_list")).content.decode()
    assert ">Customers</a>" not in page and ">Invoices</a>" not in page
    client.force_login(make_user("both", "view_payment", "view_customer", "view_invoice"))
    page = client.get(reverse("exports:payment_list")).content.decode()
    assert ">Customers</a>" in page and ">Invoices</a>" in page
