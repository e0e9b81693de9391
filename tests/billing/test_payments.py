import datetime
from decimal import Decimal

import pytest

from billing import services
from billing.models import Invoice, Payment, PaymentApplication
from billing.selectors import invoice_get_with_balances, payment_with_amounts
from fieldsync.exceptions import ApplicationError, ConflictError
from tests.factories import CustomerFactory, InvoiceFactory, PaymentFactory, issued_invoice, pay

pytestmark = pytest.mark.django_db


def record(customer, amount, *applications, **kwargs):
    return services.payment_record(
        customer=customer,
        amount=amount,
        method=kwargs.pop("method", Payment.Method.CARD),
        received_on=datetime.date(2026, 11, 10),
        applications=[services.ApplicationInput(invoice=inv, amount=value) for inv, value in applications],
        **kwargs,
    )


def amounts(payment):
    return payment_with_amounts(Payment.objects.filter(pk=payment.pk)).get()


def test_paying_the_balance_marks_the_invoice_paid():
    invoice = issued_invoice(amount="100.00", sales_tax="8.00")
    pay(invoice, "50.00")
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.OPEN
    pay(invoice, "58.00")
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID
    assert invoice_get_with_balances(invoice_id=invoice.pk).open_balance == Decimal("0.00")


def test_split_payment_across_two_invoices_of_the_same_customer():
    customer = CustomerFactory()
    first, second = (
        issued_invoice(customer=customer, amount="60.00"),
        issued_invoice(customer=customer, amount="40.00"),
    )
    payment = record(customer, "100.00", (first, "60.00"), (second, "40.00"))
    assert sorted(a.invoice.number for a in payment.applications.all()) == sorted([first.number, second.number])
    assert amounts(payment).unapplied_credit == Decimal("0.00")
    assert Invoice.objects.filter(status=Invoice.Status.PAID).count() == 2


def test_what_is_not_applied_stays_as_unapplied_credit():
    invoice = issued_invoice(amount="55.00")
    payment = pay(invoice, "55.00", payment_amount="65.00")
    assert amounts(payment).unapplied_credit == Decimal("10.00")
    assert amounts(payment).amount_applied == Decimal("55.00")


def test_applying_more_than_the_open_balance_is_refused_and_nothing_is_recorded():
    invoice = issued_invoice(amount="100.00")
    pay(invoice, "70.00")
    with pytest.raises(ApplicationError) as excinfo:
        pay(invoice, "50.00")
    assert excinfo.value.code == "over_application"
    assert "$50.00 is more than the $30.00 open" in excinfo.value.message
    assert Payment.objects.count() == 1


def test_applications_larger_than_the_payment_are_refused():
    customer = CustomerFactory()
    first, second = issued_invoice(customer=customer), issued_invoice(customer=customer)
    with pytest.raises(ApplicationError) as excinfo:
        record(customer, "100.00", (first, "60.00"), (second, "60.00"))
    assert excinfo.value.code == "over_application"
    assert not Payment.objects.exists()


def test_applying_to_another_customers_invoice_is_refused():
    invoice = issued_invoice()
    with pytest.raises(ApplicationError) as excinfo:
        record(CustomerFactory(), "100.00", (invoice, "100.00"))
    assert excinfo.value.code == "wrong_customer"
    assert not Payment.objects.exists()


@pytest.mark.parametrize("status", [Invoice.Status.DRAFT, Invoice.Status.VOID])
def test_applying_to_a_draft_or_void_invoice_is_refused(status):
    invoice = InvoiceFactory(status=status)
    with pytest.raises(ApplicationError) as excinfo:
        record(invoice.customer, "10.00", (invoice, "10.00"))
    assert excinfo.value.code == "invoice_not_open"
    assert not Payment.objects.exists()


@pytest.mark.parametrize(
    ("amount", "code"), [("0", "invalid_amount"), ("-5", "invalid_amount"), ("10.001", "invalid_amount")]
)
def test_bad_payment_amounts_are_refused(amount, code):
    with pytest.raises(ApplicationError) as excinfo:
        record(CustomerFactory(), amount)
    assert excinfo.value.code == code
    assert not Payment.objects.exists()


def test_float_amount_is_refused():
    with pytest.raises(ApplicationError) as excinfo:
        record(CustomerFactory(), 10.5)
    assert excinfo.value.extra == {"amount": "float_not_allowed"}


def test_unknown_method_and_foreign_currency_are_refused():
    with pytest.raises(ApplicationError) as excinfo:
        record(CustomerFactory(), "10.00", method="bitcoin")
    assert excinfo.value.code == "invalid_method"
    with pytest.raises(ApplicationError) as excinfo:
        record(CustomerFactory(), "10.00", currency="EUR")
    assert excinfo.value.code == "currency_mismatch"
    assert not Payment.objects.exists()


def test_the_same_invoice_twice_in_one_payment_is_refused():
    invoice = issued_invoice()
    with pytest.raises(ApplicationError) as excinfo:
        record(invoice.customer, "20.00", (invoice, "10.00"), (invoice, "10.00"))
    assert excinfo.value.code == "duplicate_invoice"


def test_payment_apply_uses_unapplied_credit_and_merges_into_the_same_invoice():
    invoice = issued_invoice(amount="100.00")
    payment = PaymentFactory(customer=invoice.customer, amount=Decimal("100.00"))
    services.payment_apply(payment=payment, invoice=invoice, amount="30.00")
    services.payment_apply(payment=payment, invoice=invoice, amount="20.00")
    application = PaymentApplication.objects.get(payment=payment)
    assert application.amount == Decimal("50.00")
    assert amounts(payment).unapplied_credit == Decimal("50.00")
    with pytest.raises(ApplicationError) as excinfo:
        services.payment_apply(payment=payment, invoice=issued_invoice(customer=invoice.customer), amount="60.00")
    assert "of this payment left to apply" in excinfo.value.message


@pytest.mark.parametrize(
    "status", [Payment.ExportStatus.QUEUED, Payment.ExportStatus.EXPORTING, Payment.ExportStatus.EXPORTED]
)
def test_a_payment_on_its_way_to_quickbooks_cannot_be_reapplied(status):
    invoice = issued_invoice()
    payment = PaymentFactory(customer=invoice.customer, export_status=status)
    with pytest.raises(ConflictError) as excinfo:
        services.payment_apply(payment=payment, invoice=invoice, amount="10.00")
    assert excinfo.value.code == "payment_in_export"
    assert not PaymentApplication.objects.exists()


def test_refusal_details_carry_amounts_with_two_places():
    invoice = issued_invoice(amount="100.00")
    pay(invoice, "60.00")
    with pytest.raises(ApplicationError) as excinfo:
        pay(invoice, "50.00")
    assert excinfo.value.extra["open_balance"] == "40.00"
