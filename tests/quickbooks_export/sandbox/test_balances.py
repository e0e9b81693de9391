"""Invoice totals and balances, payment application, UnappliedAmt, void and delete."""

from decimal import Decimal

import pytest
from quickbooks.exceptions import ObjectNotFoundException, QuickbooksException
from quickbooks.objects.customer import Customer
from quickbooks.objects.invoice import Invoice
from quickbooks.objects.payment import Payment

from .clients import make_customer, make_invoice, make_item, make_payment


@pytest.fixture
def books(qbo):
    """A customer with one 100.00 invoice."""
    customer = make_customer(qbo.qb, "Balance Co")
    item = make_item(qbo.qb)
    invoice = make_invoice(qbo.qb, customer, item, "100")
    return qbo, customer, item, invoice


def _balance(qbo, invoice) -> Decimal:
    return Invoice.get(invoice.Id, qb=qbo.qb).Balance


def test_invoice_total_is_its_sales_lines_and_a_bare_total_tax_is_not_honoured(qbo):
    # QuickBooks computes tax from tax codes; a TotalTax sent without TxnTaxCodeRef is ignored
    # (docs/quickbooks_sales_tax.md). Before company profiles the sandbox took TotalTax as sent.
    customer, item = make_customer(qbo.qb, "Total Co"), make_item(qbo.qb)

    invoice = make_invoice(qbo.qb, customer, item, "100.00", "50.25", tax="12.06")

    assert invoice.TotalAmt == Decimal("150.25")
    assert invoice.TxnTaxDetail.TotalTax == Decimal("0")
    assert invoice.Balance == Decimal("150.25")
    assert invoice.Line[-1].Amount == Decimal("150.25")  # the SubTotalLineDetail line


def test_payment_reduces_invoice_balance_and_links_both_ways(books):
    qbo, customer, _, invoice = books

    payment = make_payment(qbo.qb, customer, "65", {invoice.Id: "55"})

    assert payment.UnappliedAmt == Decimal("10")
    assert payment.Line[0].LinkedTxn[0].TxnId == invoice.Id
    read = Invoice.get(invoice.Id, qb=qbo.qb)
    assert read.Balance == Decimal("45")
    assert [(link.TxnId, link.TxnType) for link in read.LinkedTxn] == [(payment.Id, "Payment")]
    assert read.SyncToken == "1"  # applying a payment changed the invoice
    assert Customer.get(customer.Id, qb=qbo.qb).Balance == Decimal("35")  # 45 open - 10 credit


def test_payment_without_lines_is_all_unapplied_credit(books):
    qbo, customer, _, invoice = books

    payment = make_payment(qbo.qb, customer, "40")

    assert payment.UnappliedAmt == Decimal("40")
    assert _balance(qbo, invoice) == Decimal("100")


def test_void_payment_zeroes_it_and_restores_the_invoice_balance(books):
    qbo, customer, _, invoice = books
    payment = make_payment(qbo.qb, customer, "60", {invoice.Id: "60"})

    payment.void(qb=qbo.qb)

    voided = Payment.get(payment.Id, qb=qbo.qb)
    assert (voided.TotalAmt, voided.UnappliedAmt, voided.Line) == (0, 0, [])
    assert voided.PrivateNote.startswith("Voided")
    assert _balance(qbo, invoice) == Decimal("100")
    assert Invoice.get(invoice.Id, qb=qbo.qb).LinkedTxn == []


def test_void_with_a_stale_sync_token_is_5010(books):
    qbo, customer, _, invoice = books
    payment = make_payment(qbo.qb, customer, "60", {invoice.Id: "60"})
    payment.PrivateNote = "edited"
    payment.save(qb=qbo.qb)  # SyncToken moves to 1; the local object still says 0

    with pytest.raises(QuickbooksException) as error:
        payment.void(qb=qbo.qb)

    assert error.value.error_code == 5010
    assert _balance(qbo, invoice) == Decimal("40")


