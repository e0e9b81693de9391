"""The office's day in a real browser: sign in, filter, tick, export, watch it finish, retry what failed, export one
payment from its page, refund it, and handle the refund in QuickBooks."""

import re

import pytest
from playwright.sync_api import expect

from billing.demo import seed_scale, seed_story_company
from billing.models import ManualHandlingItem, Payment
from billing.selectors import payment_filter_exportable
from quickbooks_export.models import ExportBatch
from quickbooks_export.services import export_batch_start
from tests.pages.conftest import (
    OFFICE_PERMISSIONS,
    PASSWORD,
    VIEW_PERMISSIONS,
    break_payment_method,
    make_user,
    repair_payment_method,
)

from .conftest import sign_in

S = Payment.ExportStatus


@pytest.fixture
def story(transactional_db):
    seed_story_company()
    # Dana also manages the QuickBooks links: "Update the QuickBooks invoice" on a hold needs it, as the links page.
    return make_user("dana", *OFFICE_PERMISSIONS, "manage_quickbooks_connection", first_name="Dana", last_name="Office")


def payment_of(reference: str) -> Payment:
    return Payment.objects.get(reference=reference)


def row(page, payment: Payment):
    return page.locator(f'tr[data-payment="{payment.pk}"]')


def test_the_office_flow(page, story, qbo_company, exports_run_inline, shoot):
    cash = Payment.objects.get(customer__display_name="O'Brien Plumbing Supply", method="cash")
    held = payment_of("551")  # John Smith, INV-1043 still has $50.00 open
    maria_final = payment_of("2231")  # completes INV-1041 with two earlier payments
    dangelo = payment_of("ACH-88120")
    mapping = break_payment_method(qbo_company.realm_id, "cash")  # QuickBooks will refuse cash payments

    sign_in(page, "dana", PASSWORD)

    # Filter: payments received Oct 10–16.
    page.get_by_label("Received from").fill("2026-10-10")
    page.get_by_label("Received to").fill("2026-10-16")
    page.get_by_role("button", name="Apply filters").click()
    expect(page.locator("#match-count")).to_contain_text("7 payments")
    expect(row(page, held)).to_contain_text("INV-1043 still has $50.00 open.")
    expect(row(page, payment_of("3381")).locator("input[type=checkbox]")).to_have_count(0)  # exported by hand

    # Tick several rows, one of them held.
    for payment in (held, maria_final, cash, dangelo):
        row(page, payment).locator("input[type=checkbox]").check()
    expect(page.locator("#selection-info")).to_contain_text("4 payments selected · 1 held will be skipped")
    shoot(page, "payments-list")
    page.get_by_role("button", name="Export 3 payments").click()

    # The batch page: it runs to the end.
    expect(page.get_by_role("heading", name=re.compile(r"Export #\d+"))).to_be_visible()
    expect(page.locator("#batch-progress h2")).to_have_text("Finished")
    expect(page.locator("#progress-numbers")).to_have_text("7 of 7 done")
    # INV-1041 carries $119.63 of tax that this automated-sales-tax company computes otherwise: its three payments
    # are held (nothing posted against it), the other two go.
    expect(page.locator('[data-outcome="created"]')).to_contain_text("2")
    expect(page.locator('[data-outcome="held"]')).to_contain_text("3")
    expect(page.locator('[data-outcome="skipped"]')).to_contain_text("1")
    expect(page.locator('[data-outcome="failed"]')).to_contain_text("1")
    shoot(page, "batch-progress")

    # Open the failed count: QuickBooks' words, then fix the cause and retry that one record.
    page.locator('[data-outcome="failed"]').click()
    failed_row = page.locator("tr[data-item]")
    expect(failed_row).to_have_count(1)
    expect(failed_row).to_contain_text("$200.00")
    expect(failed_row).to_contain_text("QuickBooks rejected the request")
    shoot(page, "batch-failed-records")
    repair_payment_method(*mapping)
    failed_row.get_by_role("button", name="Retry").click()
    expect(page.locator("#batch-progress h2")).to_have_text("Finished")
    expect(page.locator('[data-outcome="created"]')).to_contain_text("1")
    cash.refresh_from_db()
    assert cash.export_status == S.EXPORTED

    # The export log shows both exports, newest first.
    nav = page.get_by_role("navigation", name="Main")
    nav.get_by_role("link", name="Export log").click()
    expect(page.locator("table.log tbody tr")).to_have_count(2)
    expect(page.locator("table.log tbody tr").first).to_contain_text("retry of payment")
    expect(page.locator("table.log tbody tr").nth(1)).to_contain_text("4 selected payments")
    shoot(page, "export-log")

    # INV-1041's hold: both figures, and "Update the QuickBooks invoice to match FieldSync" puts our tax on it
    # (an amount sent with the code QuickBooks chose overrides its own); then its three payments go.
    page.goto(f"/payments/{maria_final.pk}/")
    expect(page.locator("#export-status")).to_have_text("On hold")
    expect(page.locator("#export-panel")).to_contain_text("QuickBooks computed a different total")
    expect(page.locator("#export-panel")).to_contain_text("FieldSync has $2,024.63")
    page.get_by_role("button", name="Update the QuickBooks invoice to match FieldSync").click()
    expect(page.locator(".msg.success")).to_contain_text("The QuickBooks invoice now matches FieldSync")
    maria_final.refresh_from_db()
    assert maria_final.export_status == S.EXPORTED
    [qbo_1041] = [inv for inv in qbo_company.entities("Invoice") if inv["PrivateNote"].endswith("INV-1041")]
    assert str(qbo_1041["TotalAmt"]) == "2024.63" and str(qbo_1041["Balance"]) in ("0", "0.00")

    # Export one payment from its page; the result appears in place (no reload).
    lakeview = payment_of("77120")
    page.goto(f"/payments/{lakeview.pk}/")
    page.evaluate("window.__sameDocument = true")
    expect(page.locator("#export-status")).to_have_text("Ready to export")
    page.get_by_role("button", name="Export to QuickBooks").click()
    expect(page.locator("#export-panel")).to_contain_text("Created in QuickBooks")
    expect(page.locator("#export-status")).to_have_text("Exported")
    expect(page.get_by_role("link", name="Open in QuickBooks ↗")).to_have_attribute(
        "href", re.compile(re.escape(qbo_company.server.base_url))
    )
    assert page.evaluate("window.__sameDocument") is True
    lakeview.refresh_from_db()
    assert lakeview.export_status == S.EXPORTED and lakeview.export_reference

    # Refund part of it: a mistake is shown in place, then the refund is recorded and flagged for QuickBooks.
    form = page.locator("#refund-form")
    form.get_by_label("Amount").fill("900.00")
    form.get_by_label("Reason").fill("Overpayment returned")
    form.get_by_role("button", name="Record refund").click()
    expect(page.locator("#refund-form .error")).to_contain_text("$900.00 is more than the $560.00 left")
    assert page.evaluate("window.__sameDocument") is True
    page.locator("#refund-form").get_by_label("Amount").fill("10.00")
    page.locator("#refund-form").get_by_role("button", name="Record refund").click()
    expect(page.locator(".msg.success")).to_contain_text("Refund of $10.00 recorded.")
    expect(page.get_by_role("link", name="Needs manual handling").first).to_be_visible()
    shoot(page, "payment-detail", full_page=True)

    # Needs manual handling: the new item says what to do; mark it handled with a note.
    expect(nav.locator(".count")).to_have_text("2")  # the story's hand-keyed refund, and this one
    nav.get_by_role("link", name=re.compile("Needs manual handling")).click()
    item = ManualHandlingItem.objects.get(payment=lakeview)
    card = page.locator(f"#manual-item-{item.pk}")
    expect(card).to_contain_text("Refund $10.00 to Lakeview Property Management")
    expect(card).to_contain_text(f"Payment {lakeview.export_reference}")
    shoot(page, "manual-handling")
    card.get_by_role("button", name="Mark handled").click()
    expect(card.locator("textarea:invalid")).to_have_count(1)  # a note is required
    card.get_by_label("Note for the record").fill("Refund Receipt 1043 entered by Dana")
    card.get_by_role("button", name="Mark handled").click()
    expect(page.locator(".msg.success")).to_contain_text("Marked handled: refund of $10.00")
    handled = page.locator(f"tr#manual-item-{item.pk}")
    expect(handled).to_contain_text("Refund Receipt 1043 entered by Dana")
    expect(handled).to_contain_text("Dana Office")
    expect(nav.locator(".count")).to_have_text("1")


