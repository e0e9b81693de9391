"""A payment keyed in QuickBooks, listed on "Changed in QuickBooks" and brought in from there, in a real browser."""

import pytest
from playwright.sync_api import expect

from billing.models import Payment
from quickbooks_export.models import QuickBooksChange
from tests.pages.conftest import OFFICE_PERMISSIONS, PASSWORD, make_user
from tests.pages.test_payments_recorded_in_quickbooks_page import recorded_in_quickbooks

from .axe import assert_accessible
from .conftest import sign_in


@pytest.fixture
def dana(transactional_db):
    return make_user("dana", *OFFICE_PERMISSIONS, first_name="Dana", last_name="Office")


def test_bring_a_payment_recorded_in_quickbooks_into_fieldsync(page, dana, qbo_company, shoot):
    [keyed] = recorded_in_quickbooks(qbo_company)
    sign_in(page, "dana", PASSWORD)

    page.get_by_role("link", name="Changed in QuickBooks").click()
    row = page.locator("#open-changes tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Payment of $100.00 recorded in QuickBooks against INV-8000")
    expect(row.get_by_role("button", name="Accept QuickBooks' version")).to_have_count(0)
    assert_accessible(page)
    shoot(page, "changed-in-quickbooks-payment-recorded")

    row.get_by_role("button", name="Bring it into FieldSync").click()
    # Once the answer is shown (not while the server is still bringing it in: on SQLite both share one connection).
    expect(page.locator(".msg.success")).to_contain_text("Brought into FieldSync: Payment ")
    [payment] = Payment.objects.filter(origin=Payment.Origin.QUICKBOOKS)
    expect(page.locator(".msg.success")).to_contain_text(f"Brought into FieldSync: Payment {payment.pk}.")
    expect(page.locator("#no-changes")).to_be_visible()
    expect(page.locator("#decided-changes")).to_contain_text(
        f"Payment recorded in QuickBooks: payment #{payment.pk} — Brought into FieldSync by Dana Office"
    )
    assert_accessible(page)

    assert payment.export_reference == keyed["Id"]
    assert payment.export_status == Payment.ExportStatus.IN_QUICKBOOKS
    assert QuickBooksChange.objects.get().resolution == "bring_in"
