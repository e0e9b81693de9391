"""Undo an export in a real browser: from the batch page to the confirmation, which names what will be voided, to
the result; QuickBooks' books checked in the sandbox."""

from decimal import Decimal

import pytest
from playwright.sync_api import expect

from billing.models import Payment
from tests.factories import CustomerFactory, issued_invoice, pay
from tests.pages.conftest import OFFICE_PERMISSIONS, PASSWORD, make_user
from tests.quickbooks_export.export.conftest import export

from .axe import assert_accessible
from .conftest import sign_in

S = Payment.ExportStatus


@pytest.fixture
def dana(transactional_db):
    return make_user("dana", *OFFICE_PERMISSIONS, first_name="Dana", last_name="Office")


def test_undo_an_export_with_its_confirmation(page, dana, qbo_company, exports_run_inline):
    customer = CustomerFactory(display_name="Harbor Dental")
    payments = [pay(issued_invoice(customer=customer, amount=f"{a}.00"), f"{a}.00") for a in (120, 80)]
    batch = export(*payments)
    for payment in payments:
        payment.refresh_from_db()
    sign_in(page, "dana", PASSWORD)

    page.goto(f"/exports/{batch.pk}/")
    page.locator("#undo-link").click()
    expect(page.locator("h1")).to_have_text(f"Undo Export #{batch.pk}")
    expect(page.locator("#undo-payments li")).to_have_count(2)
    expect(page.locator("#undo-payments")).to_contain_text(
        f"Payment #{payments[0].pk} from Harbor Dental, $120.00 — QuickBooks payment {payments[0].export_reference}"
    )
    expect(page.locator("#undo-invoices li")).to_have_count(2)
    assert_accessible(page)

    page.get_by_role("button", name="Void 2 payments and 2 invoices in QuickBooks").click()

    expect(page.locator("#undo-state")).to_contain_text("Done — voided 2 payments and 2 invoices of 4 records.")
    assert_accessible(page)
    assert all(Decimal(str(p["TotalAmt"])) == 0 for p in qbo_company.entities("Payment"))
    assert all(Decimal(str(i["TotalAmt"])) == 0 for i in qbo_company.entities("Invoice"))
    assert set(Payment.objects.values_list("export_status", flat=True)) == {S.NOT_EXPORTED}
