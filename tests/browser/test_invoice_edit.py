"""Changing an issued invoice in a real browser: add a line with "Add a line", untick a line's tax, save; a change
below the payments is refused in place. The page passes axe-core."""

from decimal import Decimal

import pytest
from playwright.sync_api import expect

from billing.models import Invoice
from tests.factories import issued_invoice, pay
from tests.pages.conftest import PASSWORD, RECORD_PERMISSIONS, make_user

from .axe import assert_accessible
from .conftest import sign_in

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_issued_invoice_is_changed_in_the_browser(page, tmp_path):
    make_user("casey", *RECORD_PERMISSIONS, first_name="Casey")
    invoice = issued_invoice(amount="100.00", number="INV-8001")
    pay(invoice, "100.00")
    sign_in(page, "casey", PASSWORD)

    page.goto(f"/invoices/{invoice.pk}/")
    page.get_by_role("link", name="Change invoice").click()
    expect(page.get_by_role("heading", name="Change INV-8001")).to_be_visible()
    assert_accessible(page)

    page.get_by_role("button", name="Add a line").click()
    second = page.get_by_role("group", name="Line 2")
    second.get_by_label("Service").fill("Labor")
    second.get_by_label("Description").fill("Second visit")
    second.get_by_label("Unit price").fill("45")
    second.get_by_label("Taxable").uncheck()
    page.screenshot(path=str(tmp_path / "invoice_edit.png"), full_page=True)
    page.get_by_role("button", name="Save changes").click()

    expect(page.get_by_text("INV-8001 saved.")).to_be_visible()
    expect(page.get_by_text("changed after issue")).to_be_visible()
    invoice = Invoice.objects.get(pk=invoice.pk)
    assert list(invoice.lines.values_list("description", "amount", "taxable")) == [
        ("", Decimal("100.00"), True),
        ("Second visit", Decimal("45.00"), False),
    ]
    assert invoice.status == "open"

    page.get_by_role("link", name="Change invoice").click()
    page.get_by_role("group", name="Line 2").get_by_label("Remove").check()
    page.get_by_role("group", name="Line 1").get_by_label("Unit price").fill("50")
    page.get_by_role("button", name="Save changes").click()

    expect(page.get_by_role("alert")).to_contain_text("less than the $100.00 paid on it; nothing was changed")
    assert_accessible(page)
    assert invoice.lines.count() == 2
