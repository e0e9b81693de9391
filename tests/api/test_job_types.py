"""Job types through the jobs endpoint: named as the office names them ("Repair"), in the customer's business unit;
another unit's type is refused exactly like one nobody has; a retired one is refused with its own code; lists and
reads cost the same number of queries with job types as without."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing import services
from billing.models import Job
from tests.factories import BusinessUnitFactory, CustomerFactory, JobFactory

from .conftest import make_api

pytestmark = pytest.mark.django_db


@pytest.fixture
def unit():
    return services.business_unit_default()


@pytest.fixture
def repair(unit):
    return services.job_type_create(business_unit=unit, name="Repair")


def test_create_a_job_with_a_job_type_named_in_any_case(api, repair):
    customer = CustomerFactory(business_unit=repair.business_unit)

    response = api.post("jobs/", {"customer": customer.pk, "number": "JOB-7", "title": "Leak", "job_type": "repair"})

    assert response.status_code == 201, response.content
    assert response.json()["job_type"] == "Repair"
    assert Job.objects.get(number="JOB-7").job_type == repair
    assert api.get(f"jobs/{response.json()['id']}/").json()["job_type"] == "Repair"
    untyped = api.post("jobs/", {"customer": customer.pk, "number": "JOB-8", "title": "Leak", "job_type": None})
    assert untyped.status_code == 201 and untyped.json()["job_type"] is None


def _refusal(response) -> tuple:
    body = response.json()
    return response.status_code, body["code"], body["details"]["job_type"][0]["code"]


def test_an_unknown_or_another_units_job_type_is_refused_alike_and_nothing_is_written(unit, repair):
    north = BusinessUnitFactory(name="North")
    services.job_type_create(business_unit=north, name="Snow removal")
    api = make_api("both-units", business_units=[unit, north])[0]
    customer = CustomerFactory(business_unit=unit)
    body = {"customer": customer.pk, "number": "JOB-7", "title": "Driveway"}

    theirs = api.post("jobs/", {**body, "job_type": "Snow removal"})
    unknown = api.post("jobs/", {**body, "job_type": "Chimney sweep"})

    assert _refusal(theirs) == _refusal(unknown) == (400, "invalid", "does_not_exist")
    assert "no job type 'Snow removal'" in theirs.json()["details"]["job_type"][0]["message"]
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    ("value", "code"), [("", "blank"), ("x" * 81, "max_length"), (7, "does_not_exist"), (["Repair"], "invalid")]
)
def test_a_job_type_that_is_not_a_name_gets_a_specific_error(api, repair, value, code):
    customer = CustomerFactory(business_unit=repair.business_unit)
    response = api.post("jobs/", {"customer": customer.pk, "number": "JOB-7", "title": "x", "job_type": value})
    assert response.status_code == 400
    assert response.json()["details"]["job_type"][0]["code"] == code
    assert not Job.objects.exists()


def test_a_retired_job_type_is_refused_for_a_new_job_but_kept_by_its_own(api, repair):
    customer = CustomerFactory(business_unit=repair.business_unit)
    job = services.job_create(customer=customer, number="JOB-1", title="Leak", job_type=repair)
    services.job_type_update(job_type=repair, name="Repair", active=False)

    response = api.post("jobs/", {"customer": customer.pk, "number": "JOB-2", "title": "x", "job_type": "Repair"})
    assert _refusal(response) == (400, "invalid", "inactive")
    assert "no longer in use" in response.json()["message"]

    kept = api.patch(f"jobs/{job.pk}/", {"title": "Leak, kitchen", "job_type": "Repair"})
    assert kept.status_code == 200, kept.content
    assert kept.json()["job_type"] == "Repair" and kept.json()["title"] == "Leak, kitchen"


def test_patch_changes_or_clears_a_jobs_type(api, repair, unit):
    install = services.job_type_create(business_unit=unit, name="Install")
    job = services.job_create(customer=CustomerFactory(business_unit=unit), number="JOB-1", title="Heater")

    assert api.patch(f"jobs/{job.pk}/", {"job_type": "Install"}).json()["job_type"] == "Install"
    assert Job.objects.get(pk=job.pk).job_type == install
    other = services.job_type_create(business_unit=BusinessUnitFactory(name="North"), name="Snow removal")
    refused = api.patch(f"jobs/{job.pk}/", {"job_type": other.name})
    assert _refusal(refused) == (400, "invalid", "does_not_exist")
    assert Job.objects.get(pk=job.pk).job_type == install
    assert api.patch(f"jobs/{job.pk}/", {"job_type": None}).json()["job_type"] is None
    assert Job.objects.get(pk=job.pk).job_type is None
    assert api.patch(f"jobs/{job.pk}/", {"number": "JOB-9"}).json()["number"] == "JOB-1"  # not a field to change


def count(api, method, path, *args):
    with CaptureQueriesContext(connection) as queries:
        response = getattr(api, method)(path, *args)
    assert response.status_code in (200, 201), response.content
    return len(queries)


def test_the_job_list_and_read_cost_the_same_queries_with_job_types_as_without(api, unit, repair):
    JobFactory.create_batch(5, customer=CustomerFactory(business_unit=unit))
    api.get("customers/")  # the token's last-use stamp is written once a minute: not inside the counts below
    without = count(api, "get", "jobs/", {"page_size": 50})
    read_without = count(api, "get", f"jobs/{Job.objects.first().pk}/")

    install = services.job_type_create(business_unit=unit, name="Install")
    for n, job in enumerate(Job.objects.all()):
        services.job_update(job=job, job_type=repair if n % 2 else install)
    JobFactory.create_batch(45, customer=CustomerFactory(business_unit=unit), job_type=repair)

    assert count(api, "get", "jobs/", {"page_size": 50}) == without
    assert count(api, "get", f"jobs/{Job.objects.first().pk}/") == read_without


def test_creating_a_job_costs_one_query_more_with_a_job_type_and_none_without(api, repair):
    customer = CustomerFactory(business_unit=repair.business_unit)
    api.get("customers/")
    body = {"customer": customer.pk, "title": "Leak"}
    baseline = count(api, "post", "jobs/", {**body, "number": "JOB-1"})

    assert count(api, "post", "jobs/", {**body, "number": "JOB-2"}) == baseline
    assert count(api, "post", "jobs/", {**body, "number": "JOB-3", "job_type": "Repair"}) == baseline + 1
