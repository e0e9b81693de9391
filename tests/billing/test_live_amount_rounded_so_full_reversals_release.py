"""Review: on SQLite the fully-paid rule computes an application's live amount (amount - netted reversals) without
rounding, in binary floating point: 30.80 - (10.10 + 20.70) = 3.55e-15 > 0, so an application reversed in full still
holds the payment, while the mapper (Decimal) drops it."""

import datetime

import pytest

from billing import services
from billing.models import Payment
from billing.selectors import payment_export_readiness, payment_filter_exportable
from tests.factories import CustomerFactory, issued_invoice

pytestmark = pytest.mark.django_db


def test_sql_and_python_rule_agree_when_reversals_add_up_to_the_application():
    customer = CustomerFactory()
    inv_a = issued_invoice(customer=customer, amount="30.80")
    inv_b = issued_invoice(customer=customer, amount="50.00")
    payment = services.payment_record(
        customer=customer,
        amount="80.80",
        method=Payment.Method.CHECK,
        received_on=datetime.date(2026, 11, 10),
        applications=[
            services.ApplicationInput(invoice=inv_a, amount="30.80"),
            services.ApplicationInput(invoice=inv_b, amount="50.00"),
        ],
    )
    for amount in (
        "10.10",
        "20.70",
    ):  # (10.00, 20.80 passes) the INV-A part reversed in full, in two refunds, before export (netted)
        services.refund_record(
            payment=payment,
            amount=amount,
            reason="bounced",
            refunded_on=datetime.date(2026, 11, 11),
            method="check",
            kind="reversal",
            invoice=inv_a,
        )
    services.invoice_void(invoice=inv_a)  # issue 10's case: the INV-A part refunded and INV-A voided
    # What QuickBooks would receive drops INV-A (Decimal arithmetic: 30.80 - 10.10 - 20.70 == 0) ...
    from billing.selectors import payments_for_export
    from quickbooks_export.mappers import payment_net_applications

    (loaded,) = payments_for_export(payment_ids=[payment.pk])
    assert [inv.number for inv, _ in payment_net_applications(loaded)] == [inv_b.number]
    # ... so the rule must not hold the payment on INV-A (issue 10: "a fully refunded application holds a payment
    # forever"). On SQLite both twins see live_amount = 3.55e-15 and hold it: "Held: INV-A is void" for ever.
    readiness = payment_export_readiness(payment_id=payment.pk)
    assert readiness.exportable, readiness.held_reason
    assert payment_filter_exportable(Payment.objects.filter(pk=payment.pk)).exists()
