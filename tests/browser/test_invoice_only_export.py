"""An invoice with nothing to pay, in a real browser: issue a $0.00 warranty invoice, press Export to QuickBooks on
its page, and follow the export to its record (the invoice, sent on its own) and to QuickBooks."""

from decimal import Decimal

import pytest
from playwright.sync_api import expect

from billing import services as billing_services
from tests.factories import CustomerFactory
from tests.pages.conftest import OFFICE_PERMISSIONS, PASSWORD, RECORD_PERMISSIONS, make_user

from .axe import assert_accessible
from .conftest import sign_in


@pytest.fixture
def exports_run_inline(monkeypatch):
    """django-q2's sync mode: the export task runs in the request that enqueued it (on commit)."""
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", True)


def test_export_a_warranty_invoice_from_its_page(page, transactional_db, qbo_company, exports_run_inline, shoot):
    make_user("dana", *OFFICE_PERMISSIONS, *RECORD_PERMISSIONS, first_name="Dana", last_name="Office")
    invoice = billing_services.invoice_create(
        customer=CustomerFactory(display_name="Maple Court Dental"),
        number="INV-W900",
        lines=[billing_services.LineInput(service_name="Warranty repair", unit_price="0.00")],
    )
    billing_services.invoice_issue(invoice=invoice)
    sign_in(page, "dana", PASSWORD)

    page.goto(f"/invoices/{invoice.pk}/")
    expect(page.get_by_role("heading", name="Invoice INV-W900")).to_contain_text("Paid")
    assert_accessible(page)
    shoot(page, "invoice-nothing-to-pay")
    page.get_by_role("button", name="Export to QuickBooks").click()

    expect(page.get_by_text("Finished")).to_be_visible()
    page.get_by_role("link", name="1 created").click()
    expect(page.get_by_text("invoice INV-W900 (nothing to pay)")).to_be_visible()
    row = page.locator("tr[data-item]")
    expect(row).to_contain_text("Invoice INV-W900")
    expect(row).to_contain_text("Maple Court Dental")
    shoot(page, "invoice-nothing-to-pay-exported")
    [qbo_invoice] = qbo_company.entities("Invoice")
    assert qbo_invoice["DocNumber"] == "INV-W900" and Decimal(str(qbo_invoice["TotalAmt"])) == 0
