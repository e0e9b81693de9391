"""A payment's page: what it pays, why it waits, its QuickBooks card (export in place), refunds and their errors."""

import datetime
import re

import pytest
from django.urls import reverse

from billing import services as billing_services
from billing.models import ManualHandlingItem, Payment, Refund
from quickbooks_export.models import ExportBatch
from tests.factories import CustomerFactory, PaymentFactory, issued_invoice, pay

from .conftest import drain

pytestmark = pytest.mark.django_db
S = Payment.ExportStatus
HTMX = {"HX-Request": "true"}


def detail(client, payment) -> str:
    response = client.get(reverse("exports:payment_detail", args=[payment.pk]))
    assert response.status_code == 200
    return response.content.decode()


def test_shows_each_invoice_with_total_paid_and_open_balance_and_why_it_is_held(office_client):
    customer = CustomerFactory(display_name="D'Angelo & Sons Bakery")
    first = issued_invoice(customer=customer, amount="120.00", number="INV-1044")
    second = issued_invoice(customer=customer, amount="80.00", number="INV-1045")
    payment = billing_services.payment_record(
        customer=customer,
        amount="180.00",
        method="ach",
        received_on=datetime.date(2026, 10, 15),
        reference="ACH-88120",
        applications=[
            billing_services.ApplicationInput(invoice=first, amount="120.00"),
            billing_services.ApplicationInput(invoice=second, amount="60.00"),
        ],
    )

    html = detail(office_client, payment)

    assert "$180.00 from D&#x27;Angelo &amp; Sons Bakery" in html
    assert "Oct 15, 2026" in html and "ACH" in html and "ref ACH-88120" in html
    assert "INV-1044" in html and "$120.00" in html
    assert "INV-1045" in html and "$80.00" in html and "$60.00" in html and "$20.00" in html
    assert "Held" in html and "INV-1045 still has $20.00 open." in html
    assert "Export to QuickBooks</button>" in html and "disabled" in html  # shown, but cannot be pressed


def test_a_payment_on_no_invoice_says_to_apply_it_first(office_client):
    html = detail(office_client, PaymentFactory(amount="75.00"))
    assert "Not applied to any invoice yet" in html and "Unapplied credit" in html
    assert "not applied to any invoice yet; apply it to an invoice first." in html


def test_a_ready_payment_offers_export(office_client):
    payment = pay(issued_invoice(amount="100.00"), "100.00")
    html = detail(office_client, payment)
    assert f'hx-post="{reverse("exports:payment_export", args=[payment.pk])}"' in html
    assert "Ready to export" in html
    assert "Export to QuickBooks</button>" in html and "Never sent to QuickBooks yet." in html


def test_export_in_place_polls_until_done_then_shows_the_quickbooks_reference_and_link(office_client, qbo_company):
    payment = pay(issued_invoice(amount="100.00", number="INV-7001"), "100.00")
    url = reverse("exports:payment_export", args=[payment.pk])

    response = office_client.post(url, headers=HTMX)

    html = response.content.decode()
    batch = ExportBatch.objects.get()
    assert response.status_code == 200 and 'id="export-panel"' in html
    assert "Exporting…" in html and 'hx-trigger="every 1s"' in html
    assert f"?batch={batch.pk}" in html and "Queued" in html

    drain(qbo_company.realm_id)
    panel = office_client.get(
        reverse("exports:payment_export_panel", args=[payment.pk]), {"batch": batch.pk}, headers=HTMX
    ).content.decode()

    payment.refresh_from_db()
    assert payment.export_status == S.EXPORTED
    assert 'hx-trigger="every 1s"' not in panel  # finished: polling stops
    assert "Created in QuickBooks" in panel and f"QuickBooks payment <strong>{payment.export_reference}" in panel
    assert "Open in QuickBooks" in panel and qbo_company.server.base_url in panel
    assert "create Payment" in panel or "Payment" in panel  # the attempt history
    assert "Export to QuickBooks</button>" not in panel


def test_export_of_a_held_payment_reports_it_skipped_with_the_reason(office_client, qbo_company):
    payment = pay(issued_invoice(amount="100.00", number="INV-7002"), "40.00")

    html = office_client.post(reverse("exports:payment_export", args=[payment.pk]), headers=HTMX).content.decode()

    assert "Skipped: Held: INV-7002 still has $60.00 open." in html
    assert 'hx-trigger="every 1s"' not in html


def test_export_errors_show_in_place(office_client):
    payment = pay(issued_invoice(amount="100.00"), "100.00")

    response = office_client.post(reverse("exports:payment_export", args=[payment.pk]), headers=HTMX)

    assert response.status_code == 200
    assert 'class="error"' in response.content.decode() and "QuickBooks is not connected" in response.content.decode()


