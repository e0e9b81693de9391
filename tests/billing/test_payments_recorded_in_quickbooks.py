"""billing.payment_record_from_quickbooks: a payment keyed in QuickBooks, recorded in FieldSync as such."""

import datetime

import pytest
from django.db import IntegrityError, transaction

from billing import services
from billing.models import Invoice, ManualHandlingItem, Payment
from billing.selectors import payment_export_readiness_map, payment_filter_exportable, payment_filter_held
from fieldsync.exceptions import ApplicationError
from tests.factories import issued_invoice, pay

pytestmark = pytest.mark.django_db
S = Payment.ExportStatus


def from_quickbooks(invoice: Invoice, amount: str, **kwargs) -> Payment:
    return services.payment_record_from_quickbooks(
        customer=invoice.customer,
        amount=amount,
        method="check",
        received_on=datetime.date(2026, 12, 1),
        quickbooks_id="77",
        applications=[services.ApplicationInput(invoice=invoice, amount=amount)],
        **kwargs,
    )


def test_it_is_recorded_in_quickbooks_from_the_start_and_never_moves():
    invoice = issued_invoice(amount="100.00")

    payment = from_quickbooks(invoice, "100.00")

    assert (payment.origin, payment.export_status, payment.export_reference) == ("quickbooks", S.IN_QUICKBOOKS, "77")
    assert payment.export_transitions.get().note.startswith("Recorded in QuickBooks (payment 77)")
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID
    for to_status in (S.QUEUED, S.NOT_EXPORTED, S.EXCLUDED, S.EXPORTED_MANUALLY):
        with pytest.raises(services.IllegalExportTransition):
            services.payment_export_status_transition(payment_id=payment.pk, to_status=to_status)
    with pytest.raises(services.IllegalExportTransition):
        services.payment_export_undone(payment_id=payment.pk, note="")


@pytest.mark.parametrize(
    ("setup", "code"),
    [
        (lambda invoice: pay(invoice, "100.00"), "over_application"),
        (lambda invoice: services.invoice_void(invoice=invoice), "invoice_not_open"),
    ],
)
def test_it_is_refused_and_changes_nothing_when_it_does_not_fit(setup, code):
    invoice = issued_invoice(amount="100.00")
    setup(invoice)
    before = Payment.objects.count()

    with pytest.raises(ApplicationError) as refused:
        from_quickbooks(invoice, "100.00")

    assert refused.value.code == code
    assert Payment.objects.count() == before


def test_another_currency_is_refused():
    invoice = issued_invoice(amount="100.00")
    with pytest.raises(ApplicationError) as refused:
        from_quickbooks(invoice, "100.00", currency="CAD")
    assert refused.value.code == "currency_mismatch"
    assert not Payment.objects.exists()


def test_the_fully_paid_rule_counts_it_in_both_twins_so_its_fieldsync_partner_may_go():
    invoice = issued_invoice(amount="100.00")
    ours = pay(invoice, "60.00")
    theirs = from_quickbooks(invoice, "40.00")

    payments = Payment.objects.all()
    readiness = payment_export_readiness_map(payment_ids=[ours.pk, theirs.pk])
    by_python = {pk for pk, r in readiness.items() if r.exportable}
    by_sql = set(payment_filter_exportable(payments).values_list("pk", flat=True))
    assert by_python == by_sql == {ours.pk, theirs.pk}
    assert not payment_filter_held(payments).exists()
    # The rule is about invoices; only statuses "not exported" and "failed" are ever queued, so it stays put.


def test_a_refund_of_it_is_handed_to_quickbooks_never_netted():
    invoice = issued_invoice(amount="100.00")
    payment = from_quickbooks(invoice, "100.00")

    refund = services.refund_record(
        payment=payment, amount="25.00", reason="Bounced", refunded_on=datetime.date(2026, 12, 2), method="check"
    )

    assert refund.handling == "quickbooks"
    assert ManualHandlingItem.objects.get(refund=refund).quickbooks_reference == "77"


def test_origin_and_status_cannot_disagree():
    payment = pay(issued_invoice(amount="10.00"), "10.00")
    with pytest.raises(IntegrityError), transaction.atomic():
        Payment.objects.filter(pk=payment.pk).update(export_status=S.IN_QUICKBOOKS)
    assert Payment.objects.get(pk=payment.pk).export_status == S.NOT_EXPORTED