def test_delete_payment_restores_the_invoice_balance(books):
    qbo, customer, _, invoice = books
    payment = make_payment(qbo.qb, customer, "60", {invoice.Id: "60"})

    answer = payment.delete(qb=qbo.qb)

    assert answer["Payment"] == {"status": "Deleted", "domain": "QBO", "Id": payment.Id}
    assert _balance(qbo, invoice) == Decimal("100")
    with pytest.raises(ObjectNotFoundException):
        Payment.get(payment.Id, qb=qbo.qb)


def test_updating_a_payment_moves_the_invoice_balance(books):
    qbo, customer, _, invoice = books
    payment = make_payment(qbo.qb, customer, "60", {invoice.Id: "60"})
    payment = Payment.get(payment.Id, qb=qbo.qb)
    payment.TotalAmt = Decimal("80")
    payment.Line[0].Amount = Decimal("75")

    updated = payment.save(qb=qbo.qb)

    assert updated.UnappliedAmt == Decimal("5")
    assert _balance(qbo, invoice) == Decimal("25")


def test_payment_line_larger_than_the_open_balance_is_6000(books):
    qbo, customer, _, invoice = books
    make_payment(qbo.qb, customer, "60", {invoice.Id: "60"})

    with pytest.raises(QuickbooksException) as error:
        make_payment(qbo.qb, customer, "50", {invoice.Id: "50"})

    assert error.value.error_code == 6000
    assert _balance(qbo, invoice) == Decimal("40")


def test_paying_the_exact_open_balance_closes_the_invoice(books):
    qbo, customer, _, invoice = books
    make_payment(qbo.qb, customer, "60", {invoice.Id: "60"})

    make_payment(qbo.qb, customer, "40", {invoice.Id: "40"})

    assert _balance(qbo, invoice) == 0


def test_payment_applied_to_another_customers_invoice_is_6000(books):
    qbo, _, _, invoice = books
    other = make_customer(qbo.qb, "Other Co")

    with pytest.raises(QuickbooksException) as error:
        make_payment(qbo.qb, other, "10", {invoice.Id: "10"})

    assert error.value.error_code == 6000


def test_applying_more_than_the_payment_total_is_6000(books):
    qbo, customer, _, invoice = books

    with pytest.raises(QuickbooksException) as error:
        make_payment(qbo.qb, customer, "50", {invoice.Id: "55"})

    assert error.value.error_code == 6000
    assert _balance(qbo, invoice) == Decimal("100")


def test_invoice_with_payments_cannot_be_deleted_until_they_are_removed(books):
    qbo, customer, _, invoice = books
    payment = make_payment(qbo.qb, customer, "10", {invoice.Id: "10"})
    invoice = Invoice.get(invoice.Id, qb=qbo.qb)

    with pytest.raises(QuickbooksException) as error:
        invoice.delete(qb=qbo.qb)
    assert error.value.error_code == 6000

    payment.delete(qb=qbo.qb)
    invoice.SyncToken = Invoice.get(invoice.Id, qb=qbo.qb).SyncToken
    assert invoice.delete(qb=qbo.qb)["Invoice"]["status"] == "Deleted"


def test_voided_invoice_has_zero_total_and_balance(books):
    qbo, _, _, invoice = books

    voided = invoice.void(qb=qbo.qb)["Invoice"]

    assert (voided["TotalAmt"], voided["Balance"]) == (0, 0)
    assert voided["PrivateNote"] == "Voided"


def test_invoice_update_keeps_the_applied_payments(books):
    qbo, customer, item, invoice = books
    make_payment(qbo.qb, customer, "30", {invoice.Id: "30"})
    invoice = Invoice.get(invoice.Id, qb=qbo.qb)
    invoice.Line[0].Amount = Decimal("120")

    updated = invoice.save(qb=qbo.qb)

    assert (updated.TotalAmt, updated.Balance) == (Decimal("120"), Decimal("90"))
    assert Customer.get(customer.Id, qb=qbo.qb).Balance == Decimal("90")
