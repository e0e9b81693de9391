import pytest

from billing.models import Customer, Job
from tests.factories import CustomerFactory, JobFactory

pytestmark = pytest.mark.django_db


def test_create_a_customer(api):
    response = api.post(
        "customers/",
        {"display_name": " Maria Gonzalez ", "email": "Maria@Example.com", "billing_city": "Springfield"},
    )
    assert response.status_code == 201
    body = response.json()
    customer = Customer.objects.get()
    assert body["id"] == customer.pk
    assert body["display_name"] == "Maria Gonzalez"
    assert body["email"] == "maria@example.com"
    assert body["billing_country"] == "US"


def test_a_customer_without_a_name_is_refused_with_a_field_error(api):
    response = api.post("customers/", {"email": "not-an-email"})
    assert response.status_code == 400
    details = response.json()["details"]
    assert details["display_name"][0]["code"] == "required"
    assert details["email"][0]["code"] == "invalid"
    assert not Customer.objects.exists()


def test_read_and_list_customers_with_a_search(api):
    maria = CustomerFactory(display_name="Maria Gonzalez")
    CustomerFactory(display_name="Bob Smith")
    assert api.get(f"customers/{maria.pk}/").json()["display_name"] == "Maria Gonzalez"
    assert api.get("customers/999999/").status_code == 404
    results = api.get("customers/", {"search": "gonz"}).json()["results"]
    assert [c["id"] for c in results] == [maria.pk]


def test_create_and_read_a_job(api):
    customer = CustomerFactory()
    response = api.post(
        "jobs/",
        {"customer": customer.pk, "number": "JOB-7", "title": "Water heater", "scheduled_on": "2026-11-02"},
    )
    assert response.status_code == 201
    body = response.json()
    assert body["customer"] == customer.pk and body["status"] == "scheduled" and body["scheduled_on"] == "2026-11-02"
    assert api.get(f"jobs/{body['id']}/").json()["number"] == "JOB-7"


def test_a_job_for_an_unknown_customer_or_a_taken_number_is_refused(api):
    JobFactory(number="JOB-7")
    response = api.post("jobs/", {"customer": 999999, "number": "JOB-8", "title": "x"})
    assert response.status_code == 400
    assert response.json()["details"]["customer"][0]["code"] == "does_not_exist"

    response = api.post("jobs/", {"customer": CustomerFactory().pk, "number": "JOB-7", "title": "x"})
    assert response.status_code == 400
    assert response.json()["details"]["number"][0]["code"] == "unique"
    assert Job.objects.count() == 1


def test_list_jobs_of_a_customer(api):
    job = JobFactory()
    JobFactory()
    results = api.get("jobs/", {"customer": job.customer_id}).json()["results"]
    assert [j["number"] for j in results] == [job.number]
    assert api.get("jobs/", {"customer": "abc"}).status_code == 400
