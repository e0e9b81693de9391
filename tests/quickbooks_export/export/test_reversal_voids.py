"""A reversal of a WHOLE exported payment, recorded by FieldSync ("Record it in QuickBooks for me"), voids the
QuickBooks payment exactly once — or flags it, sending nothing, when QuickBooks cannot (in a bank deposit) or must
not (changed there since). A partial reversal stays a sparse update of the payment."""

import datetime
from decimal import Decimal

import pytest

from billing import services as billing_services
from billing.models import ManualHandlingItem, Refund
from fieldsync.exceptions import ApplicationError
from quickbooks_export.client import QuickBooksClient
from quickbooks_export.errors import QuickBooksError
from quickbooks_export.models import (
    ExportAttempt,
    QuickBooksConnection,
    QuickBooksMapping,
    QuickBooksMappingAudit,
    QuickBooksMappingSettings,
    QuickBooksRequest,
)
from quickbooks_export.refund_recording import manual_item_record_in_quickbooks
from tests.factories import CustomerFactory, UserFactory, issued_invoice, pay, split_payment

from .conftest import export

pytestmark = pytest.mark.django_db


@pytest.fixture
def company(qbo_company):
    QuickBooksMappingSettings.objects.update_or_create(
        realm_id=qbo_company.realm_id, defaults={"record_refunds_for_me": True}
    )
    return qbo_company


def reverse(payment, invoice, amount: str) -> ManualHandlingItem:
    refund = billing_services.refund_record(
        payment=payment,
        amount=amount,
        kind="reversal",
        invoice=invoice,
        reason="Check bounced",
        refunded_on=datetime.date(2026, 11, 21),
        method=Refund.Method.CHECK,
    )
    return ManualHandlingItem.objects.get(refund=refund)


def exported_payment(amount="200.00", number="INV-R1"):
    invoice = issued_invoice(amount=amount, number=number)
    payment = pay(invoice, amount)
    export(payment)
    payment.refresh_from_db()
    return invoice, payment


def qbo(company, entity: str, qbo_id: str) -> dict:
    return next(row for row in company.entities(entity) if row["Id"] == qbo_id)


def qbo_invoice(company, number: str) -> dict:
    return next(row for row in company.entities("Invoice") if row["DocNumber"] == number)


def test_a_whole_reversal_voids_the_quickbooks_payment_and_reopens_its_invoice(company):
    invoice, payment = exported_payment()
    item = reverse(payment, invoice, "200.00")

    handled = manual_item_record_in_quickbooks(item_id=item.pk, user=UserFactory())

    row = qbo(company, "Payment", payment.export_reference)
    assert Decimal(str(row["TotalAmt"])) == 0 and row["Line"] == [] and row["PrivateNote"].startswith("Voided")
    assert Decimal(str(qbo_invoice(company, "INV-R1")["Balance"])) == Decimal("200.00")
    assert handled.status == "handled" and handled.handled_quickbooks_id == payment.export_reference
    assert "was voided" in handled.handled_note
    [request] = QuickBooksRequest.objects.filter(kind="refund")
    assert (request.operation, request.state, request.payload["SyncToken"]) == ("Payment.void", "done", "0")
    mapping = QuickBooksMapping.objects.get(kind="payment", local_key=str(payment.pk))
    assert mapping.sync_token == row["SyncToken"]
    assert QuickBooksMappingAudit.objects.get(kind="payment").action == "void"
    assert ExportAttempt.objects.filter(payment=payment, operation__contains="void Payment", outcome="ok").exists()


def test_a_split_payment_reversed_on_each_invoice_is_voided_once_and_both_items_close(company):
    customer = CustomerFactory()
    first = issued_invoice(customer=customer, amount="60.00", number="INV-R2")
    second = issued_invoice(customer=customer, amount="40.00", number="INV-R3")
    payment = split_payment((first, "60.00"), (second, "40.00"))
    export(payment)
    payment.refresh_from_db()
    items = [reverse(payment, first, "60.00"), reverse(payment, second, "40.00")]

    manual_item_record_in_quickbooks(item_id=items[0].pk, user=UserFactory())

    row = qbo(company, "Payment", payment.export_reference)
    assert Decimal(str(row["TotalAmt"])) == 0 and row["SyncToken"] == "1"  # one write: the void
    assert Decimal(str(qbo_invoice(company, "INV-R2")["Balance"])) == Decimal("60.00")
    assert Decimal(str(qbo_invoice(company, "INV-R3")["Balance"])) == Decimal("40.00")
    assert {i.status for i in ManualHandlingItem.objects.filter(payment=payment)} == {"handled"}


