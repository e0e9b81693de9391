"""The desk's whole day in a real browser, on a phone (390×844) and on a desktop (1366×900): record a customer, a job
and an invoice with two lines, take a deposit and see it held with its reason, record the final payment from the
held payment's page, export, and find both payments in QuickBooks. Every page is checked by axe-core, and on every
page every table cell and every menu entry is on screen and reachable."""

import re
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from billing.demo import seed_story_company
from billing.models import Customer, Invoice, Payment
from quickbooks_export.models import ExportBatch
from quickbooks_export.services import export_batch_start
from tests.pages.conftest import OFFICE_PERMISSIONS, PASSWORD, RECORD_PERMISSIONS, make_user

from .axe import assert_accessible
from .conftest import sign_in

SIZES = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1366, "height": 900}}
MENU = (
    "Payments",
    "Customers",
    "Invoices",
    "Export log",
    "Needs manual handling",
    "QuickBooks links",
    "QuickBooks",
    "Admin",
)


@pytest.fixture(params=list(SIZES))
def sized_page(request, browser, live_server):
    context = browser.new_context(base_url=live_server.url, viewport=SIZES[request.param], locale="en-US")
    context.set_default_timeout(20_000)
    page = context.new_page()
    page.size_name = request.param
    yield page
    context.close()


@pytest.fixture
def desk(transactional_db):
    """Office staff who record and export; staff status shows the Admin entry, so every menu entry is tested."""
    return make_user(
        "dana", *OFFICE_PERMISSIONS, *RECORD_PERMISSIONS, first_name="Dana", last_name="Office", is_staff=True
    )


def on_phone(page) -> bool:
    return page.size_name == "phone"


def go(page, name: str) -> None:
    """Follow a menu entry, opening the folded menu first on a phone."""
    if on_phone(page):
        page.locator("label.menu-button").click()
    page.get_by_role("navigation", name="Main").get_by_role("link", name=re.compile(f"^{re.escape(name)}")).click()


def assert_everything_reachable(page) -> None:
    """Every table cell is on screen (no cut-off column), the page never scrolls sideways, and every menu entry
    can be seen and clicked (after opening the menu on a phone)."""
    width = page.viewport_size["width"]
    offenders = page.evaluate(
        """(width) => {
            const bad = [];
            for (const cell of document.querySelectorAll('main td, main th')) {
                const box = cell.getBoundingClientRect();
                const head = cell.closest('thead');
                if (head && head.getBoundingClientRect().width <= 1) continue;  // headers hidden: cards label cells
                if (box.left < -1 || box.right > width + 1 || cell.scrollWidth > cell.clientWidth + 2) {
                    const name = cell.dataset.label || cell.textContent.trim().slice(0, 40);
                    bad.push(`${name}: ${box.left}-${box.right}px, content ${cell.scrollWidth}/${cell.clientWidth}`);
                }
            }
            if (document.documentElement.scrollWidth > width + 1) bad.push('page scrolls sideways');
            return bad;
        }""",
        width,
    )
    assert not offenders, f"{page.url} at {width}px: {offenders}"
    nav = page.get_by_role("navigation", name="Main")
    if on_phone(page):
        expect(nav).to_be_hidden()
        page.locator("label.menu-button").click()
    for entry in MENU:
        link = nav.get_by_role("link", name=re.compile(rf"^{re.escape(entry)}( \d+)?$"))
        expect(link).to_be_visible()
        box = link.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= width, (entry, box)
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    if on_phone(page):
        page.locator("label.menu-button").click()
        expect(nav).to_be_hidden()


def check(page) -> None:
    assert_accessible(page)
    assert_everything_reachable(page)


