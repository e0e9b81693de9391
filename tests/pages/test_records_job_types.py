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


def test_editing_a_job_changes_its_type_and_keeps_its_number(clerk, clerk_client, unit):
    from django.contrib.auth.models import Permission

    clerk.user_permissions.add(Permission.objects.get(codename="change_job"))
    repair = services.job_type_create(business_unit=unit, name="Repair")
    install = services.job_type_create(business_unit=unit, name="Install")
    job = services.job_create(customer=CustomerFactory(business_unit=unit), number="J-1", title="Leak", job_type=repair)
    services.job_type_update(job_type=repair, name="Repair", active=False)  # retired: the job may keep it
    url = reverse("records:job_edit", args=[job.pk])

    page = clerk_client.get(url).content.decode()
    assert "Job J-1" in page and ">Repair<" in page and 'name="number"' not in page
    form = {"title": "Leak, kitchen", "status": "completed", "job_type": repair.pk}
    assert clerk_client.post(url, form).status_code == 302
    job.refresh_from_db()
    assert (job.title, job.status, job.job_type) == ("Leak, kitchen", "completed", repair)

    assert clerk_client.post(url, {**form, "job_type": install.pk, "number": "J-9"}).status_code == 302
    job.refresh_from_db()
    assert (job.number, job.job_type) == ("J-1", install)
    refused = clerk_client.post(url, {**form, "job_type": repair.pk})  # retired, and no longer the job's
    assert refused.status_code == 400
    assert "Choose one of this business unit&#x27;s job types." in refused.content.decode()
    job.refresh_from_db()
    assert job.job_type == install


def test_a_job_of_another_unit_cannot_be_edited(clerk, clerk_client, unit):
    from django.contrib.auth.models import Permission

    clerk.user_permissions.add(Permission.objects.get(codename="change_job"))
    north = BusinessUnitFactory(name="North")
    job = services.job_create(customer=CustomerFactory(business_unit=north), number="J-N", title="Snow")
    response = clerk_client.post(reverse("records:job_edit", args=[job.pk]), {"title": "Mine", "status": "scheduled"})
    assert response.status_code == 404
    job.refresh_from_db()
    assert job.title == "Snow"


def test_editing_a_job_needs_the_change_permission(clerk_client, unit):
    job = services.job_create(customer=CustomerFactory(business_unit=unit), number="J-1", title="Leak")
    page = clerk_client.get(reverse("records:customer_detail", args=[job.customer_id])).content.decode()
    assert "Edit job J-1" not in page  # the link shows only to those who may edit
    url = reverse("records:job_edit", args=[job.pk])
    assert clerk_client.get(url).status_code == 403
    assert clerk_client.post(url, {"title": "Changed", "status": "scheduled"}).status_code == 403
    job.refresh_from_db()
    assert job.title == "Leak"
