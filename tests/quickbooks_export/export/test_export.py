"""The export engine end to end: our services -> real python-quickbooks / intuit-oauth -> HTTP -> the sandbox."""

import datetime
from decimal import Decimal

import pytest

from billing import services as billing_services
from billing.models import Payment
from quickbooks_export.models import ExportAttempt, ExportBatchItem, QuickBooksMapping, QuickBooksMappingSettings
from quickbooks_export.selectors import export_batch_counts, export_batch_items
from tests.factories import CustomerFactory, issued_invoice, pay

from .conftest import export

pytestmark = pytest.mark.django_db
S = Payment.ExportStatus


def qbo_payments(company):
    return company.entities("Payment")


def map_a_sales_tax_code(company):
    """Choose the company's first real tax code (not the US line codes TAX/NON) for taxed invoices, as a person does
    on the QuickBooks page: QuickBooks honours our tax amount only together with a TxnTaxCodeRef."""
    code = next(c for c in company.entities("TaxCode") if c["Id"] not in ("TAX", "NON") and c.get("Active", True))
    QuickBooksMappingSettings.objects.update_or_create(
        realm_id=company.realm_id, defaults={"sales_tax_code_id": code["Id"], "sales_tax_code_name": code["Name"]}
    )


def test_deposit_part_and_final_payment_export_one_invoice_and_three_linked_payments(qbo_company):
    customer = CustomerFactory(display_name="Maria Gonzalez", email="maria@example.com")
    invoice = issued_invoice(customer=customer, amount="1000.00", sales_tax="24.63", number="INV-1041")
    map_a_sales_tax_code(qbo_company)
    deposit, part, final = pay(invoice, "500.00"), pay(invoice, "400.00"), pay(invoice, "124.63")

    batch = export(final)  # one selected: its invoice's other payments come along

    counts = export_batch_counts(batch_id=batch.pk)
    assert counts["created"] == 3 and counts["failed"] == 0 and counts["pending"] == 0
    [qbo_invoice] = qbo_company.entities("Invoice")
    assert qbo_invoice["DocNumber"] == "INV-1041"
    assert Decimal(str(qbo_invoice["TotalAmt"])) == Decimal("1024.63")
    assert Decimal(str(qbo_invoice["Balance"])) == Decimal("0")
    payments = qbo_payments(qbo_company)
    assert len(payments) == 3
    assert all(p["Line"][0]["LinkedTxn"][0]["TxnId"] == qbo_invoice["Id"] for p in payments)
    for payment in (deposit, part, final):
        payment.refresh_from_db()
        assert payment.export_status == S.EXPORTED
        assert payment.export_reference in {p["Id"] for p in payments}
    assert len(qbo_company.entities("Customer")) == 1
    assert batch.status == batch.Status.FINISHED
    added = export_batch_items(batch_id=batch.pk).filter(added_with_invoice=True).count()
    assert added == 2


def test_taxed_invoice_without_a_tax_code_in_an_automated_tax_company_is_held_when_quickbooks_computes_otherwise(
    qbo_company,
):
    customer = CustomerFactory(
        email="kim@example.com",
        billing_line1="1 Main St",
        billing_city="Chicago",
        billing_region="IL",
        billing_postal_code="60601",
    )
    invoice = issued_invoice(customer=customer, amount="1000.00", sales_tax="24.63", number="INV-2001")
    payments = [pay(invoice, "500.00"), pay(invoice, "524.63")]

    export(*payments)

    [qbo_invoice] = qbo_company.entities("Invoice")
    assert Decimal(str(qbo_invoice["TotalAmt"])) != Decimal("1024.63")  # QuickBooks computed its own tax
    assert qbo_payments(qbo_company) == []  # and nothing was posted against it
    for payment in payments:
        payment.refresh_from_db()
        assert payment.export_status == S.ON_HOLD
    item = ExportBatchItem.objects.filter(payment=payments[0]).get()
    assert item.outcome == ExportBatchItem.Outcome.HELD
    assert "FieldSync has $1,024.63" in item.message


def test_partially_paid_invoice_payments_are_skipped_with_their_reason(qbo_company):
    invoice = issued_invoice(amount="300.00", number="INV-1043")
    payment = pay(invoice, "250.00")

    batch = export(payment)

    item = ExportBatchItem.objects.get(batch=batch)
    assert item.outcome == ExportBatchItem.Outcome.SKIPPED
    assert item.message == "Held: INV-1043 still has $50.00 open."
    assert qbo_payments(qbo_company) == []
    payment.refresh_from_db()
    assert payment.export_status == S.NOT_EXPORTED


def test_a_split_payment_links_both_invoices(qbo_company):
    customer = CustomerFactory()
    first = issued_invoice(customer=customer, amount="120.00", number="INV-1044")
    second = issued_invoice(customer=customer, amount="80.00", number="INV-1045")
    payment = billing_services.payment_record(
        customer=customer,
        amount="200.00",
        method="ach",
        received_on=datetime.date(2026, 11, 14),
        reference="ACH-88120",
        applications=[
            billing_services.ApplicationInput(invoice=first, amount="120.00"),
            billing_services.ApplicationInput(invoice=second, amount="80.00"),
        ],
    )
    export(payment)

    [qbo_payment] = qbo_payments(qbo_company)
    linked = {line["LinkedTxn"][0]["TxnId"]: Decimal(str(line["Amount"])) for line in qbo_payment["Line"]}
    invoices = {inv["DocNumber"]: inv for inv in qbo_company.entities("Invoice")}
    assert linked == {invoices["INV-1044"]["Id"]: Decimal("120.00"), invoices["INV-1045"]["Id"]: Decimal("80.00")}
    assert all(Decimal(str(inv["Balance"])) == 0 for inv in invoices.values())
    assert qbo_payment["PaymentRefNum"] == "ACH-88120"


