"""Review: "Update the QuickBooks invoice to match FieldSync" builds the invoice with the company's default tax code
(QuickBooksMappingSettings.sales_tax_code_id) or the code QuickBooks has, never the code chosen for the invoice's tax
rate (QuickBooksTaxCodeMapping), which the export itself uses (services._tax_code_for)."""

from decimal import Decimal

import pytest

from billing import services as billing_services
from billing.models import Payment
from billing.selectors import invoice_get_with_balances
from quickbooks_export import holds
from quickbooks_export.client import QuickBooksClient
from quickbooks_export.models import (
    InvoiceExportHold,
    QuickBooksMapping,
    QuickBooksMappingSettings,
    QuickBooksTaxCodeMapping,
)
from tests.factories import CustomerFactory, pay

from .conftest import connect, export

pytestmark = pytest.mark.django_db


def test_update_quickbooks_uses_the_tax_code_chosen_for_the_rate(qbo_sandbox, settings):
    settings.FIELDSYNC_CURRENCY = "GBP"
    company = connect(qbo_sandbox, settings, profile="uk")
    names = {c["Name"]: c["Id"] for c in company.entities("TaxCode")}
    rate = billing_services.tax_rate_create(name="Standard VAT", percentage="20")
    QuickBooksTaxCodeMapping.objects.create(realm_id=company.realm_id, tax_rate=rate, qbo_tax_code_id=names["20.0% S"])
    QuickBooksMappingSettings.objects.update_or_create(
        realm_id=company.realm_id, defaults={"no_tax_code_id": names["0.0% Z"]}
    )
    customer = CustomerFactory()
    invoice = billing_services.invoice_issue(
        invoice=billing_services.invoice_create(
            customer=customer,
            number="INV-UK1",
            tax_rate=rate,
            lines=[billing_services.LineInput("Boiler service", "100.00")],
        )
    )
    total = invoice_get_with_balances(invoice_id=invoice.pk).total
    assert total == Decimal("120.00")

    # QuickBooks already has this invoice, keyed by hand with the zero-rated code (total 100.00), mapped to ours.
    client = QuickBooksClient.for_current_connection()
    qbo_customer = client.create(
        "Customer",
        {"DisplayName": customer.display_name, "PrimaryEmailAddr": {"Address": customer.email}},
        request_id="rv-c1",
    )
    income = next(a for a in company.entities("Account") if a.get("AccountType") == "Income")
    qbo_item = client.create(
        "Item",
        {"Name": "Boiler service", "Type": "Service", "IncomeAccountRef": {"value": income["Id"]}},
        request_id="rv-i1",
    )
    qbo_invoice = client.create(
        "Invoice",
        {
            "CustomerRef": {"value": qbo_customer["Id"]},
            "DocNumber": "INV-UK1",
            "Line": [
                {
                    "DetailType": "SalesItemLineDetail",
                    "Amount": "100.00",
                    "SalesItemLineDetail": {
                        "ItemRef": {"value": qbo_item["Id"]},
                        "Qty": 1,
                        "UnitPrice": "100.00",
                        "TaxCodeRef": {"value": names["0.0% Z"]},
                    },
                }
            ],
        },
        request_id="rv-inv1",
    )
    for kind, key, obj in (
        ("customer", str(customer.pk), qbo_customer),
        ("item", "boiler service", qbo_item),
        ("invoice", str(invoice.pk), qbo_invoice),
    ):
        QuickBooksMapping.objects.create(
            realm_id=company.realm_id,
            kind=kind,
            local_key=key,
            qbo_id=qbo_invoice["Id"] if kind == "invoice" else obj["Id"],
            sync_token=str(obj.get("SyncToken", "0")),
            linked_existing=True,
        )

    payment = pay(invoice, "120.00")
    export(payment)
    payment.refresh_from_db()
    assert payment.export_status == Payment.ExportStatus.ON_HOLD
    hold = InvoiceExportHold.objects.get(invoice=invoice, state=InvoiceExportHold.State.OPEN)

    # The export would send the rate's code (20.0% S); the hold's update should too, and QuickBooks then matches.
    holds.invoice_hold_update_quickbooks(hold_id=hold.pk, user=None)
    [qbo] = company.entities("Invoice")
    assert Decimal(str(qbo["TotalAmt"])) == Decimal("120.00")
