import datetime

import pytest

from billing import services
from billing.models import Invoice, Payment, Refund
from billing.selectors import invoice_balances, invoice_with_balances
from tests.factories import CustomerFactory, issued_invoice, pay, split_payment

pytestmark = pytest.mark.django_db


def refund(payment, amount, **kwargs):
    return services.refund_record(
        payment=payment,
        amount=amount,
        reason="Job cancelled",
        refunded_on=datetime.date(2026, 11, 15),
        method=Refund.Method.CHECK,
        **kwargs,
    )


def exported(payment):
    for status in (Payment.ExportStatus.QUEUED, Payment.ExportStatus.EXPORTING, Payment.ExportStatus.EXPORTED):
        payment = services.payment_export_status_transition(
            payment_id=payment.pk, to_status=status, export_reference="145"
        )
    return payment


def test_invoice_balances_reads_what_invoice_with_balances_annotates():
    customer = CustomerFactory()
    issued_invoice(customer=customer, amount="80.00", sales_tax="6.40")  # nothing paid
    pay(issued_invoice(customer=customer, amount="100.00"), "30.00")  # part paid
    pay(issued_invoice(customer=customer, amount="50.00"), "50.00", payment_amount="70.00")  # paid, credit left
    # 31 lines of 1.59: SQLite sums them to 49.290000000000006; both reads round to cents the same way.
    many = services.invoice_create(
        customer=customer,
        number="INV-CENTS",
        sales_tax="0.00",
        lines=[services.LineInput(service_name="Part", unit_price="1.59") for _ in range(31)],
    )
    many = services.invoice_issue(invoice=many, issued_on=datetime.date(2026, 11, 1))
    pay(many, "49.29")
    services.invoice_create(  # a draft
        customer=customer,
        number="INV-DRAFT",
        sales_tax="1.00",
        lines=[services.LineInput(service_name="Labor", unit_price="12.34")],
    )
    reversed_before_export = issued_invoice(customer=customer, amount="100.00")
    refund(pay(reversed_before_export, "100.00"), "40.00")  # netted reversal: reopens
    reversed_after_export = issued_invoice(customer=customer, amount="90.00")
    refund(exported(pay(reversed_after_export, "90.00")), "25.00")  # QuickBooks handling, open manual item
    no_longer_owed = issued_invoice(customer=customer, amount="60.00")
    refund(pay(no_longer_owed, "60.00"), "15.00", kind=Refund.Kind.NO_LONGER_OWED)  # an invoice credit
    first, second = issued_invoice(customer=customer, amount="70.00"), issued_invoice(customer=customer, amount="30.10")
    refund(split_payment((first, "70.00"), (second, "30.10")), "10.05", invoice=second)

    checked = 0
    for expected in invoice_with_balances().order_by("pk"):
        got = invoice_balances(invoice_id=expected.pk)
        for name in ("total", "amount_paid", "credited", "open_balance", "reversal_pending"):
            value = getattr(expected, name)
            assert getattr(got, name) == value, (expected.number, name)
            assert str(getattr(got, name)) == str(value), (expected.number, name)  # the very same Decimal
        checked += 1
    assert checked == Invoice.objects.count() == 10
    assert invoice_balances(invoice_id=reversed_after_export.pk).reversal_pending is True
    assert invoice_balances(invoice_id=reversed_before_export.pk).open_balance == 40
    assert invoice_balances(invoice_id=no_longer_owed.pk).credited == 15


def test_invoice_balances_of_an_unknown_invoice_raises_does_not_exist():
    with pytest.raises(Invoice.DoesNotExist):
        invoice_balances(invoice_id=987654)
