"""RefundReceipt (docs in quickbooks_export/sandbox/refunds.py): QuickBooks computes its total, it is settled at once,
and it changes no invoice, payment or customer balance."""

from decimal import Decimal

import pytest
from quickbooks.exceptions import QuickbooksException
from quickbooks.objects.customer import Customer
from quickbooks.objects.detailline import SalesItemLine, SalesItemLineDetail
from quickbooks.objects.invoice import Invoice
from quickbooks.objects.refundreceipt import RefundReceipt

from .clients import make_customer, make_invoice, make_item, make_payment, ref

CHECKING = "1"  # seeded: Checking 1, Undeposited Funds 2, A/R 3, Services 4


def receipt(customer_id: str, item_id: str, amount: str, *, account: str | None = CHECKING) -> RefundReceipt:
    refund = RefundReceipt()
    refund.CustomerRef = ref(customer_id)
    if account:
        refund.DepositToAccountRef = ref(account)
    line = SalesItemLine()
    line.Amount = Decimal(amount)
    line.SalesItemLineDetail = SalesItemLineDetail()
    line.SalesItemLineDetail.ItemRef = ref(item_id)
    refund.Line.append(line)
    refund.TotalAmt = Decimal("999.00")  # read-only: QuickBooks computes it
    return refund


def test_a_refund_receipt_totals_its_lines_is_settled_and_leaves_the_paid_invoice_paid(qbo):
    customer, item = make_customer(qbo.qb, "Refund Co"), make_item(qbo.qb)
    invoice = make_invoice(qbo.qb, customer, item, "550.00")
    make_payment(qbo.qb, customer, "550.00", {invoice.Id: "550.00"})

    saved = receipt(customer.Id, item.Id, "50.00").save(qb=qbo.qb)

    assert saved.TotalAmt == Decimal("50.00") and saved.Balance == Decimal("0")
    assert saved.DepositToAccountRef.value == CHECKING
    assert Invoice.get(invoice.Id, qb=qbo.qb).Balance == Decimal("0")  # still paid
    assert Customer.get(customer.Id, qb=qbo.qb).Balance == Decimal("0")  # A/R untouched


@pytest.mark.parametrize("account, code", [(None, "2020"), ("3", "2010")])
def test_a_refund_receipt_needs_an_account_to_refund_from(qbo, account, code):
    customer, item = make_customer(qbo.qb, "Refund Co"), make_item(qbo.qb)
    with pytest.raises(QuickbooksException) as excinfo:
        receipt(customer.Id, item.Id, "50.00", account=account).save(qb=qbo.qb)
    assert str(excinfo.value.error_code) == code
