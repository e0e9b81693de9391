"""Review: the hold's offered way out "Unlink" on a total that differs, in a company with custom transaction numbers
off, makes the next export create a second QuickBooks invoice while the first (open, wrong total) stays: QuickBooks'
receivables now count the sale twice."""

from decimal import Decimal

import pytest

from billing.models import Payment
from quickbooks_export import holds
from quickbooks_export.client import QuickBooksClient
from quickbooks_export.models import InvoiceExportHold, QuickBooksMapping
from quickbooks_export.services import export_all_exportable_start
from tests.factories import CustomerFactory, issued_invoice, pay

from .conftest import connect, drain, export

pytestmark = pytest.mark.django_db


def test_unlink_of_a_differing_invoice_does_not_leave_two_invoices_in_quickbooks(qbo_sandbox, settings):
    company = connect(qbo_sandbox, settings, profile="us-manual-tax")  # custom transaction numbers off
    customer = CustomerFactory()
    invoice = issued_invoice(customer=customer, amount="100.00")
    payment = pay(invoice, "100.00")
    client = QuickBooksClient.for_current_connection()
    qbo_customer = client.create(
        "Customer",
        {"DisplayName": customer.display_name, "PrimaryEmailAddr": {"Address": customer.email}},
        request_id="rv2-c",
    )
    qbo_item = client.create(
        "Item", {"Name": "Labor", "Type": "Service", "IncomeAccountRef": {"value": "4"}}, request_id="rv2-i"
    )
    short = client.create(
        "Invoice",
        {
            "CustomerRef": {"value": qbo_customer["Id"]},
            "Line": [
                {
                    "DetailType": "SalesItemLineDetail",
                    "Amount": "90.00",
                    "SalesItemLineDetail": {"ItemRef": {"value": qbo_item["Id"]}, "Qty": 1, "UnitPrice": "90.00"},
                }
            ],
        },
        request_id="rv2-inv",
    )
    QuickBooksMapping.objects.create(
        realm_id=company.realm_id, kind="customer", local_key=str(customer.pk), qbo_id=qbo_customer["Id"]
    )
    QuickBooksMapping.objects.create(
        realm_id=company.realm_id, kind="invoice", local_key=str(invoice.pk), qbo_id=short["Id"], sync_token="0"
    )

    export(payment)
    payment.refresh_from_db()
    assert payment.export_status == Payment.ExportStatus.ON_HOLD
    hold = InvoiceExportHold.objects.get(invoice=invoice, state="open")
    assert hold.reason == "total_differs"

    # While QuickBooks still has the differing invoice, unlink is refused: the next export would create a second one.
    with pytest.raises(holds.ApplicationError) as refused:
        holds.invoice_hold_unlink(hold_id=hold.pk, user=None)
    assert refused.value.code == "unlink_refused"
    assert f"QuickBooks still has invoice {short['Id']}" in refused.value.message
    assert "Void or delete it in QuickBooks first" in refused.value.message
    assert QuickBooksMapping.objects.filter(kind="invoice", local_key=str(invoice.pk), qbo_id=short["Id"]).exists()
    assert InvoiceExportHold.objects.filter(pk=hold.pk, state="open").exists()

    # The accountant voids it in QuickBooks (amounts zeroed); now unlink lets the next export create it afresh.
    client.void("Invoice", id=short["Id"], sync_token=client.read("Invoice", short["Id"])["SyncToken"])
    holds.invoice_hold_unlink(hold_id=hold.pk, user=None)
    drain(export_all_exportable_start(source="command").realm_id)

    open_invoices = [i for i in company.entities("Invoice") if Decimal(str(i["Balance"])) > 0]
    assert len(company.entities("Invoice")) == 1 or not open_invoices, (
        f"QuickBooks has {len(company.entities('Invoice'))} invoices for one of ours; open: "
        f"{[(i['Id'], i['TotalAmt'], i['Balance']) for i in open_invoices]}"
    )
    payment.refresh_from_db()
    assert payment.export_status == Payment.ExportStatus.EXPORTED
    assert len(open_invoices) == 0 and len(company.entities("Invoice")) == 2  # the voided one and the new, paid one
