"""An invoice held because QuickBooks' copy differs: the payment page says why, with both figures, and offers
"Update the QuickBooks invoice to match FieldSync", "Check again" and "Unlink" (POST, CSRF; "Check again" needs the
export permission, "Update" and "Unlink" change QuickBooks or its link and need what the links page needs)."""

from decimal import Decimal

import pytest
from django.urls import reverse

from billing.models import Payment
from quickbooks_export.models import InvoiceExportHold, QuickBooksMappingAudit
from tests.factories import CustomerFactory, issued_invoice, pay
from tests.pages.conftest import OFFICE_PERMISSIONS, make_user
from tests.quickbooks_export.export.conftest import drain, export

pytestmark = pytest.mark.django_db
S = Payment.ExportStatus


@pytest.fixture
def manager_client(client, db):
    """Someone who exports and may change QuickBooks links (manage_quickbooks_connection), as on the links page."""
    client.force_login(make_user("mia", *OFFICE_PERMISSIONS, "manage_quickbooks_connection", first_name="Mia"))
    return client


@pytest.fixture
def held(qbo_company):
    """INV-5001 with $24.63 of tax and no tax code chosen: this automated-tax company computes its own (no tax for
    a customer without an address in its table), so the invoice is held and no payment goes."""
    customer = CustomerFactory(email="held@example.com")
    invoice = issued_invoice(customer=customer, amount="1000.00", sales_tax="24.63", number="INV-5001")
    payments = [pay(invoice, "500.00"), pay(invoice, "524.63")]
    export(*payments)
    hold = InvoiceExportHold.objects.get(invoice=invoice, state="open")
    return qbo_company, invoice, payments, hold


def test_the_payment_page_shows_the_hold_with_both_figures_and_the_three_actions(manager_client, held):
    _, _, payments, hold = held
    html = manager_client.get(reverse("exports:payment_detail", args=[payments[0].pk])).content.decode()
    assert "On hold" in html and "QuickBooks computed a different total" in html
    assert "FieldSync has $1,024.63" in html
    for action in ("update-quickbooks", "check-again", "unlink"):
        assert reverse("exports:payment_hold_action", args=[payments[0].pk, hold.pk, action]) in html


def test_unlink_of_a_differing_invoice_says_it_needs_voiding_first_and_is_refused_while_quickbooks_has_it(
    manager_client, held
):
    """Unlinking while QuickBooks still has the invoice would make the next export create a second one (custom
    transaction numbers off): the button says so, and the action is refused in plain words, changing nothing."""
    _, _, payments, hold = held
    html = manager_client.get(reverse("exports:payment_detail", args=[payments[0].pk])).content.decode()
    assert "Unlink (after voiding it in QuickBooks)" in html
    assert "void it in QuickBooks and then unlink it" in html
    url = reverse("exports:payment_hold_action", args=[payments[0].pk, hold.pk, "unlink"])
    response = manager_client.post(url, follow=True)
    assert f"QuickBooks still has invoice {hold.qbo_invoice_id} for INV-5001" in response.content.decode()
    assert InvoiceExportHold.objects.get(pk=hold.pk).state == "open"
    assert not QuickBooksMappingAudit.objects.filter(action="unlink").exists()


def test_with_the_export_permission_only_check_again_is_offered_and_update_or_unlink_is_403(office_client, held):
    """Changing the QuickBooks invoice or its link needs manage_quickbooks_connection, as on the links page."""
    _, _, payments, hold = held
    html = office_client.get(reverse("exports:payment_detail", args=[payments[0].pk])).content.decode()
    assert reverse("exports:payment_hold_action", args=[payments[0].pk, hold.pk, "check-again"]) in html
    for action in ("update-quickbooks", "unlink"):
        url = reverse("exports:payment_hold_action", args=[payments[0].pk, hold.pk, action])
        assert url not in html
        assert office_client.post(url).status_code == 403
    assert InvoiceExportHold.objects.get(pk=hold.pk).state == "open"
    assert not QuickBooksMappingAudit.objects.exists()


def test_a_hold_of_another_payments_invoice_is_404_on_this_payments_page(manager_client, held):
    _, _, _, hold = held
    stranger = pay(issued_invoice(amount="10.00"), "10.00")
    for action in ("check-again", "update-quickbooks", "unlink"):
        url = reverse("exports:payment_hold_action", args=[stranger.pk, hold.pk, action])
        assert manager_client.post(url).status_code == 404
    assert InvoiceExportHold.objects.get(pk=hold.pk).state == "open"
    assert not QuickBooksMappingAudit.objects.exists()


def test_a_viewer_sees_the_hold_but_no_actions_and_cannot_post_one(viewer_client, held):
    _, _, payments, hold = held
    html = viewer_client.get(reverse("exports:payment_detail", args=[payments[0].pk])).content.decode()
    assert "QuickBooks computed a different total" in html and "check-again" not in html
    response = viewer_client.post(reverse("exports:payment_hold_action", args=[payments[0].pk, hold.pk, "unlink"]))
    assert response.status_code == 403
    assert InvoiceExportHold.objects.get(pk=hold.pk).state == "open"


def test_check_again_when_nothing_changed_says_so_and_keeps_the_hold(office_client, held):
    _, _, payments, hold = held
    url = reverse("exports:payment_hold_action", args=[payments[0].pk, hold.pk, "check-again"])
    response = office_client.post(url, follow=True)
    assert "QuickBooks computed a different total" in response.content.decode()
    assert InvoiceExportHold.objects.get(pk=hold.pk).state == "open"
    assert QuickBooksMappingAudit.objects.filter(action="check_again").count() == 1


def test_update_the_quickbooks_invoice_overrides_its_tax_with_ours_then_the_payments_go(manager_client, held):
    """Automated sales tax picked its own code and amount; our amount sent with that code overrides it (Intuit,
    "Using QuickBooks Online API for automated sales tax", 2017), so the totals match and the hold is released."""
    company, invoice, payments, hold = held
    url = reverse("exports:payment_hold_action", args=[payments[0].pk, hold.pk, "update-quickbooks"])
    response = manager_client.post(url, follow=True)
    assert "The QuickBooks invoice now matches FieldSync" in response.content.decode()
    hold.refresh_from_db()
    assert hold.state == "released"
    drain(company.realm_id)
    [qbo_invoice] = company.entities("Invoice")
    assert Decimal(str(qbo_invoice["TotalAmt"])) == Decimal("1024.63")
    assert Decimal(str(qbo_invoice["TxnTaxDetail"]["TotalTax"])) == Decimal("24.63")
    assert Decimal(str(qbo_invoice["Balance"])) == 0
    assert sorted(Decimal(str(p["TotalAmt"])) for p in company.entities("Payment")) == [
        Decimal("500.00"),
        Decimal("524.63"),
    ]
    audit = QuickBooksMappingAudit.objects.get(action="update_invoice")
    assert audit.by.username == "mia" and Decimal(audit.after["total"]) == Decimal("1024.63")
    assert Decimal(audit.before["total"]) != Decimal("1024.63")


def test_an_unknown_action_is_404(office_client, held):
    _, _, payments, hold = held
    response = office_client.post(reverse("exports:payment_hold_action", args=[payments[0].pk, hold.pk, "nope"]))
    assert response.status_code == 404


def test_the_payment_list_filters_payments_on_hold(office_client, held):
    _, _, payments, _ = held
    html = office_client.get(reverse("exports:payment_list") + "?status=on_hold").content.decode()
    assert "2 payments" in html and "On hold" in html
    for payment in payments:
        assert f'data-payment="{payment.pk}"' in html