def test_batch_progress_updates_itself_until_finished(page, story, qbo_company):
    from tests.quickbooks_export.export.conftest import drain

    ready = [payment_of("10422"), payment_of("ACH-88120")]
    batch = export_batch_start(payments=[p.pk for p in ready], selection="2 selected payments", source="page")
    sign_in(page, "dana", PASSWORD)
    page.goto(f"/exports/{batch.pk}/")
    page.evaluate("window.__sameDocument = true")
    expect(page.locator("#batch-progress h2")).to_have_text("Waiting to start…")
    expect(page.locator("#progress-numbers")).to_have_text("0 of 2 done")

    # The worker runs while the page keeps polling (its polls are held off meanwhile: with SQLite the live server
    # shares this thread's database connection).
    # htmx sends one poll at a time, so once a poll has been refused no request of the page is still in the server.
    page.route("**/progress/", lambda route: route.abort())
    with page.expect_event("requestfailed", lambda request: request.url.endswith("/progress/")):
        pass
    drain(qbo_company.realm_id)
    page.unroute("**/progress/")

    expect(page.locator("#batch-progress h2")).to_have_text("Finished")
    expect(page.locator("#progress-numbers")).to_have_text("2 of 2 done")
    expect(page.locator('[data-outcome="created"]')).to_contain_text("2")
    expect(page.locator(".progress")).to_have_attribute("aria-valuenow", "2")
    assert page.evaluate("window.__sameDocument") is True


