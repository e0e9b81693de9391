"""Class and location per job type on the QuickBooks page, in a real browser: chosen next to the unit's, saved,
shown again; accessible at desktop width and on a phone."""

import pytest
from playwright.sync_api import expect

from billing import services as billing_services
from quickbooks_export.models import QuickBooksJobTypeTracking
from tests.pages.conftest import PASSWORD, make_user
from tests.quickbooks_export.export.test_class_and_location import add, read, track

from .axe import assert_accessible
from .conftest import sign_in

pytestmark = pytest.mark.django_db(transaction=True)


def test_choosing_a_class_and_location_for_a_job_type(page, qbo_company, shoot):
    track(qbo_company, per_txn=True, departments=True)
    add(qbo_company, "Class", "Residential")
    add(qbo_company, "Class", "Commercial")
    add(qbo_company, "Department", "North side")
    read(qbo_company)
    unit = billing_services.business_unit_default()
    repair = billing_services.job_type_create(business_unit=unit, name="Repair")
    billing_services.job_type_create(business_unit=unit, name="Install")
    make_user("maria", "manage_quickbooks_connection", "view_quickbooksconnection", "view_payment")

    sign_in(page, "maria", PASSWORD)
    page.goto("/quickbooks/")
    expect(page.get_by_role("heading", name="By job type")).to_be_visible()
    page.get_by_label("Class for Repair").select_option(label="Commercial")
    page.get_by_label("Location for Repair").select_option(label="North side")
    assert_accessible(page)
    page.get_by_role("heading", name="By job type").scroll_into_view_if_needed()
    shoot(page, "quickbooks-job-type-tracking")
    page.get_by_role("button", name="Save class and location per job type").click()

    expect(page.get_by_text("Class and location per job type saved.")).to_be_visible()
    expect(page.get_by_label("Class for Repair")).to_have_value(QuickBooksJobTypeTracking.objects.get().class_id)
    expect(page.get_by_label("Class for Install")).to_have_value("")
    assert QuickBooksJobTypeTracking.objects.get().job_type_id == repair.pk

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    expect(page.get_by_label("Location for Repair")).to_be_visible()
    assert_accessible(page)
