"""Customer and job pages: search, add, edit, the customer's page; bad input refused in place, nothing changed."""

import pytest
from django.urls import reverse

from billing.models import Customer, Job
from tests.factories import CustomerFactory, JobFactory, issued_invoice, pay

pytestmark = pytest.mark.django_db


def test_customer_list_finds_by_name_company_email_or_phone(clerk_client):
    CustomerFactory(display_name="Ada Plumbing", company_name="", email="ada@example.com", phone="555-1111")
    CustomerFactory(display_name="Bo Heating", company_name="Warmth LLC", email="bo@example.com", phone="555-2222")
    for query, expected in [("ada", ["Ada Plumbing"]), ("warmth", ["Bo Heating"]), ("555-2222", ["Bo Heating"])]:
        response = clerk_client.get(reverse("records:customer_list"), {"q": query})
        assert [c.display_name for c in response.context["customers"]] == expected, query
    response = clerk_client.get(reverse("records:customer_list"), {"q": "nobody"})
    assert "No customer matches “nobody”" in response.content.decode()


@pytest.mark.parametrize("rows", [5, 50])
def test_customer_list_reads_a_constant_number_of_queries(clerk_client, django_assert_num_queries, rows):
    CustomerFactory.create_batch(rows)
    # session, user, user and group permissions, the QuickBooks banner, the page of customers (one row more)
    with django_assert_num_queries(6):
        response = clerk_client.get(reverse("records:customer_list"))
    assert len(response.context["customers"]) == rows


def test_customer_list_pages_by_fifty(clerk_client):
    CustomerFactory.create_batch(51)
    first = clerk_client.get(reverse("records:customer_list"))
    assert len(first.context["customers"]) == 50 and first.context["next_query"]
    second = clerk_client.get(reverse("records:customer_list") + "?" + first.context["next_query"])
    assert len(second.context["customers"]) == 1 and not second.context["next_query"]


def test_adding_a_customer_shows_their_page(clerk_client):
    response = clerk_client.post(
        reverse("records:customer_create"),
        {"display_name": "  Carla Diaz ", "email": "Carla@Example.com", "phone": "555-0199", "billing_country": "us"},
    )
    customer = Customer.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse(
        "records:customer_detail", args=[customer.pk]
    )
    assert (customer.display_name, customer.email, customer.billing_country) == (
        "Carla Diaz",
        "carla@example.com",
        "US",
    )
    page = clerk_client.get(response["Location"]).content.decode()
    assert "Carla Diaz" in page and "Not in QuickBooks yet" in page


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"display_name": "   "}, "Give the customer a name."),
        ({"display_name": "Dee", "email": "not-an-address"}, "Enter a valid email address."),
        ({"display_name": "Dee", "billing_country": "USA"}, "Ensure this value has at most 2 characters"),
    ],
)
def test_adding_a_customer_refuses_bad_input_in_place_and_saves_nothing(clerk_client, data, message):
    response = clerk_client.post(reverse("records:customer_create"), data)
    assert response.status_code == 400
    page = response.content.decode()
    assert message in page and "Nothing was saved" in page
    assert not Customer.objects.exists()


def test_editing_a_customer_changes_only_what_was_typed(clerk_client):
    customer = CustomerFactory(display_name="Old Name", email="old@example.com")
    data = {"display_name": "New Name", "email": "new@example.com", "billing_country": "US"}
    response = clerk_client.post(reverse("records:customer_edit", args=[customer.pk]), data)
    assert response.status_code == 302
    customer.refresh_from_db()
    assert (customer.display_name, customer.email, customer.phone) == ("New Name", "new@example.com", "")


def test_editing_a_customer_with_bad_input_changes_nothing(clerk_client):
    customer = CustomerFactory(display_name="Kept", email="kept@example.com")
    response = clerk_client.post(
        reverse("records:customer_edit", args=[customer.pk]), {"display_name": "", "email": "x"}
    )
    assert response.status_code == 400
    customer.refresh_from_db()
    assert (customer.display_name, customer.email) == ("Kept", "kept@example.com")


def test_customer_page_shows_jobs_invoices_payments_and_what_is_open(clerk_client):
    customer = CustomerFactory(display_name="Eve Electric")
    JobFactory(customer=customer, number="J-7", title="Rewire kitchen")
    invoice = issued_invoice(customer=customer, amount="300.00", number="INV-77")
    pay(invoice, "100.00")
    page = clerk_client.get(reverse("records:customer_detail", args=[customer.pk])).content.decode()
    for text in ("J-7", "Rewire kitchen", "INV-77", "$300.00", "$200.00", "$100.00", "Not exported"):
        assert text in page, text


def test_customer_page_reads_a_constant_number_of_queries(clerk_client, django_assert_num_queries):
    customer = CustomerFactory()
    for _n in range(5):
        pay(issued_invoice(customer=customer, amount="100.00"), "40.00")
    # session, user, 2 x permissions, banner; customer, invoices, payments, jobs, QuickBooks mapping
    with django_assert_num_queries(10):
        clerk_client.get(reverse("records:customer_detail", args=[customer.pk]))


def test_adding_a_job_for_a_customer(clerk_client):
    customer = CustomerFactory()
    response = clerk_client.post(
        reverse("records:job_create", args=[customer.pk]),
        {"number": "J-1042", "title": "Boiler service", "status": "scheduled", "scheduled_on": "2026-12-08"},
    )
    assert response.status_code == 302
    job = Job.objects.get()
    assert (job.customer, job.number, str(job.scheduled_on)) == (customer, "J-1042", "2026-12-08")


def test_a_job_number_already_used_is_refused_in_place(clerk_client):
    JobFactory(number="J-1")
    customer = CustomerFactory()
    response = clerk_client.post(
        reverse("records:job_create", args=[customer.pk]), {"number": "J-1", "title": "Again", "status": "scheduled"}
    )
    assert response.status_code == 400
    assert "Job with this Number already exists." in response.content.decode()
    assert Job.objects.count() == 1