def test_select_all_matching_exports_every_payment_the_filters_match(page, story, qbo_company, exports_run_inline):
    seed_scale(payments=40)  # more ready payments than one page of 25 holds
    ready = set(
        payment_filter_exportable(Payment.objects.filter(export_status=S.NOT_EXPORTED)).values_list("pk", flat=True)
    )
    assert len(ready) > 25
    sign_in(page, "dana", PASSWORD)
    page.goto("/?status=ready&size=25")
    expect(page.locator("#match-count")).to_contain_text(f"{len(ready)} payments")

    page.get_by_label("Select every payment on this page").check()
    expect(page.locator("#select-all-banner")).to_be_visible()
    expect(page.locator("#select-all-text")).to_have_text("All 25 payments on this page are selected.")
    expect(page.locator("#export-button")).to_have_text("Export 25 payments")
    page.get_by_role("button", name=f"Select all {len(ready)} matching payments").click()
    expect(page.locator("#export-button")).to_have_text(f"Export {len(ready)} payments")
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#export-button").click()

    expect(page.locator("#batch-progress h2")).to_have_text("Finished", timeout=30_000)
    batch = ExportBatch.objects.get()
    assert batch.selection == "Every payment matching status ready to export"
    selected = set(batch.items.filter(added_with_invoice=False).values_list("payment_id", flat=True))
    assert selected == ready
    # Everything went, except INV-1041's three payments: its $119.63 of tax is computed otherwise by this
    # automated-sales-tax company, so they are on hold and nothing was posted against it.
    not_exported = Payment.objects.filter(pk__in=ready).exclude(export_status=S.EXPORTED)
    assert set(not_exported.values_list("export_status", flat=True)) == {S.ON_HOLD}
    assert set(not_exported.values_list("applications__invoice__number", flat=True)) == {"INV-1041"}
    assert len(qbo_company.entities("Payment")) == len(ready) - 3


def test_someone_without_the_permission_sees_no_export_controls(page, story):
    make_user("vic", *VIEW_PERMISSIONS, first_name="Vic")
    sign_in(page, "vic", PASSWORD)

    expect(page.locator("tbody tr").first).to_be_visible()
    expect(page.locator("main input[type=checkbox]")).to_have_count(0)
    expect(page.get_by_role("button", name=re.compile("Export"))).to_have_count(0)
    page.locator("tbody tr").first.get_by_role("link").first.click()
    expect(page.get_by_role("heading", name="QuickBooks")).to_be_visible()
    expect(page.get_by_role("button", name="Export to QuickBooks")).to_have_count(0)
    expect(page.locator("#refund-form")).to_have_count(0)
