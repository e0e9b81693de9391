"""Real concurrent transactions on PostgreSQL: SQLite serialises writers, so it cannot prove anything here."""

import datetime
from decimal import Decimal

import pytest

from billing import services
from billing.models import Payment, PaymentApplication
from billing.selectors import invoice_get_with_balances
from fieldsync.exceptions import ApplicationError
from tests.concurrency import run_at_once
from tests.factories import issued_invoice

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_two_payments_recorded_at_once_never_over_apply_an_invoice():
    for _ in range(5):  # a race lost by luck once must not pass: repeat it
        invoice = issued_invoice(amount="100.00")

        def record(invoice=invoice):
            return services.payment_record(
                customer=invoice.customer,
                amount="100.00",
                method=Payment.Method.CARD,
                received_on=datetime.date(2026, 11, 10),
                applications=[services.ApplicationInput(invoice=invoice, amount="100.00")],
            )

        results = run_at_once(record, record)

        created = [r for r in results if isinstance(r, Payment)]
        refused = [r for r in results if isinstance(r, ApplicationError)]
        assert len(created) == 1, results
        assert len(refused) == 1 and refused[0].code == "over_application", results
        assert invoice_get_with_balances(invoice_id=invoice.pk).open_balance == Decimal("0.00")
        assert PaymentApplication.objects.filter(invoice=invoice).count() == 1


def test_two_applications_of_one_payments_credit_at_once_never_exceed_it():
    invoice_a = issued_invoice(amount="100.00")
    invoice_b = issued_invoice(customer=invoice_a.customer, amount="100.00")
    payment = services.payment_record(
        customer=invoice_a.customer, amount="100.00", method="cash", received_on=datetime.date(2026, 11, 10)
    )
    results = run_at_once(
        lambda: services.payment_apply(payment=payment, invoice=invoice_a, amount="80.00"),
        lambda: services.payment_apply(payment=payment, invoice=invoice_b, amount="80.00"),
    )
    assert sum(isinstance(r, PaymentApplication) for r in results) == 1, results
    assert sum(isinstance(r, ApplicationError) for r in results) == 1, results
    assert sum(a.amount for a in PaymentApplication.objects.filter(payment=payment)) == Decimal("80.00")


def test_a_refund_at_the_moment_of_the_claim_is_either_seen_by_the_rule_or_flagged_never_netted_and_posted():
    """The fully-paid check and the claim share one lock: a refund recorded at the same moment either comes first
    (the claim sees the invoice open and leaves the payment) or after (it is handed to QuickBooks, not netted)."""
    outcomes = set()
    for round_ in range(8):
        invoice = issued_invoice(amount="100.00")
        payment = services.payment_record(
            customer=invoice.customer,
            amount="100.00",
            method=Payment.Method.CARD,
            received_on=datetime.date(2026, 11, 10),
            applications=[services.ApplicationInput(invoice=invoice, amount="100.00")],
        )
        services.payment_export_status_transition(payment_id=payment.pk, to_status=Payment.ExportStatus.QUEUED)

        results = run_at_once(
            lambda payment=payment: services.payment_export_claim(payment_ids=[payment.pk]),
            lambda payment=payment: services.refund_record(
                payment=payment,
                amount="40.00",
                kind="reversal",
                reason="Chargeback",
                refunded_on=datetime.date(2026, 11, 20),
                method="card",
            ),
            stagger=0.002 * (round_ % 3),
        )
        claimed, refund = results
        assert not isinstance(claimed, Exception) and not isinstance(refund, Exception), results
        refund.refresh_from_db()
        if claimed:
            assert refund.handling == "quickbooks", "claimed and netted: the refund would count twice"
            outcomes.add("claimed first")
        else:
            assert refund.handling == "netted"
            outcomes.add("refund first")
    assert outcomes  # at least one ordering observed; both are legal


def test_an_invoice_lowered_while_a_payment_is_recorded_never_ends_below_what_is_paid():
    """The edit and the payment both lock the invoice row: whichever comes second sees the other's result, so the
    invoice never totals less than what is paid on it."""
    for _ in range(5):
        invoice = issued_invoice(amount="100.00")
        services.payment_record(
            customer=invoice.customer,
            amount="60.00",
            method=Payment.Method.CASH,
            received_on=datetime.date(2026, 11, 10),
            applications=[services.ApplicationInput(invoice=invoice, amount="60.00")],
        )
        [line] = invoice.lines.all()

        def lower(invoice=invoice, line=line):
            edit = services.LineEdit(line_id=line.pk, service_name="Labor", unit_price="70.00")
            return services.invoice_edit(invoice=invoice, lines=[edit])

        def pay_the_rest(invoice=invoice):
            return services.payment_record(
                customer=invoice.customer,
                amount="40.00",
                method=Payment.Method.CARD,
                received_on=datetime.date(2026, 11, 11),
                applications=[services.ApplicationInput(invoice=invoice, amount="40.00")],
            )

        results = run_at_once(lower, pay_the_rest)

        refused = [r for r in results if isinstance(r, ApplicationError)]
        assert len(refused) == 1 and refused[0].code in ("below_paid", "over_application"), results
        balances = invoice_get_with_balances(invoice_id=invoice.pk)
        assert balances.total >= balances.amount_paid and balances.open_balance >= 0
