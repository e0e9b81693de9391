"""The reconciliation report in a real browser: a payment deleted by hand in QuickBooks shows up first on the run's
page, and the CSV the page offers holds it."""

import csv
import io

import pytest
from playwright.sync_api import expect

from tests.factories import CustomerFactory, issued_invoice, pay
from tests.pages.conftest import OFFICE_PERMISSIONS, PASSWORD, make_user
from tests.quickbooks_export.export.conftest import export

from .axe import assert_accessible
from .conftest import sign_in


@pytest.fixture
def dana(transactional_db):
    return make_user("dana", *OFFICE_PERMISSIONS, first_name="Dana", last_name="Office")


def test_reconcile_a_month_see_the_discrepancy_and_download_the_csv(page, dana, qbo_company, exports_run_inline, shoot):
    customer = CustomerFactory(display_name="Harbor Dental")
    kept, deleted = [pay(issued_invoice(customer=customer, amount=f"{a}.00"), f"{a}.00") for a in (120, 80)]
    export(kept, deleted)
    deleted.refresh_from_db()
    qbo_company.server.delete_entity(qbo_company.realm_id, "Payment", deleted.export_reference)
    sign_in(page, "dana", PASSWORD)

    page.get_by_role("link", name="Reconciliation").click()
    expect(page.locator("h1")).to_have_text("Reconciliation")
    page.get_by_label("From").fill("2026-11-01")
    page.get_by_label("To").fill("2026-11-30")
    page.get_by_role("button", name="Reconcile now").click()

    expect(page.locator("#reconciliation-totals")).to_be_visible()
    expect(page.locator("#discrepancy-count")).to_have_text("2")  # the payment, and its invoice open again
    expect(page.locator("#read-count")).to_have_text("2")
    rows = page.locator("#reconciliation-rows tbody tr")
    expect(rows.nth(0)).to_have_class("discrepancy")  # discrepancies first
    expect(rows.nth(1)).to_have_class("discrepancy")
    deleted_row = page.locator("#reconciliation-rows tr", has_text=f"Payment #{deleted.pk}")
    expect(deleted_row).to_have_class("discrepancy")
    expect(deleted_row).to_contain_text("Not in QuickBooks")
    expect(deleted_row).to_contain_text("was deleted there")
    expect(page.locator("#reconciliation-rows tbody tr.matched")).to_have_count(2)
    assert_accessible(page)
    shoot(page, "reconciliation-run", full_page=True)

    with page.expect_download() as download:
        page.locator("#csv-link").click()
    text = open(download.value.path(), encoding="utf-8").read()  # noqa: PTH123, SIM115
    lines = list(csv.DictReader(io.StringIO(text)))
    assert [row["Status"] for row in lines] == ["discrepancy", "discrepancy", "ok", "ok"]
    assert {(row["Record"], row["Discrepancies"]) for row in lines[:2]} == {
        (f"Payment #{deleted.pk}", "Not in QuickBooks"),
        (deleted.applications.get().invoice.number, "Balance differs"),
    }
