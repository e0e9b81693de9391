"""A held invoice in a real browser: "Check again" after the accountant fixed the invoice in QuickBooks."""

from decimal import Decimal

import pytest
from playwright.sync_api import expect

from billing.models import Payment
from tests.factories import CustomerFactory, issued_invoice, pay
from tests.pages.conftest import OFFICE_PERMISSIONS, PASSWORD, make_user
from tests.quickbooks_export.export.conftest import drain, export

from .conftest import server_held, sign_in

S = Payment.ExportStatus


@pytest.fixture
def dana(transactional_db):
    return make_user("dana", *OFFICE_PERMISSIONS, first_name="Dana", last_name="Office")


def test_check_again_after_fixing_the_invoice_in_quickbooks_releases_and_exports(
    page, live_server, dana, qbo_company, exports_run_inline, shoot
):
    invoice = issued_invoice(customer=CustomerFactory(), amount="1000.00", sales_tax="24.63", number="INV-6001")
    payments = [pay(invoice, "500.00"), pay(invoice, "524.63")]
    export(*payments)
    payments[1].refresh_from_db()
    assert payments[1].export_status == S.ON_HOLD
    [qbo_invoice] = qbo_company.entities("Invoice")

    sign_in(page, "dana", PASSWORD)
    page.goto(f"/payments/{payments[1].pk}/")
    page.get_by_role("button", name="Check again").click()
    expect(page.locator(".msg.error")).to_contain_text("QuickBooks computed a different total for INV-6001")
    expect(page.locator("#export-status")).to_have_text("On hold")
    shoot(page, "payment-on-hold", full_page=True)

    # The accountant sets the tax in QuickBooks by hand (an override with the invoice's own tax code).
    code = qbo_invoice["TxnTaxDetail"]["TxnTaxCodeRef"]
    qbo_company.server.edit_entity(
        qbo_company.realm_id,
        "Invoice",
        qbo_invoice["Id"],
        {"TxnTaxDetail": {"TxnTaxCodeRef": code, "TotalTax": "24.63"}},
    )
    page.get_by_role("button", name="Check again").click()
    expect(page.locator(".msg.success")).to_contain_text("QuickBooks matches now")
    with server_held(live_server):  # the payment's page polls its export meanwhile
        drain(qbo_company.realm_id)
    page.reload()
    expect(page.locator("#export-status")).to_have_text("Exported")
    [qbo_invoice] = qbo_company.entities("Invoice")
    assert Decimal(str(qbo_invoice["Balance"])) == 0
    assert len(qbo_company.entities("Payment")) == 2
