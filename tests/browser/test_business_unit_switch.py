"""The header's business unit switcher in a real browser: shown from two units on, accessible, no script needed."""

import pytest
from playwright.sync_api import expect

from billing.services import business_unit_default
from tests.factories import BusinessUnitFactory, CustomerFactory
from tests.pages.conftest import OFFICE_PERMISSIONS, PASSWORD, RECORD_PERMISSIONS, make_user

from .axe import assert_accessible
from .conftest import sign_in

pytestmark = pytest.mark.django_db(transaction=True)


def test_switching_units_in_the_header_changes_the_records_shown(page, shoot):
    main, north = business_unit_default(), BusinessUnitFactory(name="North Shore")
    CustomerFactory(business_unit=main, display_name="Main Street Bakery")
    CustomerFactory(business_unit=north, display_name="North Shore Dental")
    user = make_user("mia", *OFFICE_PERMISSIONS, *RECORD_PERMISSIONS)
    main.members.add(user)
    north.members.add(user)

    sign_in(page, "mia", PASSWORD)
    page.goto("/customers/")
    expect(page.get_by_role("link", name="Main Street Bakery")).to_be_visible()
    expect(page.get_by_text("North Shore Dental")).to_have_count(0)
    assert_accessible(page)
    shoot(page, "business-unit-switcher")

    page.get_by_label("Business unit").select_option(label="North Shore")
    page.get_by_role("button", name="Switch").click()
    page.goto("/customers/")

    expect(page.get_by_role("link", name="North Shore Dental")).to_be_visible()
    expect(page.get_by_text("Main Street Bakery")).to_have_count(0)
    expect(page.get_by_label("Business unit")).to_have_value(str(north.pk))
