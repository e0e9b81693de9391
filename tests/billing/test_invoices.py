import datetime
from decimal import Decimal

import pytest

from billing import services
from billing.models import Invoice, InvoiceLine
from billing.selectors import invoice_get_with_balances
from fieldsync.exceptions import ApplicationError, ConflictError
from tests.factories import CustomerFactory, JobFactory, issued_invoice, pay

pytestmark = pytest.mark.django_db


def test_invoice_total_is_lines_plus_tax_and_line_amounts_round_half_up():
    customer = CustomerFactory()
    invoice = services.invoice_create(
        customer=customer,
        number="INV-1",
        sales_tax="8.25",
        lines=[
            services.LineInput(service_name="Labor", quantity="1.5", unit_price="95.00"),
            services.LineInput(service_name="Valve", quantity="3", unit_price="0.35"),
            services.LineInput(service_name="Fee", quantity="0.33", unit_price="10.01"),  # 3.3033 -> 3.30
        ],
    )
    assert [line.amount for line in invoice.lines.all()] == [
        Decimal("142.50"),
        Decimal("1.05"),
        Decimal("3.30"),
    ]
    balances = invoice_get_with_balances(invoice_id=invoice.pk)
    assert balances.total == Decimal("155.10")
    assert balances.amount_paid == Decimal("0.00")
    assert balances.open_balance == Decimal("155.10")
    assert invoice.status == Invoice.Status.DRAFT


def test_invoice_create_refuses_another_customers_job_and_creates_nothing():
    job = JobFactory()
    with pytest.raises(ApplicationError) as excinfo:
        services.invoice_create(customer=CustomerFactory(), job=job, number="INV-9")
    assert excinfo.value.code == "wrong_customer"
    assert not Invoice.objects.exists()


def test_invoice_create_refuses_a_foreign_currency():
    with pytest.raises(ApplicationError) as excinfo:
        services.invoice_create(customer=CustomerFactory(), number="INV-9", currency="EUR")
    assert excinfo.value.code == "currency_mismatch"
    assert not Invoice.objects.exists()


def test_invoice_create_with_a_bad_line_creates_nothing():
    with pytest.raises(ApplicationError):
        services.invoice_create(
            customer=CustomerFactory(),
            number="INV-9",
            lines=[
                services.LineInput(service_name="Labor", unit_price="10.00"),
                services.LineInput(service_name="Parts", unit_price="10.001"),
            ],
        )
    assert not Invoice.objects.exists()
    assert not InvoiceLine.objects.exists()


def test_invoice_numbers_are_unique():
    customer = CustomerFactory()
    services.invoice_create(customer=customer, number="INV-7")
    with pytest.raises(ApplicationError) as excinfo:
        services.invoice_create(customer=customer, number="INV-7")
    assert "number" in excinfo.value.extra


def test_invoice_number_longer_than_quickbooks_allows_is_refused():
    with pytest.raises(ApplicationError) as excinfo:
        services.invoice_create(customer=CustomerFactory(), number="INV-" + "9" * 20)
    assert "number" in excinfo.value.extra


def test_due_date_before_issue_date_is_refused():
    with pytest.raises(ApplicationError) as excinfo:
        services.invoice_create(
            customer=CustomerFactory(),
            number="INV-1",
            issued_on=datetime.date(2026, 11, 10),
            due_on=datetime.date(2026, 11, 1),
        )
    assert excinfo.value.code == "invalid_dates"


def test_issue_moves_draft_to_open_and_refuses_empty_or_repeated_issue():
    customer = CustomerFactory()
    empty = services.invoice_create(customer=customer, number="INV-E")
    with pytest.raises(ApplicationError) as excinfo:
        services.invoice_issue(invoice=empty)
    assert excinfo.value.code == "invoice_empty"
    empty.refresh_from_db()
    assert empty.status == Invoice.Status.DRAFT

    invoice = issued_invoice(customer=customer)
    assert invoice.status == Invoice.Status.OPEN
    with pytest.raises(ConflictError):
        services.invoice_issue(invoice=invoice)


def test_lines_of_an_issued_invoice_cannot_change():
    invoice = issued_invoice()
    with pytest.raises(ApplicationError) as excinfo:
        services.invoice_line_add(invoice=invoice, service_name="Extra", unit_price="5.00")
    assert excinfo.value.code == "invoice_not_draft"
    assert invoice.lines.count() == 1


def test_void_an_unpaid_invoice():
    invoice = services.invoice_void(invoice=issued_invoice())
    assert invoice.status == Invoice.Status.VOID
    assert invoice.voided_at is not None


def test_void_refuses_an_invoice_with_payments_and_changes_nothing():
    invoice = issued_invoice(amount="100.00")
    pay(invoice, "40.00")
    with pytest.raises(ApplicationError) as excinfo:
        services.invoice_void(invoice=invoice)
    assert excinfo.value.code == "invoice_has_payments"
    assert "$40.00 paid" in excinfo.value.message
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.OPEN


def test_void_twice_is_a_conflict():
    invoice = services.invoice_void(invoice=issued_invoice())
    with pytest.raises(ConflictError):
        services.invoice_void(invoice=invoice)