def test_a_partial_reversal_stays_a_sparse_update(company):
    invoice, payment = exported_payment(number="INV-R4")
    item = reverse(payment, invoice, "50.00")

    manual_item_record_in_quickbooks(item_id=item.pk, user=UserFactory())

    row = qbo(company, "Payment", payment.export_reference)
    assert Decimal(str(row["TotalAmt"])) == Decimal("150.00") and not row.get("PrivateNote", "").startswith("Voided")
    assert QuickBooksRequest.objects.get(kind="refund").operation == "Payment.update"

    # The rest reversed later: FieldSync's own update is no one else's change, so the void goes through.
    rest = reverse(payment, invoice, "150.00")
    manual_item_record_in_quickbooks(item_id=rest.pk, user=UserFactory())
    row = qbo(company, "Payment", payment.export_reference)
    assert Decimal(str(row["TotalAmt"])) == 0 and row["PrivateNote"].startswith("Voided")
    assert Decimal(str(qbo_invoice(company, "INV-R4")["Balance"])) == Decimal("200.00")


def test_a_deposited_payment_is_never_voided_it_is_flagged_with_the_reason(company):
    invoice, payment = exported_payment(number="INV-R5")
    client = QuickBooksClient(QuickBooksConnection.objects.get(is_current=True))
    [bank] = client.query("SELECT * FROM Account WHERE AccountType = 'Bank'")
    deposit = client.create(
        "Deposit",
        {
            "DepositToAccountRef": {"value": bank["Id"]},
            "Line": [
                {
                    "Amount": "200.00",
                    "LinkedTxn": [{"TxnId": payment.export_reference, "TxnType": "Payment", "TxnLineId": "0"}],
                }
            ],
        },
        request_id="test-deposit-r5",
    )
    item = reverse(payment, invoice, "200.00")

    with pytest.raises(ApplicationError) as flagged:
        manual_item_record_in_quickbooks(item_id=item.pk, user=UserFactory())

    assert flagged.value.code == "quickbooks_payment_deposited"
    assert "in a bank deposit" in flagged.value.message and "FieldSync sent nothing" in flagged.value.message
    row = qbo(company, "Payment", payment.export_reference)
    assert Decimal(str(row["TotalAmt"])) == Decimal("200.00") and row["LinkedTxn"] == [
        {"TxnId": deposit["Id"], "TxnType": "Deposit"}
    ]
    item.refresh_from_db()
    assert item.status == "open" and not QuickBooksRequest.objects.filter(kind="refund").exists()
    assert ExportAttempt.objects.get(payment=payment, error_code="quickbooks_payment_deposited")
    # And QuickBooks itself would refuse it (Intuit: a deposited payment is voided only once out of its deposit).
    with pytest.raises(QuickBooksError) as refused:
        client.void("Payment", id=row["Id"], sync_token=row["SyncToken"])
    assert refused.value.qbo_code == "6540"


def test_a_payment_changed_in_quickbooks_since_is_flagged_not_overwritten(company):
    invoice, payment = exported_payment(number="INV-R6")
    company.server.edit_entity(company.realm_id, "Payment", payment.export_reference, {"PaymentRefNum": "9911"})
    item = reverse(payment, invoice, "200.00")

    with pytest.raises(ApplicationError) as flagged:
        manual_item_record_in_quickbooks(item_id=item.pk, user=UserFactory())

    assert (
        flagged.value.code == "quickbooks_payment_changed" and "SyncToken 1, FieldSync knew 0" in flagged.value.message
    )
    row = qbo(company, "Payment", payment.export_reference)
    assert Decimal(str(row["TotalAmt"])) == Decimal("200.00") and row["PaymentRefNum"] == "9911"
    item.refresh_from_db()
    assert item.status == "open"


def test_a_lost_answer_then_a_second_click_voids_once(company):
    invoice, payment = exported_payment(number="INV-R7")
    item = reverse(payment, invoice, "200.00")
    company.server.add_fault("drop_after_commit", count=1, path_contains="/payment", method="POST")

    with pytest.raises(QuickBooksError):
        manual_item_record_in_quickbooks(item_id=item.pk, user=UserFactory())
    item.refresh_from_db()
    assert item.status == "open"
    assert QuickBooksRequest.objects.get(kind="refund").state == "pending"

    manual_item_record_in_quickbooks(item_id=item.pk, user=UserFactory())

    row = qbo(company, "Payment", payment.export_reference)
    assert Decimal(str(row["TotalAmt"])) == 0 and row["SyncToken"] == "1"  # voided once, not twice
    assert company.server.stats(company.realm_id)["replayed"] >= 1
    item.refresh_from_db()
    assert item.status == "handled"
    with pytest.raises(ApplicationError):
        manual_item_record_in_quickbooks(item_id=item.pk, user=UserFactory())  # already handled: nothing sent
    assert qbo(company, "Payment", payment.export_reference)["SyncToken"] == "1"
