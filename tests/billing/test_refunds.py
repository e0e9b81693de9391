import datetime
from decimal import Decimal

import pytest

from billing import services
from billing.models import Invoice, ManualHandlingItem, Payment, Refund
from billing.selectors import invoice_get_with_balances, payment_export_readiness
from fieldsync.exceptions import ApplicationError, ConflictError
from tests.factories import CustomerFactory, UserFactory, issued_invoice, pay, split_payment

pytestmark = pytest.mark.django_db


def refund(payment, amount, **kwargs):
    return services.refund_record(
        payment=payment,
        amount=amount,
        reason=kwargs.pop("reason", "Job cancelled"),
        refunded_on=datetime.date(2026, 11, 15),
        method=kwargs.pop("method", Refund.Method.CHECK),
        **kwargs,
    )


def mark_exported(payment, reference="145"):
    for status in (
        Payment.ExportStatus.QUEUED,
        Payment.ExportStatus.EXPORTING,
        Payment.ExportStatus.EXPORTED,
    ):
        payment = services.payment_export_status_transition(
            payment_id=payment.pk, to_status=status, export_reference=reference
        )
    return payment


def test_refund_before_export_reopens_the_invoice_and_holds_its_payments_again():
    invoice = issued_invoice(amount="100.00")
    first, second = pay(invoice, "60.00"), pay(invoice, "40.00")
    assert payment_export_readiness(payment_id=first.pk).exportable

    refund(second, "15.00")

    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.OPEN
    assert invoice_get_with_balances(invoice_id=invoice.pk).open_balance == Decimal("15.00")
    for payment in (first, second):
        readiness = payment_export_readiness(payment_id=payment.pk)
        assert not readiness.exportable
        assert readiness.held_reason == f"Held: {invoice.number} still has $15.00 open."
    assert not ManualHandlingItem.objects.exists()


def test_refund_larger_than_what_is_left_of_the_payment_is_refused():
    invoice = issued_invoice(amount="100.00")
    payment = pay(invoice, "100.00")
    refund(payment, "70.00")
    with pytest.raises(ApplicationError) as excinfo:
        refund(payment, "30.01")
    assert excinfo.value.code == "refund_exceeds_payment"
    assert "$30.00 left" in excinfo.value.message
    assert Refund.objects.count() == 1


def test_refund_comes_out_of_unapplied_credit_first_without_reopening_the_invoice():
    invoice = issued_invoice(amount="55.00")
    payment = pay(invoice, "55.00", payment_amount="65.00")
    created = refund(payment, "10.00")
    assert created.application is None
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID


def test_refund_of_a_split_payment_must_name_the_invoice():
    customer = CustomerFactory()
    first = issued_invoice(customer=customer, amount="60.00")
    second = issued_invoice(customer=customer, amount="40.00")
    payment = split_payment((first, "60.00"), (second, "40.00"))
    with pytest.raises(ApplicationError) as excinfo:
        refund(payment, "5.00")
    assert excinfo.value.code == "refund_invoice_required"
    assert first.number in excinfo.value.message and second.number in excinfo.value.message

    refund(payment, "5.00", invoice=second)
    assert invoice_get_with_balances(invoice_id=second.pk).open_balance == Decimal("5.00")
    assert invoice_get_with_balances(invoice_id=first.pk).open_balance == Decimal("0.00")


def test_refund_larger_than_the_part_applied_to_the_named_invoice_is_refused():
    customer = CustomerFactory()
    first = issued_invoice(customer=customer, amount="60.00")
    second = issued_invoice(customer=customer, amount="40.00")
    payment = split_payment((first, "60.00"), (second, "40.00"))
    with pytest.raises(ApplicationError) as excinfo:
        refund(payment, "41.00", invoice=second)
    assert excinfo.value.code == "refund_exceeds_application"
    with pytest.raises(ApplicationError) as excinfo:
        refund(payment, "1.00", invoice=issued_invoice(customer=customer))
    assert excinfo.value.code == "not_applied_to_invoice"
    assert not Refund.objects.exists()


