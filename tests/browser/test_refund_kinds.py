"""Refund kinds in a real browser: record each kind from the payment page and see its kind and QuickBooks status;
then let FieldSync record a reversal in QuickBooks ("Record it in QuickBooks for me")."""

import re
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from billing.models import ManualHandlingItem, Payment, Refund
from quickbooks_export.models import QuickBooksMappingSettings
from tests.factories import CustomerFactory, issued_invoice, pay
from tests.pages.conftest import OFFICE_PERMISSIONS, PASSWORD, make_user

from .conftest import sign_in

S = Payment.ExportStatus


@pytest.fixture
def dana(transactional_db):
    return make_user("dana", *OFFICE_PERMISSIONS, first_name="Dana", last_name="Office")


def record_refund(page, payment, *, kind_label: str, amount: str, reason: str) -> None:
    page.goto(f"/payments/{payment.pk}/")
    form = page.locator("#refund-form")
    form.get_by_role("radio", name=kind_label).check()
    form.get_by_label("Amount").fill(amount)
    form.get_by_label("Reason").fill(reason)
    form.get_by_role("button", name="Record refund").click()
    expect(page.locator(".msg.success")).to_contain_text(f"Refund of ${amount} recorded.")


def test_recording_each_kind_of_refund(page, dana, shoot):
    customer = CustomerFactory(display_name="Harbor Dental")
    goodwill = pay(issued_invoice(customer=customer, amount="550.00", number="INV-9001"), "550.00")
    bounced = pay(issued_invoice(customer=customer, amount="300.00", number="INV-9002"), "300.00")
    overpaid = pay(
        issued_invoice(customer=customer, amount="550.00", number="INV-9003"), "550.00", payment_amount="560.00"
    )
    sign_in(page, "dana", PASSWORD)

    # The overpaid payment offers its unapplied credit first, and says how much there is.
    page.goto(f"/payments/{overpaid.pk}/")
    form = page.locator("#refund-form")
    expect(form).to_contain_text("$10.00 of unapplied credit")
    expect(form.get_by_role("radio", name=re.compile("^Overpayment returned"))).to_be_checked()
    form.get_by_label("Amount").fill("1e3")
    form.get_by_label("Reason").fill("Typo")
    form.get_by_role("button", name="Record refund").click()
    expect(page.locator("#refund-form")).to_contain_text('amount "1e3" is not an amount')
    record_refund(
        page,
        overpaid,
        kind_label="Overpayment returned (from the payment's unapplied credit)",
        amount="10.00",
        reason="Overpaid by $10",
    )
    refunds = page.locator("#refunds-heading + table")
    expect(refunds).to_contain_text("Overpayment returned")
    expect(refunds).to_contain_text("Taken out of what FieldSync exports")

    record_refund(
        page,
        goodwill,
        kind_label=re.compile("^Money returned, no longer owed"),
        amount="50.00",
        reason="Goodwill: late arrival",
    )
    expect(page.locator("#refunds-heading + table")).to_contain_text("To enter in QuickBooks")
    expect(page.locator("main")).not_to_contain_text("Held")  # the credit keeps INV-9001 paid

    record_refund(
        page, bounced, kind_label=re.compile("^Payment reversed, still owed"), amount="300.00", reason="Check bounced"
    )
    expect(page.locator("main")).to_contain_text("INV-9002 still has $300.00 open")
    shoot(page, "refund-kinds", full_page=True)

    kinds = dict(Refund.objects.values_list("payment_id", "kind"))
    assert kinds == {overpaid.pk: "unapplied_credit", goodwill.pk: "no_longer_owed", bounced.pk: "reversal"}


def test_record_it_in_quickbooks_for_me(page, transactional_db, qbo_company, shoot):
    make_user("owner", *OFFICE_PERMISSIONS, "manage_quickbooks_connection", first_name="Olga", last_name="Owner")
    from tests.quickbooks_export.export.conftest import export

    invoice = issued_invoice(
        customer=CustomerFactory(display_name="Cedar Grove HOA"), amount="400.00", number="INV-9010"
    )
    payment = pay(invoice, "400.00", reference="CHK-2001")
    export(payment)
    payment.refresh_from_db()
    assert payment.export_status == S.EXPORTED
    sign_in(page, "owner", PASSWORD)

    record_refund(
        page, payment, kind_label=re.compile("^Payment reversed, still owed"), amount="400.00", reason="Check bounced"
    )
    page.goto("/manual-handling/")
    item = ManualHandlingItem.objects.get(payment=payment)
    card = page.locator(f"#manual-item-{item.pk}")
    expect(card).to_contain_text(f"Void QuickBooks payment {payment.export_reference}")
    expect(card.get_by_role("button", name="Record it in QuickBooks for me")).to_have_count(0)  # off by default

    # The company allows it (QuickBooks settings): the button appears and records it once.
    page.goto("/quickbooks/")
    page.get_by_label(re.compile("Let FieldSync record reversed payments")).check()
    page.get_by_role("button", name="Save mapping").click()
    expect(page.locator(".msg.success")).to_contain_text("QuickBooks mapping saved.")
    page.goto("/manual-handling/")
    shoot(page, "record-for-me", full_page=True)
    card.get_by_role("button", name="Record it in QuickBooks for me").click()
    expect(page.locator(".msg.success")).to_contain_text(f"Recorded in QuickBooks (payment {payment.export_reference})")
    expect(page.locator(f"tr#manual-item-{item.pk}")).to_contain_text("Recorded in QuickBooks by FieldSync")

    assert QuickBooksMappingSettings.objects.get(realm_id=qbo_company.realm_id).record_refunds_for_me
    [qbo_invoice] = qbo_company.entities("Invoice")
    assert Decimal(str(qbo_invoice["Balance"])) == Decimal("400.00")  # re-opened in QuickBooks, as in FieldSync
    page.goto(f"/payments/{payment.pk}/")
    expect(page.locator("#refunds-heading + table")).to_contain_text("Recorded in QuickBooks by FieldSync")
