"""Job types ("Repair", "Install"): a short list per business unit, set on jobs through the services, the job page
and the admin; another unit's type or one no longer in use is refused and nothing changes."""

import pytest
from django.urls import reverse

from billing import services
from billing.models import Job, JobType
from fieldsync.exceptions import ApplicationError
from tests.factories import BusinessUnitFactory, CustomerFactory, JobFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def unit():
    return services.business_unit_default()


def test_a_job_takes_a_job_type_of_its_unit(unit):
    repair = services.job_type_create(business_unit=unit, name="  Repair ")
    job = services.job_create(customer=CustomerFactory(business_unit=unit), number="J-1", title="Leak", job_type=repair)

    assert repair.name == "Repair"
    assert Job.objects.get(pk=job.pk).job_type == repair


def test_a_job_type_name_is_unique_in_its_unit_whatever_its_case_but_not_across_units(unit):
    services.job_type_create(business_unit=unit, name="Repair")
    with pytest.raises(ApplicationError, match="already has a job type of that name"):
        services.job_type_create(business_unit=unit, name="REPAIR")
    with pytest.raises(ApplicationError, match="name"):
        services.job_type_create(business_unit=unit, name="   ")

    services.job_type_create(business_unit=BusinessUnitFactory(name="North"), name="Repair")
    assert JobType.objects.filter(name__iexact="repair").count() == 2


def test_another_units_job_type_is_refused_like_an_unknown_one(unit):
    north_repair = services.job_type_create(business_unit=BusinessUnitFactory(name="North"), name="Repair")
    customer = CustomerFactory(business_unit=unit)

    with pytest.raises(ApplicationError) as refused:
        services.job_create(customer=customer, number="J-1", title="Leak", job_type=north_repair)

    assert refused.value.code == "does_not_exist"
    assert refused.value.extra == {"job_type": ["This business unit has no such job type."]}
    assert not Job.objects.exists()


def test_a_job_type_no_longer_in_use_is_refused_for_new_jobs_but_kept_by_its_jobs(unit):
    install = services.job_type_create(business_unit=unit, name="Install")
    customer = CustomerFactory(business_unit=unit)
    job = services.job_create(customer=customer, number="J-1", title="Boiler", job_type=install)
    install = services.job_type_update(job_type=install, name="Install", active=False)

    with pytest.raises(ApplicationError, match="no longer in use") as refused:
        services.job_create(customer=job.customer, number="J-2", title="Boiler", job_type=install)
    assert refused.value.code == "inactive"
    # Its own job keeps it through other changes.
    job = services.job_update(job=job, title="Boiler, two units", job_type=install)
    assert (job.title, job.job_type) == ("Boiler, two units", install)


def test_job_update_changes_the_job_type_and_refuses_fields_that_are_fixed(unit):
    repair = services.job_type_create(business_unit=unit, name="Repair")
    maintenance = services.job_type_create(business_unit=unit, name="Maintenance")
    job = services.job_create(customer=CustomerFactory(business_unit=unit), number="J-1", title="AC", job_type=repair)

    services.job_update(job=job, job_type=maintenance)
    assert Job.objects.get(pk=job.pk).job_type == maintenance
    services.job_update(job=job, job_type=None)
    assert Job.objects.get(pk=job.pk).job_type is None
    with pytest.raises(ApplicationError, match="cannot change: number"):
        services.job_update(job=job, number="J-2")
    other = services.job_type_create(business_unit=BusinessUnitFactory(name="North"), name="Repair")
    with pytest.raises(ApplicationError, match="no job type Repair"):
        services.job_update(job=job, job_type=other)
    assert Job.objects.get(pk=job.pk).job_type is None


# --- The admin: through the services ------------------------------------------------------------------------------


@pytest.fixture
def admin_client(client):
    client.force_login(UserFactory(username="boss", is_staff=True, is_superuser=True))
    return client


def test_admin_adds_and_renames_a_job_type_through_the_services(admin_client, unit):
    response = admin_client.post(
        reverse("admin:billing_jobtype_add"), {"business_unit": unit.pk, "name": "Repair", "active": "on"}
    )
    assert response.status_code == 302
    repair = JobType.objects.get()
    duplicate = admin_client.post(
        reverse("admin:billing_jobtype_add"), {"business_unit": unit.pk, "name": "repair", "active": "on"}
    )
    assert duplicate.status_code == 200
    assert "already has a job type of that name" in duplicate.content.decode()
    assert JobType.objects.count() == 1

    other = BusinessUnitFactory(name="North")
    response = admin_client.post(
        reverse("admin:billing_jobtype_change", args=[repair.pk]), {"business_unit": other.pk, "name": "Repairs"}
    )
    assert response.status_code == 302
    repair.refresh_from_db()
    assert (repair.name, repair.active, repair.business_unit) == ("Repairs", False, unit)  # the unit is fixed
    assert (
        admin_client.post(reverse("admin:billing_jobtype_delete", args=[repair.pk]), {"post": "yes"}).status_code == 403
    )


def test_admin_sets_a_jobs_type_but_refuses_another_units(admin_client, unit):
    repair = services.job_type_create(business_unit=unit, name="Repair")
    north = services.job_type_create(business_unit=BusinessUnitFactory(name="North"), name="Repair")
    job = JobFactory(number="JOB-1", customer=CustomerFactory(business_unit=unit))
    url = reverse("admin:billing_job_change", args=[job.pk])
    form = {"title": "Leak", "status": "scheduled", "job_type": repair.pk}

    assert admin_client.post(url, form).status_code == 302
    assert Job.objects.get(pk=job.pk).job_type == repair

    refused = admin_client.post(url, {**form, "job_type": north.pk})
    assert refused.status_code == 200
    assert "Select a valid choice" in refused.content.decode()
    assert Job.objects.get(pk=job.pk).job_type == repair


def test_admin_adds_a_job_through_the_services_and_refuses_another_units_type(admin_client, unit):
    north = services.job_type_create(business_unit=BusinessUnitFactory(name="North"), name="Repair")
    customer = CustomerFactory(business_unit=unit)
    form = {"customer": customer.pk, "number": "JOB-9", "title": "Leak", "status": "scheduled", "job_type": north.pk}

    refused = admin_client.post(reverse("admin:billing_job_add"), form)
    assert refused.status_code == 200
    assert "This business unit has no such job type." in refused.content.decode()
    assert not Job.objects.exists()

    repair = services.job_type_create(business_unit=unit, name="Repair")
    assert admin_client.post(reverse("admin:billing_job_add"), {**form, "job_type": repair.pk}).status_code == 302
    job = Job.objects.get()
    assert (job.job_type, job.business_unit) == (repair, unit)
