"""Review: a split payment held because ONE of its invoices differs in QuickBooks does not hold the OTHER invoice:
that invoice's other payments are posted, leaving it in QuickBooks with an open balance FieldSync says is paid and
without a hold (issue 9's goal: Balance 0, or nothing posted and the invoice held)."""

import datetime
from decimal import Decimal

import pytest

from billing import services as billing_services
from billing.models import Payment
from quickbooks_export import holds
from quickbooks_export.models import ExportBatchItem, InvoiceExportHold, QuickBooksMapping
from quickbooks_export.services import export_all_exportable_start
from tests.factories import pay, split_payment

from .conftest import drain
from .test_books_match import fix_in_quickbooks, inv_1041, invoice_in_qbo, payments_against, short_invoice_in_quickbooks

pytestmark = pytest.mark.django_db
S = Payment.ExportStatus


def test_a_split_payment_held_on_one_invoice_leaves_no_partly_paid_other_invoice(qbo_company, admin_user):
    invoice, payments = inv_1041()  # INV-1041 mapped to a short ($1,905.00) QuickBooks invoice: will be held
    client, row = short_invoice_in_quickbooks(invoice, mapped=True)
    # Re-arrange: the $524.63 becomes part of a split payment that also pays half of INV-2000.
    other = billing_services.invoice_issue(
        invoice=billing_services.invoice_create(
            customer=invoice.customer,
            number="INV-2000",
            lines=[billing_services.LineInput(service_name="Labor", unit_price="200.00")],
        ),
        issued_on=datetime.date(2026, 11, 1),
    )
    billing_services.refund_record(
        payment=payments[2],
        amount="524.63",
        reason="re-entered as split",
        refunded_on=datetime.date(2026, 11, 10),
        method="check",
        kind="reversal",
    )
    split = split_payment((invoice, "524.63"), (other, "100.00"))
    other_half = pay(other, "100.00")

    drain(export_all_exportable_start(source="command").realm_id)

    split.refresh_from_db()
    other_half.refresh_from_db()
    assert split.export_status == S.ON_HOLD  # held by INV-1041
    other_qbo = QuickBooksMapping.objects.filter(kind="invoice", local_key=str(other.pk)).first()
    if other_qbo is not None and other_half.export_status == S.EXPORTED:
        balance = Decimal(str(invoice_in_qbo(qbo_company, other_qbo.qbo_id)["Balance"]))
        held = InvoiceExportHold.objects.filter(invoice=other, state="open").exists()
        assert balance == 0 or held, (
            f"INV-2000 is paid in FieldSync, in QuickBooks it has {balance} open and no hold "
            f"(its other payment was posted while the split payment is held by INV-1041)"
        )
    # What now holds: INV-2000's other payment waited (not posted, back to "not exported"), naming INV-1041.
    assert other_half.export_status == S.NOT_EXPORTED
    item = ExportBatchItem.objects.filter(payment=other_half).latest("id")
    assert item.outcome == ExportBatchItem.Outcome.SKIPPED
    assert item.message.startswith("Waiting for INV-1041:") and "INV-2000 partly paid" in item.message
    if other_qbo is not None:
        assert payments_against(qbo_company, other_qbo.qbo_id) == []
    # Exporting it alone later still waits: the split payment is on hold.
    drain(export_all_exportable_start(source="command").realm_id)
    other_half.refresh_from_db()
    assert other_half.export_status == S.NOT_EXPORTED

    # INV-1041 fixed in QuickBooks and checked again: the split payment goes with INV-2000's other payment, and both
    # invoices end at Balance 0 in QuickBooks.
    fix_in_quickbooks(client, row["Id"], add="119.63")
    hold = InvoiceExportHold.objects.get(invoice=invoice, state="open")
    drain(holds.invoice_hold_check_again(hold_id=hold.pk, user=admin_user).realm_id)
    split.refresh_from_db()
    other_half.refresh_from_db()
    assert (split.export_status, other_half.export_status) == (S.EXPORTED, S.EXPORTED)
    other_qbo = QuickBooksMapping.objects.get(kind="invoice", local_key=str(other.pk))
    assert Decimal(str(invoice_in_qbo(qbo_company, other_qbo.qbo_id)["Balance"])) == 0
    assert Decimal(str(invoice_in_qbo(qbo_company, row["Id"])["Balance"])) == 0