def test_export_without_htmx_goes_back_to_the_payment(office_client, qbo_company):
    payment = pay(issued_invoice(amount="100.00"), "100.00")
    response = office_client.post(reverse("exports:payment_export", args=[payment.pk]))
    assert response.status_code == 302 and response["Location"] == reverse("exports:payment_detail", args=[payment.pk])


def test_mark_exported_by_hand_needs_a_note_then_records_it(office_client):
    payment = pay(issued_invoice(amount="100.00"), "100.00")
    url = reverse("exports:payment_mark_exported", args=[payment.pk])

    response = office_client.post(url, {"note": "  "}, follow=True)
    assert "Add a note saying why" in response.content.decode()
    payment.refresh_from_db()
    assert payment.export_status == S.NOT_EXPORTED

    response = office_client.post(url, {"note": "Keyed in by Dana"}, follow=True)
    payment.refresh_from_db()
    assert payment.export_status == S.EXPORTED_MANUALLY
    assert "Marked as exported by hand" in response.content.decode()
    assert payment.export_transitions.last().note == "Keyed in by Dana"


def test_exclude_then_include_again(office_client):
    payment = pay(issued_invoice(amount="100.00"), "100.00")

    office_client.post(reverse("exports:payment_exclude", args=[payment.pk]), {"note": "Paid twice by mistake"})
    payment.refresh_from_db()
    assert payment.export_status == S.EXCLUDED
    assert "Include in exports again" in detail(office_client, payment)

    office_client.post(reverse("exports:payment_include", args=[payment.pk]))
    payment.refresh_from_db()
    assert payment.export_status == S.NOT_EXPORTED


def test_an_illegal_status_move_is_explained(office_client):
    payment = pay(issued_invoice(amount="100.00"), "100.00")
    response = office_client.post(reverse("exports:payment_include", args=[payment.pk]), follow=True)
    assert "cannot go from not exported to not exported" in response.content.decode()


# --- Refunds ------------------------------------------------------------------------------------------------------


def refund_data(**overrides) -> dict:
    return {
        "amount": "25.00",
        "kind": "reversal",
        "reason": "Job cancelled",
        "refunded_on": "2026-11-20",
        "method": "check",
        **overrides,
    }


def test_recording_a_refund_reloads_the_page_with_it(office_client, office_user):
    payment = pay(issued_invoice(amount="100.00", number="INV-7010"), "100.00")

    response = office_client.post(reverse("billing:refund_create", args=[payment.pk]), refund_data(), headers=HTMX)

    assert response.status_code == 200
    assert response["HX-Redirect"] == reverse("exports:payment_detail", args=[payment.pk])
    refund = Refund.objects.get()
    assert refund.amount == 25 and refund.created_by == office_user and refund.application.invoice.number == "INV-7010"
    html = detail(office_client, payment)
    assert "Refund of $25.00 recorded." in html
    assert "Job cancelled" in html and "recorded by Dana Office" in html
    assert "Held" in html and "INV-7010 still has $25.00 open." in html  # the refund re-opened the invoice
    assert not ManualHandlingItem.objects.exists()


def test_refund_errors_show_in_place_and_keep_what_was_typed(office_client):
    payment = pay(issued_invoice(amount="100.00"), "100.00")

    response = office_client.post(
        reverse("billing:refund_create", args=[payment.pk]), refund_data(amount="250.00"), headers=HTMX
    )

    html = response.content.decode()
    assert response.status_code == 200 and "HX-Redirect" not in response
    assert 'id="refund-form"' in html and "<html" not in html
    assert "$250.00 is more than the $100.00 left of payment" in html
    assert 'value="250.00"' in html and 'value="Job cancelled"' in html
    assert not Refund.objects.exists()


def test_refund_form_errors_show_per_field(office_client):
    payment = pay(issued_invoice(amount="100.00"), "100.00")

    html = office_client.post(
        reverse("billing:refund_create", args=[payment.pk]),
        refund_data(amount="-5", reason="", refunded_on="soon"),
        headers=HTMX,
    ).content.decode()

    assert (
        "amount must be greater than zero (got -5)" in html
        and "This field is required." in html
        and "Enter a valid date" in html
    )


@pytest.mark.parametrize(
    "amount, words",
    [("1e3", "is not an amount"), ("12.345", "more than two decimal places"), ("NaN", "is not an amount")],
)
def test_refund_form_parses_money_like_the_api(office_client, amount, words):
    payment = pay(issued_invoice(amount="2000.00"), "2000.00")
    html = office_client.post(
        reverse("billing:refund_create", args=[payment.pk]), refund_data(amount=amount), headers=HTMX
    ).content.decode()
    assert words in html
    assert not Refund.objects.exists()


