"""The payment page's export history says an invoice check that held the payments was a hold, not a refusal."""

import pytest
from django.urls import reverse

from billing.models import Payment
from tests.factories import CustomerFactory, issued_invoice, pay
from tests.quickbooks_export.export.conftest import export

pytestmark = pytest.mark.django_db


def test_the_history_calls_the_invoice_check_a_hold_not_a_refusal(qbo_company, office_client):
    customer = CustomerFactory(email="held-history@example.com")
    # A hand-typed tax amount with no tax code: the automated-tax company computes its own, so the invoice is held.
    invoice = issued_invoice(customer=customer, amount="1000.00", sales_tax="24.63", number="INV-5101")
    payment = pay(invoice, "1024.63")
    export(payment)
    payment.refresh_from_db()
    assert payment.export_status == Payment.ExportStatus.ON_HOLD

    html = office_client.get(reverse("exports:payment_detail", args=[payment.pk])).content.decode()

    assert "Checked the invoice in QuickBooks and held its payments: QuickBooks computed a different total" in html
    assert "QuickBooks refused" not in html
