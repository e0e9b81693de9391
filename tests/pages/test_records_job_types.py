"""The new job page with job types: the customer's unit's active types offered; any other refused in place."""

import pytest
from django.urls import reverse

from billing import services
from billing.models import Job
from tests.factories import BusinessUnitFactory, CustomerFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def unit(clerk):
    unit = services.business_unit_default()
    unit.members.add(clerk)  # with a second unit about, the clerk sees the units they belong to
    return unit


def test_the_new_job_page_offers_the_units_active_job_types_only(clerk_client, unit):
    services.job_type_create(business_unit=unit, name="Repair")
    services.job_type_create(business_unit=unit, name="Retired", active=False)
    services.job_type_create(business_unit=BusinessUnitFactory(name="North"), name="Snow removal")
    customer = CustomerFactory(business_unit=unit)

    page = clerk_client.get(reverse("records:job_create", args=[customer.pk])).content.decode()

    assert "Job type" in page and ">Repair<" in page
    assert "Retired" not in page and "Snow removal" not in page


def test_adding_a_job_with_a_job_type_on_the_page(clerk_client, unit):
    repair = services.job_type_create(business_unit=unit, name="Repair")
    customer = CustomerFactory(business_unit=unit)
    response = clerk_client.post(
        reverse("records:job_create", args=[customer.pk]),
        {"number": "J-7", "title": "Leak", "status": "scheduled", "job_type": repair.pk},
    )
    assert response.status_code == 302
    assert Job.objects.get().job_type == repair
    page = clerk_client.get(reverse("records:customer_detail", args=[customer.pk])).content.decode()
    assert "· Repair ·" in page


@pytest.mark.parametrize("which", ["other unit", "inactive", "unknown"])
def test_a_job_type_not_offered_is_refused_in_place(clerk_client, unit, which):
    other = services.job_type_create(business_unit=BusinessUnitFactory(name="North"), name="Repair")
    retired = services.job_type_create(business_unit=unit, name="Retired", active=False)
    chosen = {"other unit": other.pk, "inactive": retired.pk, "unknown": 999999}[which]
    customer = CustomerFactory(business_unit=unit)

    response = clerk_client.post(
        reverse("records:job_create", args=[customer.pk]),
        {"number": "J-7", "title": "Leak", "status": "scheduled", "job_type": chosen},
    )

    assert response.status_code == 400
    assert "Choose one of this business unit&#x27;s job types." in response.content.decode()
    assert not Job.objects.exists()
