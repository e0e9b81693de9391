"""Editing an invoice after it was issued (billing.services.invoice_edit): lines added, changed and removed, tax and
dates — validated first, never below what is already paid or credited, changing nothing when it refuses."""

import datetime
from decimal import Decimal

import pytest

from billing import services
from billing.models import Invoice
from billing.selectors import invoice_get_with_balances
from fieldsync.exceptions import ApplicationError
from tests.factories import issued_invoice, pay

pytestmark = pytest.mark.django_db
LineEdit = services.LineEdit


def lines_of(invoice: Invoice) -> list[tuple]:
    return list(invoice.lines.values_list("service_name", "quantity", "unit_price", "amount", "taxable"))


def test_lines_are_added_changed_and_removed_in_one_edit_and_the_rate_tax_recomputed():
    rate = services.tax_rate_create(name="Chicago", percentage="10.25")
    invoice = services.invoice_create(
        customer=issued_invoice().customer,
        number="INV-9001",
        tax_rate=rate,
        lines=[services.LineInput("Labor", "100.00"), services.LineInput("Parts", "50.00")],
    )
    services.invoice_issue(invoice=invoice, issued_on=datetime.date(2026, 11, 1))
    labor, parts = invoice.lines.all()

    services.invoice_edit(
        invoice=invoice,
        lines=[
            LineEdit(line_id=labor.pk, service_name="Labor", quantity="1.5", unit_price="10.01"),
            LineEdit(service_name="Permit", unit_price="35.00", taxable=False),
        ],
        due_on=datetime.date(2026, 12, 1),
    )

    invoice = invoice_get_with_balances(invoice_id=invoice.pk)
    assert lines_of(invoice) == [
        ("Labor", Decimal("1.50"), Decimal("10.01"), Decimal("15.02"), True),  # 15.015 rounded half up
        ("Permit", Decimal("1.00"), Decimal("35.00"), Decimal("35.00"), False),
    ]
    assert not invoice.lines.filter(pk=parts.pk).exists()
    assert invoice.lines.filter(pk=labor.pk).exists()  # changed in place: its id kept
    assert invoice.sales_tax == Decimal("1.54")  # 10.25% of the taxable 15.02 only
    assert (invoice.total, invoice.due_on) == (Decimal("51.56"), datetime.date(2026, 12, 1))
    assert invoice.changed_at is not None


def test_raising_a_paid_invoice_reopens_it_and_lowering_it_to_the_paid_amount_settles_it():
    invoice = issued_invoice(amount="100.00")
    pay(invoice, "100.00")
    [line] = invoice.lines.all()

    services.invoice_edit(invoice=invoice, lines=[LineEdit(line_id=line.pk, service_name="Labor", unit_price="120")])
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.OPEN

    services.invoice_edit(invoice=invoice, lines=[LineEdit(line_id=line.pk, service_name="Labor", unit_price="100")])
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID


@pytest.mark.parametrize(
    ("changes", "code", "words"),
    [
        ({"unit_price": "79.99"}, "below_paid", "would total $79.99, less than the $80.00 paid on it"),
        ({"unit_price": "0"}, "below_paid", "less than the $80.00 paid"),
        ({"unit_price": "12.345"}, "invalid_amount", "more than two decimal places"),
        ({"line_id": 999999}, "unknown_line", "has no line 999999"),
    ],
)
def test_a_refused_edit_says_why_and_changes_nothing(changes, code, words):
    invoice = issued_invoice(amount="100.00")
    pay(invoice, "80.00")
    [line] = invoice.lines.all()
    edit = {"line_id": line.pk, "service_name": "Labor", "unit_price": "100.00", **changes}

    with pytest.raises(ApplicationError) as excinfo:
        services.invoice_edit(invoice=invoice, lines=[LineEdit(**edit)], due_on=datetime.date(2026, 12, 9))

    assert excinfo.value.code == code and words in excinfo.value.message
    invoice.refresh_from_db()
    assert lines_of(invoice) == [("Labor", Decimal("1.00"), Decimal("100.00"), Decimal("100.00"), True)]
    assert (invoice.due_on, invoice.changed_at) == (None, None)


def test_credits_count_with_payments_toward_the_least_the_total_may_be():
    invoice = issued_invoice(amount="100.00")
    payment = pay(invoice, "100.00")
    services.refund_record(
        payment=payment,
        amount="30.00",
        reason="Goodwill",
        refunded_on=datetime.date(2026, 11, 20),
        method="check",
        kind="no_longer_owed",
        invoice=invoice,
    )
    [line] = invoice.lines.all()

    with pytest.raises(ApplicationError) as excinfo:
        services.invoice_edit(invoice=invoice, lines=[LineEdit(line_id=line.pk, service_name="Labor", unit_price="99")])

    assert "less than the $70.00 paid and $30.00 credited on it" in excinfo.value.message


def test_dates_never_cross_and_a_void_invoice_never_changes():
    invoice = issued_invoice()
    with pytest.raises(ApplicationError) as excinfo:
        services.invoice_edit(invoice=invoice, due_on=datetime.date(2026, 10, 1))
    assert excinfo.value.code == "invalid_dates"

    services.invoice_void(invoice=invoice)
    with pytest.raises(ApplicationError) as excinfo:
        services.invoice_edit(invoice=invoice, due_on=datetime.date(2026, 12, 1))
    assert excinfo.value.code == "invoice_void"


def test_an_edit_that_changes_nothing_records_nothing(django_capture_on_commit_callbacks):
    invoice = issued_invoice()
    [line] = invoice.lines.all()
    with django_capture_on_commit_callbacks() as callbacks:
        services.invoice_edit(
            invoice=invoice, lines=[LineEdit(line_id=line.pk, service_name="Labor", unit_price="100.00")]
        )
    invoice.refresh_from_db()
    assert invoice.changed_at is None and callbacks == []
