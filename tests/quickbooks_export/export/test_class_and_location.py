"""Class and location per business unit (issue 14): read from QuickBooks' Preferences, chosen on the QuickBooks page,
sent on invoices only where the company tracks them. Through python-quickbooks against the sandbox; asserts what
QuickBooks holds."""

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from billing import services as billing_services
from billing.models import Payment
from billing.services import business_unit_default
from fieldsync.exceptions import ApplicationError
from quickbooks_export.client import QuickBooksClient
from quickbooks_export.company import company_profile_refresh, unit_tracking_update
from quickbooks_export.errors import QuickBooksObjectNotFoundError, QuickBooksValidationError
from quickbooks_export.models import ClassTracking, ExportBatchItem, QuickBooksUnitTracking
from tests.factories import CustomerFactory, pay

from .conftest import connect, export

pytestmark = pytest.mark.django_db
S = Payment.ExportStatus


@pytest.fixture
def company(qbo_sandbox, settings, db):
    settings.EXPORT_MAX_RETRY_AFTER_SECONDS = 0.2
    return connect(qbo_sandbox, settings)


def track(company, *, per_txn=False, per_line=False, departments=False, terminology="Location"):
    """Turn tracking on in QuickBooks (Settings > Advanced > Categories), as a person would, and read it again."""
    prefs = company.entities("Preferences")[0]
    company.server.edit_entity(
        company.realm_id,
        "Preferences",
        prefs["Id"],
        {
            "AccountingInfoPrefs": {
                "ClassTrackingPerTxn": per_txn,
                "ClassTrackingPerTxnLine": per_line,
                "TrackDepartments": departments,
                "DepartmentTerminology": terminology,
            }
        },
    )


def add(company, entity: str, name: str) -> str:
    return company.server.create_entity(company.realm_id, entity, {"Name": name})["Id"]


def read(company):
    return company_profile_refresh(client=QuickBooksClient.for_current_connection())


def choose(company, *, class_id="", department_id=""):
    unit_tracking_update(
        realm_id=company.realm_id,
        business_unit=business_unit_default(),
        user=None,
        class_id=class_id,
        department_id=department_id,
    )


def two_line_invoice():
    customer = CustomerFactory()
    invoice = billing_services.invoice_create(
        customer=customer,
        number="INV-14",
        sales_tax="0.00",
        lines=[
            billing_services.LineInput(service_name="Labor", unit_price="60.00"),
            billing_services.LineInput(service_name="Parts", unit_price="40.00"),
        ],
    )
    return billing_services.invoice_issue(invoice=invoice, issued_on=datetime.date(2026, 11, 1))


def exported_invoice(company) -> dict:
    payment = pay(two_line_invoice(), "100.00")
    export(payment)
    payment.refresh_from_db()
    assert payment.export_status == S.EXPORTED
    (invoice,) = company.entities("Invoice")
    return invoice


def test_tracking_off_is_read_in_words_and_no_refs_are_sent(company):
    class_id = add(company, "Class", "Residential")
    profile = read(company)
    assert profile.class_tracking == ClassTracking.OFF and not profile.track_departments
    assert profile.classes == [] and profile.describe_tracking() == "Classes not tracked; locations not tracked"
    with pytest.raises(ApplicationError, match="class tracking is off"):
        choose(company, class_id=class_id)
    # Chosen while tracking was on, then turned off in QuickBooks: nothing is sent.
    QuickBooksUnitTracking.objects.create(
        realm_id=company.realm_id, business_unit=business_unit_default(), class_id=class_id
    )
    invoice = exported_invoice(company)
    assert "ClassRef" not in invoice and "DepartmentRef" not in invoice
    assert all(
        "ClassRef" not in line["SalesItemLineDetail"] for line in invoice["Line"] if "SalesItemLineDetail" in line
    )


def test_one_class_per_transaction_goes_on_the_invoice(company):
    track(company, per_txn=True)
    add(company, "Class", "Commercial")
    residential = add(company, "Class", "Residential")
    profile = read(company)
    assert profile.class_tracking == ClassTracking.PER_TRANSACTION
    assert profile.describe_tracking() == "One class per invoice; locations not tracked"
    choose(company, class_id=residential)

    invoice = exported_invoice(company)

    assert invoice["ClassRef"] == {"value": residential, "name": "Residential"}
    assert all("ClassRef" not in line.get("SalesItemLineDetail", {}) for line in invoice["Line"])


def test_one_class_per_line_goes_on_each_line(company):
    track(company, per_line=True)
    residential = add(company, "Class", "Residential")
    assert read(company).class_tracking == ClassTracking.PER_LINE
    choose(company, class_id=residential)

    invoice = exported_invoice(company)

    assert "ClassRef" not in invoice
    sales_lines = [line for line in invoice["Line"] if line["DetailType"] == "SalesItemLineDetail"]
    assert len(sales_lines) == 2
    assert all(line["SalesItemLineDetail"]["ClassRef"]["value"] == residential for line in sales_lines)


