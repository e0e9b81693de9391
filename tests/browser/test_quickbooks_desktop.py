"""QuickBooks Desktop in a real browser: set the Web Connector up, download the .qwc, export payments, let a
simulated Web Connector (over HTTP, at the address the .qwc names) run, and watch the batch finish."""

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from playwright.sync_api import expect

from quickbooks_desktop.simulator import DesktopCompany, HttpTransport, WebConnectorSimulator
from tests.factories import CustomerFactory, issued_invoice, pay
from tests.pages.conftest import OFFICE_PERMISSIONS, PASSWORD, make_user

from .conftest import sign_in

DESKTOP_PERMISSIONS = ("view_desktopconnection", "manage_desktop_connection")
QBWC_PASSWORD = "browser test web connector password"


@pytest.fixture
def office(transactional_db):
    return make_user("dana", *OFFICE_PERMISSIONS, *DESKTOP_PERMISSIONS, first_name="Dana", last_name="Office")


def test_set_up_desktop_download_the_qwc_and_watch_a_web_connector_run_finish_the_batch(page, office, tmp_path, shoot):
    customer = CustomerFactory(display_name="Maria Lopez")
    invoice = issued_invoice(customer=customer, amount="450.00", number="INV-5501")
    deposit, final = pay(invoice, "150.00", reference="D-1"), pay(invoice, "300.00", reference="F-2")
    sign_in(page, "dana", PASSWORD)

    page.get_by_role("link", name="QuickBooks Desktop").click()
    expect(page.get_by_role("heading", name="QuickBooks Desktop", exact=True)).to_be_visible()
    page.get_by_label("Web Connector password").fill(QBWC_PASSWORD)
    page.get_by_role("button", name="Set password").click()
    expect(page.locator(".messages")).to_contain_text("Web Connector password set")
    page.get_by_label("Export to QuickBooks Desktop").check()
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#desktop-target")).to_have_text("QuickBooks Desktop")

    with page.expect_download() as download_info:
        page.locator("#download-qwc").click()
    qwc_path = Path(tmp_path) / "fieldsync.qwc"
    download_info.value.save_as(qwc_path)
    qwc = ET.parse(qwc_path).getroot()
    app_url = qwc.findtext("AppURL")
    assert app_url.endswith("/quickbooks-desktop/qbwc/") and qwc.findtext("QBType") == "QBFS"

    # Export the deposit from the Payments page: the final payment comes with its invoice.
    page.get_by_role("link", name="Payments", exact=True).click()
    page.locator(f'tr[data-payment="{deposit.pk}"] input[type=checkbox]').check()
    page.get_by_role("button", name="Export 1 payment").click()
    expect(page.get_by_role("heading", name=re.compile(r"Export #\d+"))).to_be_visible()
    expect(page.locator("#progress-numbers")).to_have_text("0 of 2 done")

    # The Web Connector's scheduled run, at the address and with the user name the .qwc file gives it.
    company = DesktopCompany()
    report = WebConnectorSimulator(
        HttpTransport(app_url), username=qwc.findtext("UserName"), password=QBWC_PASSWORD, company=company
    ).run()

    expect(page.locator("#batch-progress h2")).to_have_text("Finished")
    expect(page.locator("#progress-numbers")).to_have_text("2 of 2 done")
    expect(page.locator('[data-outcome="created"]')).to_contain_text("2")
    assert report.percents[-1] == 100
    [qb_invoice] = company.transactions("Invoice")
    assert company.invoice_balance(qb_invoice.txn_id) == 0
    assert sorted(t.ref_number for t in company.transactions("ReceivePayment")) == sorted(
        [f"FS-P{deposit.pk}", f"FS-P{final.pk}"]
    )

    page.get_by_role("link", name="QuickBooks Desktop").click()
    expect(page.locator("#desktop-last-contact")).not_to_contain_text("Never")
    expect(page.locator("#desktop-last-session")).to_contain_text("2 payments done")
    shoot(page, "quickbooks-desktop", full_page=True)
