"""Class and location per job type (issue 14): a job type's choice replaces its unit's on the invoices of its jobs,
one of the two at a time; no choice, no job or no type -> the unit's; tracking off -> nothing. Through
python-quickbooks against the sandbox; asserts what QuickBooks holds."""

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from billing import services as billing_services
from billing.models import Payment
from billing.services import business_unit_default
from fieldsync.exceptions import ApplicationError
from quickbooks_export.models import ExportBatchItem, QuickBooksJobTypeTracking
from quickbooks_export.tracking import job_type_tracking_update
from tests.factories import BusinessUnitFactory, CustomerFactory, pay

from .conftest import connect, export
from .test_class_and_location import add, choose, read, track

pytestmark = pytest.mark.django_db
S = Payment.ExportStatus


@pytest.fixture
def company(qbo_sandbox, settings, db):
    settings.EXPORT_MAX_RETRY_AFTER_SECONDS = 0.2
    return connect(qbo_sandbox, settings)


def choose_for(company, job_type, *, class_id="", department_id=""):
    job_type_tracking_update(
        realm_id=company.realm_id,
        business_unit=job_type.business_unit,
        user=None,
        choices={job_type.pk: (class_id, department_id)},
    )


def paid_invoice(number: str, *, job_type=None, with_job=True) -> Payment:
    """A two-line invoice, fully paid; of a job of `job_type` (or of a job without a type, or of no job)."""
    customer = CustomerFactory()
    job = (
        billing_services.job_create(customer=customer, number=f"J-{number}", title="Work", job_type=job_type)
        if with_job
        else None
    )
    invoice = billing_services.invoice_create(
        customer=customer,
        number=number,
        job=job,
        sales_tax="0.00",
        lines=[
            billing_services.LineInput(service_name="Labor", unit_price="60.00"),
            billing_services.LineInput(service_name="Parts", unit_price="40.00"),
        ],
    )
    invoice = billing_services.invoice_issue(invoice=invoice, issued_on=datetime.date(2026, 11, 1))
    return pay(invoice, "100.00")


def in_quickbooks(company) -> dict[str, dict]:
    return {row["DocNumber"]: row for row in company.entities("Invoice")}


def sales_lines(invoice: dict) -> list[dict]:
    return [line for line in invoice["Line"] if line["DetailType"] == "SalesItemLineDetail"]


@pytest.fixture
def repair():
    return billing_services.job_type_create(business_unit=business_unit_default(), name="Repair")


def test_a_job_types_class_replaces_the_units_and_other_invoices_keep_the_units(company, repair):
    track(company, per_txn=True)
    residential = add(company, "Class", "Residential")
    commercial = add(company, "Class", "Commercial")
    read(company)
    choose(company, class_id=residential)
    choose_for(company, repair, class_id=commercial)
    install = billing_services.job_type_create(business_unit=repair.business_unit, name="Install")  # none chosen
    payments = [
        paid_invoice("INV-R", job_type=repair),
        paid_invoice("INV-I", job_type=install),
        paid_invoice("INV-T"),  # a job without a type
        paid_invoice("INV-N", with_job=False),
    ]

    export(*payments)

    invoices = in_quickbooks(company)
    assert invoices["INV-R"]["ClassRef"] == {"value": commercial, "name": "Commercial"}
    for number in ("INV-I", "INV-T", "INV-N"):
        assert invoices[number]["ClassRef"] == {"value": residential, "name": "Residential"}, number
    assert all("ClassRef" not in line["SalesItemLineDetail"] for line in sales_lines(invoices["INV-R"]))


def test_with_one_class_per_line_the_job_types_class_goes_on_each_line(company, repair):
    track(company, per_line=True)
    commercial = add(company, "Class", "Commercial")
    read(company)
    choose_for(company, repair, class_id=commercial)

    export(paid_invoice("INV-R", job_type=repair), paid_invoice("INV-N", with_job=False))

    invoices = in_quickbooks(company)
    assert "ClassRef" not in invoices["INV-R"]
    assert [line["SalesItemLineDetail"]["ClassRef"]["value"] for line in sales_lines(invoices["INV-R"])] == [
        commercial,
        commercial,
    ]
    # The unit chose nothing: the invoice without a job carries no class.
    assert all("ClassRef" not in line["SalesItemLineDetail"] for line in sales_lines(invoices["INV-N"]))


