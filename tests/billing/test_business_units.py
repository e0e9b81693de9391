"""Business units: every customer, job, invoice and payment belongs to one, always its customer's; existing data
moves into the default unit; with one unit nobody has to name it."""

from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse

from billing import services
from billing.models import BusinessUnit, Customer, Invoice, Job, Payment
from fieldsync.exceptions import ApplicationError
from tests.factories import BusinessUnitFactory, CustomerFactory, UserFactory, issued_invoice, pay

pytestmark = pytest.mark.django_db


def test_records_made_without_naming_a_unit_go_into_the_only_unit():
    customer = services.customer_create(display_name="Harbor Dental")
    job = services.job_create(customer=customer, number="J-1", title="Boiler")
    invoice = issued_invoice(customer=customer)
    only = BusinessUnit.objects.get()  # the default unit migration 0006 made
    payment = pay(invoice, "100.00")

    assert {customer.business_unit, job.business_unit, invoice.business_unit, payment.business_unit} == {only}
    assert (only.name, only.slug) == ("Main", "main")


def test_a_database_emptied_after_migrating_gets_the_default_unit_back():
    BusinessUnit.objects.all().delete()

    customer = services.customer_create(display_name="Harbor Dental")

    assert (customer.business_unit.name, customer.business_unit.slug) == ("Main", "main")


def test_with_several_units_a_customer_must_name_its_unit():
    BusinessUnitFactory(name="North")

    with pytest.raises(ApplicationError) as exc:
        services.customer_create(display_name="Harbor Dental")

    assert exc.value.code == "business_unit_required"
    assert not Customer.objects.exists()


def test_jobs_invoices_and_payments_take_their_customers_unit():
    services.business_unit_default()
    north = BusinessUnitFactory(name="North")
    customer = services.customer_create(business_unit=north, display_name="North Bakery")

    job = services.job_create(customer=customer, number="J-7", title="Oven")
    invoice = issued_invoice(customer=customer, amount="80.00")
    payment = pay(invoice, "80.00")

    assert {job.business_unit, invoice.business_unit, payment.business_unit} == {north}
    assert Payment.objects.filter(business_unit=north).get() == payment


def test_a_record_in_another_unit_than_its_customers_is_refused():
    customer = CustomerFactory()
    north = BusinessUnitFactory(name="North")
    job = Job(customer=customer, business_unit=north, number="J-9", title="Leak")

    with pytest.raises(Exception, match="belongs to Main; so must this") as exc:
        job.full_clean()

    assert "business_unit" in exc.value.message_dict


@pytest.mark.django_db(transaction=True)
def test_migration_puts_existing_records_into_the_default_unit():
    executor = MigrationExecutor(connection)
    before, after = [("billing", "0005_payment_origin")], executor.loader.graph.leaf_nodes()
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    customer = old.get_model("billing", "Customer").objects.create(display_name="Old Customer")
    old.get_model("billing", "Job").objects.create(customer=customer, number="J-OLD", title="Old job")
    invoice = old.get_model("billing", "Invoice").objects.create(customer=customer, number="INV-OLD")
    old.get_model("billing", "Payment").objects.create(
        customer=customer, amount=Decimal("5.00"), method="cash", received_on="2026-11-01"
    )

    executor.loader.build_graph()  # the state after unapplying
    executor.migrate(after)  # every app back at its leaf: the tests after this one need the whole schema

    unit = BusinessUnit.objects.get(slug="main")
    assert Customer.objects.get(pk=customer.pk).business_unit == unit
    assert Invoice.objects.get(pk=invoice.pk).business_unit == unit
    assert Job.objects.get().business_unit == unit
    assert Payment.objects.get().business_unit == unit


def test_rows_saved_directly_without_a_unit_take_the_only_one_or_their_customers():
    """Code and tests from before units write rows without naming one; with one unit that keeps working."""
    customer = Customer.objects.create(display_name="Direct Co")
    job = Job.objects.create(customer=customer, number="J-D", title="Direct job")

    assert customer.business_unit == job.business_unit == BusinessUnit.objects.get()


def test_with_several_units_a_row_saved_without_a_unit_is_refused():
    services.business_unit_default()
    BusinessUnitFactory(name="North")

    with pytest.raises(ApplicationError, match="several business units"):
        Customer.objects.create(display_name="Direct Co")


def test_the_admin_creates_a_unit_with_its_members_through_the_service(client):
    boss = UserFactory(username="boss", is_staff=True, is_superuser=True)
    mia, leo = UserFactory(username="mia"), UserFactory(username="leo")
    client.force_login(boss)

    response = client.post(
        reverse("admin:billing_businessunit_add"),
        {"name": "North Shore", "slug": "north-shore", "members": [mia.pk, leo.pk]},
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    north = BusinessUnit.objects.get(slug="north-shore")
    assert (north.name, sorted(north.members.values_list("username", flat=True))) == ("North Shore", ["leo", "mia"])
    assert LogEntry.objects.get(object_id=str(north.pk)).get_change_message() == "Added."


def test_the_admin_renames_a_unit_and_changes_its_members_but_never_its_slug(client):
    boss = UserFactory(username="boss", is_staff=True, is_superuser=True)
    mia, leo = UserFactory(username="mia"), UserFactory(username="leo")
    north = services.business_unit_create(name="North", members=[mia])
    client.force_login(boss)
    url = reverse("admin:billing_businessunit_change", args=[north.pk])
    assert 'name="slug"' not in client.get(url).content.decode()  # shown, not editable: API clients name it

    response = client.post(url, {"name": "North Shore", "slug": "changed", "members": [leo.pk]})

    assert response.status_code == 302
    north.refresh_from_db()
    assert (north.name, north.slug, list(north.members.all())) == ("North Shore", "north", [leo])


def test_a_unit_named_like_another_is_refused_and_nothing_is_made(client):
    services.business_unit_create(name="North")
    client.force_login(UserFactory(username="boss", is_staff=True, is_superuser=True))

    response = client.post(reverse("admin:billing_businessunit_add"), {"name": "North", "slug": "north-2"})

    assert response.status_code == 200 and "already exists" in response.content.decode()
    assert BusinessUnit.objects.filter(name="North").count() == 1
    with pytest.raises(ApplicationError):
        services.business_unit_create(name="  ")
