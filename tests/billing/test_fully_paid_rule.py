import datetime

import pytest

from billing import services
from billing.models import Invoice, Payment
from billing.selectors import (
    payment_export_readiness,
    payment_export_readiness_map,
    payment_filter_exportable,
    payment_filter_held,
    payment_ids_with_invoice_partners,
)
from tests.factories import (
    CustomerFactory,
    InvoiceFactory,
    PaymentApplicationFactory,
    PaymentFactory,
    issued_invoice,
    pay,
)

pytestmark = pytest.mark.django_db


def test_deposit_and_partial_payments_are_held_until_the_invoice_is_paid_in_full():
    invoice = issued_invoice(amount="1000.00", number="INV-1042")
    deposit = pay(invoice, "250.00")
    assert payment_export_readiness(payment_id=deposit.pk).held_reason == "Held: INV-1042 still has $750.00 open."

    partial = pay(invoice, "700.00")
    for payment in (deposit, partial):
        readiness = payment_export_readiness(payment_id=payment.pk)
        assert not readiness.exportable
        assert readiness.held_reason == "Held: INV-1042 still has $50.00 open."

    final = pay(invoice, "50.00")
    for payment in (deposit, partial, final):
        readiness = payment_export_readiness(payment_id=payment.pk)
        assert readiness.exportable
        assert readiness.held_reason == ""
    assert payment_ids_with_invoice_partners(payment_ids=[final.pk]) == sorted([deposit.pk, partial.pk, final.pk])


def test_a_split_payment_is_held_while_any_of_its_invoices_is_open():
    customer = CustomerFactory()
    first = issued_invoice(customer=customer, amount="60.00", number="INV-1")
    second = issued_invoice(customer=customer, amount="90.00", number="INV-2")
    payment = services.payment_record(
        customer=customer,
        amount="100.00",
        method=Payment.Method.CARD,
        received_on=datetime.date(2026, 11, 1),
        applications=[
            services.ApplicationInput(invoice=first, amount="60.00"),
            services.ApplicationInput(invoice=second, amount="40.00"),
        ],
    )
    assert payment_export_readiness(payment_id=payment.pk).held_reason == "Held: INV-2 still has $50.00 open."
    pay(second, "50.00")
    assert payment_export_readiness(payment_id=payment.pk).exportable


def test_a_payment_applied_to_nothing_is_held_with_a_reason():
    payment = PaymentFactory()
    readiness = payment_export_readiness(payment_id=payment.pk)
    assert not readiness.exportable
    assert "not applied to any invoice" in readiness.held_reason


def test_draft_and_void_invoices_hold_their_payments_whatever_the_balance():
    customer = CustomerFactory()
    draft = InvoiceFactory(customer=customer, number="INV-D", status=Invoice.Status.DRAFT)
    void = InvoiceFactory(customer=customer, number="INV-V", status=Invoice.Status.VOID)
    payment = PaymentApplicationFactory(payment__customer=customer, invoice=draft).payment
    PaymentApplicationFactory(payment=payment, invoice=void)
    assert payment_export_readiness(payment_id=payment.pk).held_reason == (
        "Held: INV-D is still a draft; issue it first; INV-V is void."
    )


def test_overpaid_payment_is_exportable_once_its_invoice_is_paid():
    invoice = issued_invoice(amount="55.00")
    payment = pay(invoice, "55.00", payment_amount="65.00")
    assert payment_export_readiness(payment_id=payment.pk).exportable


def test_readiness_for_many_payments_takes_one_query(django_assert_num_queries):
    payments = [pay(issued_invoice(), "100.00") for _ in range(5)] + [pay(issued_invoice(), "10.00")]
    with django_assert_num_queries(1):
        readiness = payment_export_readiness_map(payment_ids=[p.pk for p in payments])
    assert [readiness[p.pk].exportable for p in payments] == [True] * 5 + [False]


def test_sql_filters_and_python_rule_agree_on_every_kind_of_payment():
    """The rule is written once as SQL (for lists) and once as Python (for reasons): they must never disagree."""
    customer = CustomerFactory()
    paid = issued_invoice(customer=customer, amount="100.00")
    partly = issued_invoice(customer=customer, amount="100.00")
    refunded = issued_invoice(customer=customer, amount="80.00")
    pay(paid, "60.00"), pay(paid, "40.00"), pay(partly, "30.00")
    overpaid = pay(issued_invoice(customer=customer, amount="10.00"), "10.00", payment_amount="15.00")
    to_refund = pay(refunded, "80.00")
    services.refund_record(
        payment=to_refund,
        amount="1.00",
        reason="Goodwill",
        refunded_on=datetime.date(2026, 11, 2),
        method="cash",
    )
    PaymentFactory(customer=customer)
    PaymentApplicationFactory(payment__customer=customer, invoice__status=Invoice.Status.VOID)

    all_payments = Payment.objects.all()
    readiness = payment_export_readiness_map(payment_ids=all_payments.values_list("pk", flat=True))
    by_python = {pk for pk, r in readiness.items() if r.exportable}
    by_sql = set(payment_filter_exportable(all_payments).values_list("pk", flat=True))
    held_by_sql = set(payment_filter_held(all_payments).values_list("pk", flat=True))

    assert by_python == by_sql
    assert held_by_sql == set(readiness) - by_sql
    assert overpaid.pk in by_sql and to_refund.pk not in by_sql
    assert len(by_sql) == 3


def test_invoice_partners_follow_split_payments_across_invoices():
    customer = CustomerFactory()
    first = issued_invoice(customer=customer, amount="100.00")
    second = issued_invoice(customer=customer, amount="100.00")
    on_first = pay(first, "50.00")
    split = services.payment_record(
        customer=customer,
        amount="100.00",
        method=Payment.Method.CARD,
        received_on=datetime.date(2026, 11, 1),
        applications=[
            services.ApplicationInput(invoice=first, amount="50.00"),
            services.ApplicationInput(invoice=second, amount="50.00"),
        ],
    )
    on_second = pay(second, "50.00")
    unrelated = pay(issued_invoice(customer=customer), "100.00")
    assert payment_ids_with_invoice_partners(payment_ids=[on_first.pk]) == [on_first.pk, split.pk, on_second.pk]
    assert unrelated.pk not in payment_ids_with_invoice_partners(payment_ids=[on_second.pk])
