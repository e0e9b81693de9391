"""Invoice pages: write one with lines, issue, void; the invoice shows its payments and what is still open."""

from decimal import Decimal

import pytest
from django.urls import reverse

from billing.models import Invoice, InvoiceLine
from billing.selectors import invoice_get_with_balances
from tests.factories import CustomerFactory, InvoiceFactory, InvoiceLineFactory, JobFactory, issued_invoice, pay

pytestmark = pytest.mark.django_db


def invoice_data(**overrides) -> dict:
    data = {
        "number": "INV-5001",
        "issued_on": "2026-12-01",
        "due_on": "2026-12-31",
        "sales_tax": "",
        "memo": "",
        "lines-TOTAL_FORMS": "2",
        "lines-INITIAL_FORMS": "0",
        "lines-MIN_NUM_FORMS": "1",
        "lines-MAX_NUM_FORMS": "50",
        "lines-0-service_name": "Water heater",
        "lines-0-quantity": "1",
        "lines-0-unit_price": "1,200.00",
        "lines-1-service_name": "Labor",
        "lines-1-quantity": "2.5",
        "lines-1-unit_price": "80",
    }
    data.update(overrides)
    return data


def test_writing_an_invoice_with_two_lines_saves_a_draft(clerk_client):
    customer = CustomerFactory()
    job = JobFactory(customer=customer)
    response = clerk_client.post(
        reverse("records:invoice_create", args=[customer.pk]), invoice_data(job=str(job.pk), sales_tax="12.50")
    )
    invoice = Invoice.objects.get()
    assert response["Location"] == reverse("records:invoice_detail", args=[invoice.pk])
    assert (invoice.status, invoice.job, invoice.sales_tax) == ("draft", job, Decimal("12.50"))
    lines = list(invoice.lines.values_list("service_name", "quantity", "unit_price", "amount"))
    assert lines == [
        ("Water heater", Decimal("1.00"), Decimal("1200.00"), Decimal("1200.00")),
        ("Labor", Decimal("2.50"), Decimal("80.00"), Decimal("200.00")),
    ]
    assert invoice_get_with_balances(invoice_id=invoice.pk).total == Decimal("1412.50")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"lines-0-unit_price": "1e3"}, "Unit price: type an amount in figures, like 150.00."),
        ({"lines-0-unit_price": "12.345"}, "Unit price 12.345 has more than two decimal places."),
        ({"lines-1-quantity": "-1"}, "Quantity must be greater than zero (got -1)."),
        ({"sales_tax": "NaN"}, "Sales tax: type an amount in figures"),
        ({"lines-1-service_name": ""}, "This field is required."),
        ({"due_on": "2026-11-01"}, "The due date cannot be before the issue date."),
        ({"number": "X" * 22}, "Ensure this value has at most 21 characters"),
    ],
)
def test_a_bad_invoice_is_refused_in_place_and_nothing_is_saved(clerk_client, overrides, message):
    customer = CustomerFactory()
    response = clerk_client.post(reverse("records:invoice_create", args=[customer.pk]), invoice_data(**overrides))
    assert response.status_code == 400
    page = response.content.decode()
    assert message in page
    assert "Water heater" in page  # what was typed is kept
    assert not Invoice.objects.exists() and not InvoiceLine.objects.exists()


def test_an_invoice_number_already_used_is_refused_and_nothing_is_saved(clerk_client):
    InvoiceFactory(number="INV-5001")
    customer = CustomerFactory()
    response = clerk_client.post(reverse("records:invoice_create", args=[customer.pk]), invoice_data())
    assert response.status_code == 400
    assert "Invoice with this Number already exists." in response.content.decode()
    assert Invoice.objects.count() == 1 and not InvoiceLine.objects.exists()


def test_an_invoice_with_no_lines_is_refused(clerk_client):
    customer = CustomerFactory()
    data = invoice_data(**{"lines-TOTAL_FORMS": "1", "lines-0-service_name": "", "lines-0-unit_price": ""})
    data["lines-0-quantity"] = ""
    response = clerk_client.post(reverse("records:invoice_create", args=[customer.pk]), data)
    assert response.status_code == 400
    assert not Invoice.objects.exists()