def test_record_a_job_take_a_deposit_finish_it_and_export(sized_page, desk, qbo_company, exports_run_inline, shoot):
    page = sized_page
    size = page.size_name
    sign_in(page, "dana", PASSWORD)

    # A new customer.
    go(page, "Customers")
    check(page)
    page.get_by_role("link", name="New customer").click()
    page.get_by_label("Name").fill("Rosa Martinez")
    page.get_by_label("E-mail").fill("rosa@example.com")
    page.get_by_role("button", name="Add customer").click()
    expect(page.locator(".msg.success")).to_have_text("Customer Rosa Martinez added.")
    expect(page.get_by_text("Not in QuickBooks yet")).to_be_visible()
    check(page)

    # A job for her.
    page.get_by_role("link", name="New job").click()
    page.get_by_label("Job number").fill("J-2001")
    page.get_by_label("What the job is").fill("Water heater replacement")
    page.get_by_role("button", name="Add job").click()
    expect(page.get_by_text("J-2001", exact=True)).to_be_visible()

    # An invoice with two lines; a typing mistake is refused in place first.
    page.get_by_role("link", name="Invoice it").click()
    check(page)
    page.get_by_label("Invoice number").fill("INV-2001")
    first, second = page.get_by_role("group", name="Line 1"), page.get_by_role("group", name="Line 2")
    first.get_by_label("Service").fill("Water heater")
    first.get_by_label("Unit price").fill("1,200.00")
    second.get_by_label("Service").fill("Labor")
    second.get_by_label("Quantity").fill("2")
    second.get_by_label("Unit price").fill("1e2")
    page.get_by_role("button", name="Save invoice").click()
    expect(second.locator(".errorlist")).to_have_text("Unit price: type an amount in figures, like 150.00.")
    assert not Invoice.objects.exists()
    shoot(page, f"invoice-form-{size}", full_page=True)
    page.get_by_role("group", name="Line 2").get_by_label("Unit price").fill("150.00")
    page.get_by_role("button", name="Save invoice").click()
    expect(page.get_by_role("heading", name=re.compile("Invoice INV-2001"))).to_contain_text("Draft")
    page.get_by_role("button", name="Issue invoice").click()
    expect(page.locator(".msg.success")).to_contain_text("INV-2001 is issued")
    check(page)

    # A deposit of $500.00: recorded, and held with its reason.
    page.get_by_role("link", name="Record a payment of $1,500.00").click()
    page.get_by_label("Amount received").fill("500.00")
    page.get_by_label("Apply to INV-2001").fill("500.00")
    page.get_by_label("Reference").fill("DEP-1")
    check(page)
    page.get_by_role("button", name="Record payment").click()
    expect(page.locator(".msg.success")).to_have_text("Payment of $500.00 recorded.")
    expect(page.locator("#export-status")).to_have_text("Held")
    expect(page.locator("#export-panel")).to_contain_text("INV-2001 still has $1,000.00 open")
    shoot(page, f"held-deposit-{size}", full_page=True)
    check(page)

    # The rest, from the held payment's page: the form comes filled in.
    page.get_by_role("link", name="Record the remaining $1,000.00 on INV-2001").click()
    expect(page.get_by_label("Amount received")).to_have_value("1000.00")
    expect(page.get_by_label("Apply to INV-2001")).to_have_value("1000.00")
    page.get_by_label("Paid by").select_option("card")
    page.get_by_role("button", name="Record payment").click()
    expect(page.locator("#export-status")).to_have_text("Ready to export")

    # Export from the final payment's page; the deposit goes with it (same invoice), and the page says so first.
    page.get_by_role("button", name="Export to QuickBooks").click()
    expect(page.locator("#export-confirm")).to_contain_text("This also sends 1 other payment")
    expect(page.locator("#export-confirm")).to_contain_text("$500.00 received")
    assert not ExportBatch.objects.exists()
    check(page)
    page.get_by_role("button", name="Export all 2 payments").click()
    expect(page.locator("#export-panel")).to_contain_text("Created in QuickBooks")
    expect(page.locator("#export-status")).to_have_text("Exported")
    check(page)
    shoot(page, f"payment-exported-{size}", full_page=True)

    # Both payments are in QuickBooks, applied to the one invoice, which QuickBooks says is paid.
    customer = Customer.objects.get(display_name="Rosa Martinez")
    payments = list(Payment.objects.filter(customer=customer).order_by("amount"))
    assert [p.export_status for p in payments] == ["exported", "exported"]
    qbo_payments = {p["Id"]: p for p in qbo_company.entities("Payment")}
    assert {Decimal(str(qbo_payments[p.export_reference]["TotalAmt"])) for p in payments} == {
        Decimal("500.00"),
        Decimal("1000.00"),
    }
    (qbo_invoice,) = qbo_company.entities("Invoice")
    assert qbo_invoice["DocNumber"] == "INV-2001"
    assert Decimal(str(qbo_invoice["TotalAmt"])) == Decimal("1500.00")
    assert Decimal(str(qbo_invoice["Balance"])) == Decimal("0")
    for payment in payments:
        (line,) = qbo_payments[payment.export_reference]["Line"]
        assert line["LinkedTxn"][0] == {"TxnId": qbo_invoice["Id"], "TxnType": "Invoice"}

    # "Open in QuickBooks" on the local sandbox is a page in words, not a JSON dump.
    href = page.get_by_role("link", name="Open in QuickBooks ↗").get_attribute("href")
    sandbox_page = page.context.new_page()
    sandbox_page.goto(href)
    expect(sandbox_page.locator("body")).to_contain_text("local QuickBooks sandbox")
    expect(sandbox_page.locator("body")).to_contain_text("invoice INV-2001")
    sandbox_page.close()

    # The customer's page now says where they are in QuickBooks.
    page.goto(f"/customers/{customer.pk}/")
    expect(page.get_by_text("In QuickBooks", exact=True)).to_be_visible()
    shoot(page, f"customer-{size}", full_page=True)
    check(page)


def test_every_staff_page_fits_the_screen_and_passes_axe(sized_page, desk, qbo_company, shoot):
    from tests.quickbooks_export.export.conftest import drain

    seed_story_company()
    ready = Payment.objects.filter(reference__in=["10422", "ACH-88120", "551"])
    batch = export_batch_start(payments=[p.pk for p in ready], selection="3 selected payments", source="page")
    drain(qbo_company.realm_id)
    batch = ExportBatch.objects.get(pk=batch.pk)
    payment = Payment.objects.get(reference="10422")
    customer = payment.customer
    invoice = Invoice.objects.filter(customer=customer).first()
    page = sized_page
    size = page.size_name
    page.goto("/accounts/login/")
    assert_accessible(page)
    shoot(page, f"sign-in-{size}")
    sign_in(page, "dana", PASSWORD)
    page.goto("/no-such-page/")
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    assert_accessible(page)
    pages = {
        "/": "payments-list",
        f"/payments/{payment.pk}/": "payment-detail",
        "/exports/": "export-log",
        f"/exports/{batch.pk}/": "batch-progress",
        f"/exports/{batch.pk}/records/skipped/": "batch-records",
        "/manual-handling/": "manual-handling",
        "/quickbooks/": "quickbooks-settings",
        "/customers/": "customers",
        f"/customers/{customer.pk}/": "customer-detail",
        "/customers/new/": "customer-form",
        "/invoices/": "invoices",
        f"/invoices/{invoice.pk}/": "invoice-detail",
        f"/customers/{customer.pk}/payments/new/": "payment-form",
    }
    for url, name in pages.items():
        page.goto(url)
        expect(page.locator("main h1")).to_be_visible()
        shoot(page, f"{name}-{size}", full_page=name in ("payments-list", "payment-detail"))
        check(page)