def test_a_job_type_with_a_location_only_keeps_the_units_class(company, repair):
    track(company, per_txn=True, departments=True)
    residential = add(company, "Class", "Residential")
    south = add(company, "Department", "South side")
    north = add(company, "Department", "North side")
    read(company)
    choose(company, class_id=residential, department_id=south)
    choose_for(company, repair, department_id=north)

    export(paid_invoice("INV-R", job_type=repair), paid_invoice("INV-N", with_job=False))

    invoices = in_quickbooks(company)
    assert invoices["INV-R"]["ClassRef"]["value"] == residential
    assert invoices["INV-R"]["DepartmentRef"] == {"value": north, "name": "North side"}
    assert invoices["INV-N"]["DepartmentRef"]["value"] == south


def test_with_tracking_off_in_quickbooks_a_job_types_choice_sends_nothing(company, repair):
    track(company, per_txn=True, departments=True)
    commercial = add(company, "Class", "Commercial")
    north = add(company, "Department", "North side")
    read(company)
    choose_for(company, repair, class_id=commercial, department_id=north)
    track(company)  # turned off in QuickBooks, then read again
    read(company)

    export(paid_invoice("INV-R", job_type=repair))

    (invoice,) = company.entities("Invoice")
    assert "ClassRef" not in invoice and "DepartmentRef" not in invoice
    assert all("ClassRef" not in line["SalesItemLineDetail"] for line in sales_lines(invoice))


@pytest.mark.parametrize("entity", ["Class", "Department"])
def test_a_job_types_class_or_location_made_inactive_fails_its_invoices_with_a_clear_message(company, repair, entity):
    """QuickBooks has no deleting a class or location: "delete" in QuickBooks makes it inactive (the sandbox refuses
    a Delete of either, as QuickBooks does), so inactive is the case to meet."""
    track(company, per_txn=True, departments=True)
    residential = add(company, "Class", "Residential")
    gone = add(company, entity, "Commercial")
    read(company)
    choose(company, class_id=residential)
    choose_for(company, repair, **({"class_id": gone} if entity == "Class" else {"department_id": gone}))
    with pytest.raises(Exception, match="not supported"):
        company.server.delete_entity(company.realm_id, entity, gone)
    company.server.deactivate(company.realm_id, entity, gone)
    read(company)
    typed, untyped = paid_invoice("INV-R", job_type=repair), paid_invoice("INV-N", with_job=False)

    batch = export(typed, untyped)

    typed.refresh_from_db(), untyped.refresh_from_db()
    assert (typed.export_status, untyped.export_status) == (S.FAILED, S.EXPORTED)
    item = ExportBatchItem.objects.get(batch=batch, payment=typed)
    assert item.error_code == "class_or_location_inactive"
    what = "class" if entity == "Class" else "location"
    assert item.message == (
        f"Invoice INV-R: The QuickBooks {what} Commercial chosen for job type Repair is inactive or gone in "
        "QuickBooks; choose another on the QuickBooks page."
    )
    assert list(in_quickbooks(company)) == ["INV-N"]


def test_choices_are_refused_unless_active_in_the_lists_and_of_the_units_job_types(company, repair):
    track(company, per_txn=True)
    commercial = add(company, "Class", "Commercial")
    old = add(company, "Class", "Old")
    company.server.deactivate(company.realm_id, "Class", old)
    read(company)

    with pytest.raises(ApplicationError, match="no active class") as refused:
        choose_for(company, repair, class_id=old)
    assert refused.value.code == "unknown_class"
    with pytest.raises(ApplicationError, match="tracking is off"):
        choose_for(company, repair, department_id="1")
    theirs = billing_services.job_type_create(business_unit=BusinessUnitFactory(name="North"), name="Repair")
    with pytest.raises(ApplicationError, match="no job type") as refused:
        job_type_tracking_update(
            realm_id=company.realm_id,
            business_unit=repair.business_unit,
            user=None,
            choices={repair.pk: (commercial, ""), theirs.pk: (commercial, "")},
        )
    assert refused.value.code == "unknown_job_type"
    assert not QuickBooksJobTypeTracking.objects.exists()  # nothing saved from a refused call

    choose_for(company, repair, class_id=commercial)
    choose_for(company, repair)  # both empty: back to the unit's
    assert not QuickBooksJobTypeTracking.objects.exists()