def test_refund_form_shows_the_kinds_and_offers_the_unapplied_credit_first(office_client):
    invoice = issued_invoice(amount="550.00")
    payment = pay(invoice, "550.00", payment_amount="560.00")
    html = detail(office_client, payment)
    assert "What happened" in html and "$10.00 of unapplied credit" in html
    [checked] = re.findall(r'<input type="radio" name="kind" value="(\w+)"[^>]*checked', html)
    assert checked == "unapplied_credit"

    response = office_client.post(
        reverse("billing:refund_create", args=[payment.pk]),
        refund_data(amount="60.00", kind="unapplied_credit"),
        headers=HTMX,
    )
    assert "more than this payment&#x27;s unapplied credit of $10.00" in response.content.decode()

    office_client.post(
        reverse("billing:refund_create", args=[payment.pk]),
        refund_data(amount="10.00", kind="unapplied_credit"),
        headers=HTMX,
    )
    office_client.post(
        reverse("billing:refund_create", args=[payment.pk]),
        refund_data(amount="50.00", kind="no_longer_owed", reason="Goodwill"),
        headers=HTMX,
    )
    kinds = sorted(Refund.objects.values_list("kind", flat=True))
    assert kinds == ["no_longer_owed", "unapplied_credit"]
    html = detail(office_client, payment)
    assert "Overpayment returned" in html and "Money returned, no longer owed" in html
    assert "Taken out of what FieldSync exports" in html and "To enter in QuickBooks" in html
    assert "Held" not in html  # the goodwill credit keeps the invoice paid


def test_a_split_payment_asks_which_invoice_the_refund_comes_out_of(office_client):
    customer = CustomerFactory()
    first = issued_invoice(customer=customer, amount="60.00", number="INV-7020")
    second = issued_invoice(customer=customer, amount="40.00", number="INV-7021")
    payment = billing_services.payment_record(
        customer=customer,
        amount="100.00",
        method="check",
        received_on=datetime.date(2026, 10, 1),
        applications=[
            billing_services.ApplicationInput(invoice=first, amount="60.00"),
            billing_services.ApplicationInput(invoice=second, amount="40.00"),
        ],
    )
    assert "Out of invoice" in detail(office_client, payment)
    url = reverse("billing:refund_create", args=[payment.pk])

    html = office_client.post(url, refund_data(), headers=HTMX).content.decode()
    assert "split across INV-7020, INV-7021; say which invoice the refund is for" in html

    response = office_client.post(url, refund_data(invoice=second.pk), headers=HTMX)
    assert "HX-Redirect" in response
    assert Refund.objects.get().application.invoice == second


def test_refund_of_an_exported_payment_is_flagged_for_manual_handling(office_client):
    payment = pay(issued_invoice(amount="330.00"), "330.00")
    for status in (S.QUEUED, S.EXPORTING, S.EXPORTED):
        billing_services.payment_export_status_transition(
            payment_id=payment.pk, to_status=status, export_reference="145"
        )
    assert "may already be) in QuickBooks" in detail(office_client, payment)

    office_client.post(reverse("billing:refund_create", args=[payment.pk]), refund_data(amount="110.00"), headers=HTMX)

    item = ManualHandlingItem.objects.get()
    assert item.amount == 110 and item.quickbooks_reference == "145"
    html = detail(office_client, payment)
    assert "see Needs manual handling for exactly what to enter" in html and "To enter in QuickBooks</a>" in html


def test_refund_without_htmx_redirects_with_the_error(office_client):
    payment = pay(issued_invoice(amount="100.00"), "100.00")
    response = office_client.post(
        reverse("billing:refund_create", args=[payment.pk]), refund_data(amount="500.00"), follow=True
    )
    assert "$500.00 is more than the $100.00 left" in response.content.decode()


def test_a_payment_with_an_application_reversed_in_full_still_shows(office_client):
    payment = pay(issued_invoice(amount="300.00", number="INV-7090"), "300.00")
    billing_services.refund_record(
        payment=payment,
        amount="300.00",
        kind="reversal",
        reason="Check bounced",
        refunded_on=datetime.date(2026, 11, 20),
        method="check",
    )
    html = detail(office_client, payment)
    assert "INV-7090" in html and "Check bounced" in html and "Payment reversed, still owed" in html


def test_a_payment_reversed_in_full_says_so_instead_of_not_applied(office_client):
    payment = pay(issued_invoice(amount="300.00", number="INV-7091"), "300.00")
    billing_services.refund_record(
        payment=payment,
        amount="300.00",
        kind="reversal",
        reason="Check bounced",
        refunded_on=datetime.date(2026, 11, 20),
        method="check",
    )
    html = detail(office_client, payment)
    assert "what it paid on INV-7091 was reversed in full; nothing is left to send to QuickBooks" in html
    assert "not applied to any invoice yet" not in html