def test_an_overpayment_arrives_as_unapplied_amount(qbo_company):
    invoice = issued_invoice(amount="550.00")
    payment = pay(invoice, "550.00", payment_amount="560.00")
    export(payment)
    [qbo_payment] = qbo_payments(qbo_company)
    assert Decimal(str(qbo_payment["TotalAmt"])) == Decimal("560.00")
    assert Decimal(str(qbo_payment["UnappliedAmt"])) == Decimal("10.00")


def test_a_refund_before_export_sends_the_net_amount(qbo_company):
    invoice = issued_invoice(amount="55.00")
    payment = pay(invoice, "55.00", payment_amount="65.00")
    billing_services.refund_record(
        payment=payment, amount="10.00", reason="Overpaid", refunded_on=datetime.date(2026, 11, 15), method="check"
    )
    export(payment)
    [qbo_payment] = qbo_payments(qbo_company)
    assert Decimal(str(qbo_payment["TotalAmt"])) == Decimal("55.00")
    assert Decimal(str(qbo_payment["UnappliedAmt"])) == Decimal("0")


def test_customer_whose_name_another_party_holds_is_not_merged(qbo_company):
    # Two different John Smiths of ours, and a third one keyed into QuickBooks by hand with another e-mail.
    with_email = CustomerFactory(display_name="John Smith", email="john.smith@example.com", billing_city="Evanston")
    without_email = CustomerFactory(display_name="John Smith", email="", billing_city="Oak Park")
    first = pay(issued_invoice(customer=with_email, amount="100.00"), "100.00")
    second = pay(issued_invoice(customer=without_email, amount="200.00"), "200.00")

    export(first, second)

    names = sorted(c["DisplayName"] for c in qbo_company.entities("Customer"))
    assert names == ["John Smith", "John Smith (Oak Park)"]
    mappings = QuickBooksMapping.objects.filter(kind="customer")
    assert mappings.count() == 2 and len({m.qbo_id for m in mappings}) == 2
    by_customer = {p["CustomerRef"]["value"] for p in qbo_payments(qbo_company)}
    assert len(by_customer) == 2


def test_an_existing_quickbooks_customer_with_the_same_email_is_linked_not_duplicated(qbo_company):
    customer = CustomerFactory(display_name="O'Brien Plumbing Supply", email="ap@obrien.example")
    first = pay(issued_invoice(customer=customer, amount="185.00"), "185.00")
    export(first)
    # A second export of another invoice reuses the link; no second customer.
    second = pay(issued_invoice(customer=customer, amount="420.00"), "420.00")
    export(second)
    assert [c["DisplayName"] for c in qbo_company.entities("Customer")] == ["O'Brien Plumbing Supply"]
    assert len(qbo_payments(qbo_company)) == 2


def test_an_already_exported_payment_is_linked_not_posted_again(qbo_company):
    payment = pay(issued_invoice(amount="100.00"), "100.00")
    export(payment)
    batch = export(payment)
    assert export_batch_counts(batch_id=batch.pk)["linked"] == 1
    assert len(qbo_payments(qbo_company)) == 1


def test_attempt_history_records_each_call(qbo_company):
    payment = pay(issued_invoice(amount="100.00"), "100.00")
    export(payment)
    operations = list(ExportAttempt.objects.filter(payment=payment).values_list("operation", "outcome"))
    assert ("create Payment (batch)", "ok") in operations
    assert ("create Invoice (batch)", "ok") in operations
    assert any(op.startswith("find Customer") for op, _ in operations)
    assert ExportAttempt.objects.filter(payment=payment, operation="create Customer").exclude(request_id="").exists()


def test_an_inventory_or_category_item_with_our_name_is_never_used_a_service_name_is_made(qbo_sandbox, settings, db):
    from .conftest import connect

    company = connect(qbo_sandbox, settings, profile="us-manual-tax", seed="collisions")
    customer = CustomerFactory()
    invoice = billing_services.invoice_issue(
        invoice=billing_services.invoice_create(
            customer=customer,
            number="INV-8001",
            lines=[
                billing_services.LineInput("Water heater", "1450.00"),  # an Inventory item in this company
                billing_services.LineInput("Drain cleaning", "137.50"),  # a Category
                billing_services.LineInput("Pest control", "120.00"),  # an inactive Service item
            ],
        ),
        issued_on=datetime.date(2026, 11, 1),
    )
    export(pay(invoice, "1707.50"))

    items = {i["Id"]: i for i in company.entities("Item")}
    [qbo_invoice] = company.entities("Invoice")
    used = [
        items[line["SalesItemLineDetail"]["ItemRef"]["value"]]
        for line in qbo_invoice["Line"]
        if "SalesItemLineDetail" in line
    ]
    assert [(i["Name"], i["Type"]) for i in used] == [
        ("Water heater (service)", "Service"),
        ("Drain cleaning (service)", "Service"),
        ("Pest control (service)", "Service"),
    ]
    assert Decimal(str(qbo_invoice["Balance"])) == 0
