"""“Record it in QuickBooks for me”: off unless the company allows it, exactly once (outbox + request id), the item
handled with the QuickBooks id, and QuickBooks' invoice balance equal to FieldSync's afterwards."""

import datetime
from decimal import Decimal

import pytest

from billing import services as billing_services
from billing.models import ManualHandlingItem, Refund
from billing.selectors import invoice_get_with_balances
from fieldsync.exceptions import ApplicationError
from quickbooks_export.models import ExportAttempt, QuickBooksMappingSettings, QuickBooksRequest
from quickbooks_export.refund_recording import manual_item_record_in_quickbooks
from tests.factories import UserFactory, issued_invoice, pay

from .conftest import export

pytestmark = pytest.mark.django_db


def exported_then_refunded(company, kind="reversal", amount="50.00", payment_amount="550.00"):
    invoice = issued_invoice(amount="550.00")
    payment = pay(invoice, "550.00", payment_amount=payment_amount)
    export(payment)
    payment.refresh_from_db()
    refund = billing_services.refund_record(
        payment=payment,
        amount=amount,
        kind=kind,
        invoice=invoice if kind != "unapplied_credit" else None,
        reason="Chargeback",
        refunded_on=datetime.date(2026, 11, 21),
        method=Refund.Method.CARD,
    )
    return invoice, payment, ManualHandlingItem.objects.get(refund=refund)


def allow(company, allowed=True):
    QuickBooksMappingSettings.objects.update_or_create(
        realm_id=company.realm_id, defaults={"record_refunds_for_me": allowed}
    )


def qbo_balance(company, invoice):
    return Decimal(str(next(i for i in company.entities("Invoice") if i["DocNumber"] == invoice.number)["Balance"]))


def test_off_by_default_and_nothing_changes(qbo_company):
    invoice, payment, item = exported_then_refunded(qbo_company)
    with pytest.raises(ApplicationError) as excinfo:
        manual_item_record_in_quickbooks(item_id=item.pk, user=UserFactory())
    assert excinfo.value.code == "refund_recording_not_allowed"
    assert "turned off" in excinfo.value.message
    item.refresh_from_db()
    assert item.status == ManualHandlingItem.Status.OPEN
    assert qbo_balance(qbo_company, invoice) == 0
    assert not QuickBooksRequest.objects.filter(kind="refund").exists()


@pytest.mark.parametrize("kind, amount", [("no_longer_owed", "50.00"), ("unapplied_credit", "10.00")])
def test_kinds_whose_transaction_is_the_offices_call_stay_manual(qbo_company, kind, amount):
    allow(qbo_company)
    _, _, item = exported_then_refunded(qbo_company, kind=kind, amount=amount, payment_amount="560.00")
    with pytest.raises(ApplicationError) as excinfo:
        manual_item_record_in_quickbooks(item_id=item.pk, user=UserFactory())
    assert "enter this one by hand" in excinfo.value.message


def test_a_reversal_is_recorded_once_and_the_books_agree(qbo_company):
    allow(qbo_company)
    invoice, payment, item = exported_then_refunded(qbo_company)
    user = UserFactory()

    handled = manual_item_record_in_quickbooks(item_id=item.pk, user=user)

    assert handled.status == ManualHandlingItem.Status.HANDLED and handled.handled_by == user
    assert handled.handled_quickbooks_id == payment.export_reference
    assert "Recorded in QuickBooks by FieldSync" in handled.handled_note
    assert qbo_balance(qbo_company, invoice) == invoice_get_with_balances(invoice_id=invoice.pk).open_balance == 50
    [qbo_payment] = qbo_company.entities("Payment")
    assert Decimal(str(qbo_payment["TotalAmt"])) == Decimal("500.00")
    assert ExportAttempt.objects.filter(payment=payment, operation__startswith="record refund").count() == 1
    handled.refund.refresh_from_db()
    assert handled.refund.quickbooks_status == "recorded"

    # A second click changes nothing.
    with pytest.raises(ApplicationError):
        manual_item_record_in_quickbooks(item_id=item.pk, user=user)
    assert Decimal(str(qbo_company.entities("Payment")[0]["TotalAmt"])) == Decimal("500.00")

    # The re-opened balance, paid again, exports and settles QuickBooks' invoice too.
    later = pay(invoice, "50.00")
    export(later)
    later.refresh_from_db()
    assert later.export_status == later.ExportStatus.EXPORTED
    assert qbo_balance(qbo_company, invoice) == 0


def test_a_lost_answer_then_a_second_click_lowers_the_payment_once(qbo_company):
    allow(qbo_company)
    invoice, payment, item = exported_then_refunded(qbo_company)
    qbo_company.server.add_fault("drop_after_commit", count=1, path_contains="/payment", method="POST")

    with pytest.raises(ApplicationError):
        manual_item_record_in_quickbooks(item_id=item.pk, user=UserFactory())
    item.refresh_from_db()
    assert item.status == ManualHandlingItem.Status.OPEN
    assert QuickBooksRequest.objects.get(kind="refund").state == QuickBooksRequest.State.PENDING

    manual_item_record_in_quickbooks(item_id=item.pk, user=UserFactory())

    assert Decimal(str(qbo_company.entities("Payment")[0]["TotalAmt"])) == Decimal("500.00")
    assert qbo_balance(qbo_company, invoice) == 50
    assert qbo_company.server.stats(qbo_company.realm_id)["replayed"] >= 1