@pytest.mark.parametrize(
    ("field", "value", "code"), [("reason", "  ", "reason_required"), ("method", "gold", "invalid_method")]
)
def test_refund_refuses_missing_reason_and_unknown_method(field, value, code):
    payment = pay(issued_invoice(), "100.00")
    with pytest.raises(ApplicationError) as excinfo:
        refund(payment, "5.00", **{field: value})
    assert excinfo.value.code == code
    assert not Refund.objects.exists()


def test_refund_of_an_exported_payment_raises_a_manual_handling_item():
    invoice = issued_invoice(amount="100.00")
    payment = mark_exported(pay(invoice, "100.00", reference="CHK-881"), reference="145")

    created = refund(payment, "25.00", reason="Duplicate charge")

    item = ManualHandlingItem.objects.get()
    assert item.status == ManualHandlingItem.Status.OPEN
    assert item.refund == created
    assert item.amount == Decimal("25.00")
    assert item.customer == payment.customer
    assert item.quickbooks_reference == "145"
    assert "Edit QuickBooks payment 145" in item.instructions
    assert "lower the amount applied to invoice" in item.instructions
    assert "by $25.00" in item.instructions
    assert "reference CHK-881" in item.instructions
    assert "Duplicate charge" in item.instructions
    payment.refresh_from_db()
    assert payment.export_status == Payment.ExportStatus.EXPORTED  # the export itself is never undone


def test_refund_of_a_payment_exported_by_hand_is_flagged_too():
    payment = pay(issued_invoice(), "100.00")
    services.payment_export_status_transition(payment_id=payment.pk, to_status=Payment.ExportStatus.EXPORTED_MANUALLY)
    refund(payment, "5.00")
    item = ManualHandlingItem.objects.get()
    assert "keyed into QuickBooks by hand" in item.instructions


def test_refund_while_exporting_waits_for_the_quickbooks_id_and_never_says_entered_by_hand():
    payment = pay(issued_invoice(), "100.00")
    for status in (Payment.ExportStatus.QUEUED, Payment.ExportStatus.EXPORTING):
        services.payment_export_status_transition(payment_id=payment.pk, to_status=status)
    refund(payment, "5.00")
    item = ManualHandlingItem.objects.get()
    assert "still sending to QuickBooks" in item.instructions
    assert "by hand" not in item.instructions

    services.payment_export_status_transition(
        payment_id=payment.pk, to_status=Payment.ExportStatus.EXPORTED, export_reference="777"
    )
    item.refresh_from_db()
    assert item.quickbooks_reference == "777"
    assert "QuickBooks payment 777" in item.instructions


def test_refund_while_exporting_resolves_itself_when_the_payment_does_not_reach_quickbooks():
    payment = pay(issued_invoice(), "100.00")
    for status in (Payment.ExportStatus.QUEUED, Payment.ExportStatus.EXPORTING):
        services.payment_export_status_transition(payment_id=payment.pk, to_status=status)
    created = refund(payment, "5.00")
    assert created.handling == Refund.Handling.QUICKBOOKS

    services.payment_export_status_transition(payment_id=payment.pk, to_status=Payment.ExportStatus.FAILED)

    item = ManualHandlingItem.objects.get()
    created.refresh_from_db()
    assert item.status == ManualHandlingItem.Status.HANDLED
    assert item.resolved_automatically and item.handled_by is None
    assert "turned out not to be in QuickBooks" in item.handled_note
    assert created.handling == Refund.Handling.NETTED  # now taken out of what the export posts instead


def test_mark_handled_records_who_when_and_the_note_and_only_once():
    payment = mark_exported(pay(issued_invoice(), "100.00"))
    refund(payment, "5.00")
    item = ManualHandlingItem.objects.get()
    user = UserFactory()

    with pytest.raises(ApplicationError) as excinfo:
        services.manual_item_mark_handled(item=item, user=user, note=" ")
    assert excinfo.value.code == "note_required"

    handled = services.manual_item_mark_handled(item=item, user=user, note="Refund receipt 1009 entered")
    assert handled.status == ManualHandlingItem.Status.HANDLED
    assert handled.handled_by == user
    assert handled.handled_at is not None
    assert handled.handled_note == "Refund receipt 1009 entered"

    with pytest.raises(ConflictError):
        services.manual_item_mark_handled(item=item, user=user, note="again")