def test_the_location_goes_on_the_invoice_as_department_ref(company):
    track(company, departments=True, terminology="Store")
    north = add(company, "Department", "North side")
    profile = read(company)
    assert profile.track_departments and profile.location_label == "Store"
    assert profile.describe_tracking() == "Classes not tracked; stores tracked"
    choose(company, department_id=north)

    invoice = exported_invoice(company)

    assert invoice["DepartmentRef"] == {"value": north, "name": "North side"}
    assert "ClassRef" not in invoice


def test_a_class_made_inactive_in_quickbooks_stops_the_export_with_a_clear_message(company):
    track(company, per_txn=True)
    residential = add(company, "Class", "Residential")
    read(company)
    choose(company, class_id=residential)
    company.server.deactivate(company.realm_id, "Class", residential)
    read(company)  # the run reads the company again (company_profile_current); here read now
    payment = pay(two_line_invoice(), "100.00")

    batch = export(payment)

    payment.refresh_from_db()
    assert payment.export_status == S.FAILED
    item = ExportBatchItem.objects.get(batch=batch)
    assert item.error_code == "class_or_location_inactive"
    assert "class Residential chosen for" in item.message and "inactive or gone" in item.message
    assert company.entities("Invoice") == []


def test_quickbooks_refuses_an_inactive_class_sent_anyway(company):
    """The sandbox's own rule, for a list read before the class was made inactive: 610, nothing created."""
    track(company, per_txn=True)
    residential = add(company, "Class", "Residential")
    customer = company.server.create_entity(company.realm_id, "Customer", {"DisplayName": "Someone"})
    income = next(a["Id"] for a in company.entities("Account") if a["AccountType"] == "Income")
    item = company.server.create_entity(
        company.realm_id, "Item", {"Name": "Labor", "Type": "Service", "IncomeAccountRef": {"value": income}}
    )
    company.server.deactivate(company.realm_id, "Class", residential)
    client = QuickBooksClient.for_current_connection()
    body = {
        "CustomerRef": {"value": customer["Id"]},
        "ClassRef": {"value": residential},
        "Line": [
            {
                "DetailType": "SalesItemLineDetail",
                "Amount": "10.00",
                "SalesItemLineDetail": {"ItemRef": {"value": item["Id"]}},
            }
        ],
    }
    with pytest.raises(QuickBooksObjectNotFoundError, match="made inactive"):
        client.create("Invoice", body, request_id="class-inactive-1")
    body["ClassRef"] = {"value": "999"}
    with pytest.raises(QuickBooksValidationError, match="Invalid Reference Id"):
        client.create("Invoice", body, request_id="class-unknown-1")
    assert company.entities("Invoice") == []


def test_the_page_shows_tracking_and_saves_a_choice(manager_client, company, django_assert_max_num_queries):
    track(company, per_txn=True, departments=True)
    residential = add(company, "Class", "Residential")
    north = add(company, "Department", "North side")
    inactive = add(company, "Class", "Old")
    company.server.deactivate(company.realm_id, "Class", inactive)
    read(company)

    with CaptureQueriesContext(connection) as few:
        html = manager_client.get(reverse("quickbooks_export:settings")).content.decode()
    assert "One class per invoice; locations tracked" in html
    assert "Residential" in html and "North side" in html and ">Old<" not in html
    for number in range(25):
        add(company, "Class", f"Crew {number}")
    read(company)
    # The lists live in the profile row: as many queries with 28 classes as with 3 (the page also asks QuickBooks
    # for the mapping choices, whose rate-limit bookkeeping is a few queries of its own).
    with django_assert_max_num_queries(len(few)):
        assert "Crew 24" in manager_client.get(reverse("quickbooks_export:settings")).content.decode()

    response = manager_client.post(
        reverse("quickbooks_export:unit_tracking"), {"class_id": residential, "department_id": north}
    )
    assert response.status_code == 302
    row = QuickBooksUnitTracking.objects.get(realm_id=company.realm_id)
    assert (row.class_name, row.department_name, row.updated_by_id is not None) == ("Residential", "North side", True)

    refused = manager_client.post(reverse("quickbooks_export:unit_tracking"), {"class_id": inactive})
    assert refused.status_code == 400
    assert "Select a valid choice" in refused.content.decode()
    row.refresh_from_db()
    assert row.class_id == residential


def test_someone_without_the_manage_permission_cannot_choose(viewer_client, company):
    track(company, per_txn=True)
    residential = add(company, "Class", "Residential")
    read(company)
    assert viewer_client.post(reverse("quickbooks_export:unit_tracking"), {"class_id": residential}).status_code == 403
    assert not QuickBooksUnitTracking.objects.exists()