def test_another_customers_job_is_refused(clerk_client):
    customer = CustomerFactory()
    stranger_job = JobFactory()
    response = clerk_client.post(
        reverse("records:invoice_create", args=[customer.pk]), invoice_data(job=str(stranger_job.pk))
    )
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    assert not Invoice.objects.exists()


def test_add_a_line_keeps_what_was_typed_and_saves_nothing(clerk_client):
    customer = CustomerFactory()
    response = clerk_client.post(reverse("records:invoice_create", args=[customer.pk]), invoice_data(add_line="1"))
    assert response.status_code == 200
    assert len(response.context["lines"].forms) == 3
    assert "Water heater" in response.content.decode()
    assert not Invoice.objects.exists()


def test_issuing_a_draft_opens_it_and_voiding_an_unpaid_one(clerk_client):
    invoice = InvoiceFactory(number="INV-9")
    InvoiceLineFactory(invoice=invoice)
    clerk_client.post(reverse("records:invoice_issue", args=[invoice.pk]))
    invoice.refresh_from_db()
    assert invoice.status == "open" and invoice.issued_on is not None
    page = clerk_client.get(reverse("records:invoice_detail", args=[invoice.pk])).content.decode()
    assert "INV-9 is issued" in page and "Record a payment of $100.00" in page
    clerk_client.post(reverse("records:invoice_void", args=[invoice.pk]))
    invoice.refresh_from_db()
    assert invoice.status == "void"


def test_issuing_an_empty_draft_is_refused_in_plain_words(clerk_client):
    invoice = InvoiceFactory(number="INV-10")
    response = clerk_client.post(reverse("records:invoice_issue", args=[invoice.pk]), follow=True)
    assert "INV-10 has no lines; add what was sold first." in response.content.decode()
    invoice.refresh_from_db()
    assert invoice.status == "draft"


def test_voiding_a_paid_invoice_is_refused_and_changes_nothing(clerk_client):
    invoice = issued_invoice(amount="100.00", number="INV-11")
    pay(invoice, "100.00")
    response = clerk_client.post(reverse("records:invoice_void", args=[invoice.pk]), follow=True)
    assert "INV-11 has $100.00 paid on it; refund those payments before voiding it." in response.content.decode()
    invoice.refresh_from_db()
    assert invoice.status == "paid"


def test_invoice_page_shows_its_payments_and_what_is_still_open(clerk_client):
    invoice = issued_invoice(amount="250.00", number="INV-12")
    pay(invoice, "200.00")
    page = clerk_client.get(reverse("records:invoice_detail", args=[invoice.pk])).content.decode()
    assert "Payments on this invoice" in page and "$200.00" in page
    assert "Still open" in page and "Record a payment of $50.00" in page
    assert f"?invoice={invoice.pk}&amp;amount=50.00" in page


@pytest.mark.parametrize("rows", [5, 50])
def test_invoice_list_reads_a_constant_number_of_queries(clerk_client, django_assert_num_queries, rows):
    customer = CustomerFactory()
    for _ in range(rows):
        InvoiceLineFactory(invoice=InvoiceFactory(customer=customer))
    # session, user, user and group permissions, the QuickBooks banner, the page of invoices with their balances
    with django_assert_num_queries(6):
        response = clerk_client.get(reverse("records:invoice_list"))
    assert len(response.context["invoices"]) == rows


def test_invoice_list_filters_by_number_customer_and_status(clerk_client):
    issued_invoice(customer=CustomerFactory(display_name="Fay"), number="INV-A1")
    InvoiceFactory(number="INV-B2", customer=CustomerFactory(display_name="Gus"))

    def numbers(**q):
        return [i.number for i, _ in clerk_client.get(reverse("records:invoice_list"), q).context["invoices"]]

    assert numbers(q="fay") == ["INV-A1"]
    assert numbers(q="B2") == ["INV-B2"]
    assert numbers(status="draft") == ["INV-B2"]