# --- The QuickBooks page ------------------------------------------------------------------------------------------


def test_the_page_lists_job_types_next_to_the_unit_and_saves_their_choices(
    manager, manager_client, company, repair, django_assert_max_num_queries
):
    track(company, per_txn=True, departments=True)
    commercial = add(company, "Class", "Commercial")
    north = add(company, "Department", "North side")
    old = add(company, "Class", "Old")
    company.server.deactivate(company.realm_id, "Class", old)
    read(company)
    unit = repair.business_unit
    unit.members.add(manager)  # with a second unit about, people see the units they belong to
    billing_services.job_type_create(business_unit=unit, name="Install")
    billing_services.job_type_create(business_unit=BusinessUnitFactory(name="North"), name="Snow removal")

    with CaptureQueriesContext(connection) as few:
        html = manager_client.get(reverse("quickbooks_export:settings")).content.decode()
    assert "By job type" in html and "Repair" in html and "Install" in html and "Snow removal" not in html
    assert f'name="class_{repair.pk}"' in html and f'name="department_{repair.pk}"' in html
    assert "Same as the unit" in html and ">Old<" not in html
    for number in range(20):
        billing_services.job_type_create(business_unit=unit, name=f"Crew {number}")
    with django_assert_max_num_queries(len(few)):
        assert "Crew 19" in manager_client.get(reverse("quickbooks_export:settings")).content.decode()

    url = reverse("quickbooks_export:job_type_tracking")
    response = manager_client.post(url, {f"class_{repair.pk}": commercial, f"department_{repair.pk}": north})
    assert response.status_code == 302
    row = QuickBooksJobTypeTracking.objects.get()
    assert (row.job_type, row.class_name, row.department_name, row.updated_by_id is not None) == (
        repair,
        "Commercial",
        "North side",
        True,
    )
    page = manager_client.get(reverse("quickbooks_export:settings")).content.decode()
    assert f'<option value="{commercial}" selected>Commercial</option>' in page

    refused = manager_client.post(url, {f"class_{repair.pk}": old})
    assert refused.status_code == 400
    assert "Select a valid choice" in refused.content.decode()
    row.refresh_from_db()
    assert row.class_id == commercial


def test_someone_without_the_manage_permission_sees_the_choices_but_cannot_save(viewer_client, company, repair):
    track(company, per_txn=True)
    commercial = add(company, "Class", "Commercial")
    read(company)
    choose_for(company, repair, class_id=commercial)

    page = viewer_client.get(reverse("quickbooks_export:settings")).content.decode()
    assert "Repair</strong>: class Commercial" in page
    response = viewer_client.post(reverse("quickbooks_export:job_type_tracking"), {f"class_{repair.pk}": ""})
    assert response.status_code == 403
    assert QuickBooksJobTypeTracking.objects.get().class_id == commercial


def test_resolving_job_types_costs_no_query_per_invoice(company, repair):
    track(company, per_txn=True)
    commercial = add(company, "Class", "Commercial")
    read(company)
    choose_for(company, repair, class_id=commercial)
    payments = [paid_invoice(f"INV-{n}", job_type=repair) for n in range(4)]

    with CaptureQueriesContext(connection) as queries:
        export(*payments)

    assert all(row["ClassRef"]["value"] == commercial for row in in_quickbooks(company).values())
    statements = [query["sql"] for query in queries.captured_queries]
    # Jobs come joined to their invoices; the job types' choices are read once per run.
    assert not [sql for sql in statements if 'FROM "billing_job"' in sql]
    assert len([sql for sql in statements if 'FROM "quickbooks_export_quickbooksjobtypetracking"' in sql]) == len(
        [sql for sql in statements if 'FROM "quickbooks_export_quickbooksunittracking"' in sql]
    )
