"""Refund kinds × before/after export: FieldSync's balances, the fully-paid rule (SQL and Python), the mapper and
QuickBooks' own books in the sandbox agree, and once the manual-handling item's transaction is entered in QuickBooks
the two sides are equal (docs/refunds.md).

The base case is the issue's: a $560 payment on a $550 invoice ($10 unapplied credit)."""

import datetime
from decimal import Decimal

import pytest

from billing import services as billing_services
from billing.models import ManualHandlingItem, Payment, Refund
from billing.selectors import (
    invoice_get_with_balances,
    payment_export_readiness,
    payment_filter_exportable,
    payment_with_amounts,
    payments_for_export,
)
from quickbooks_export import mappers
from quickbooks_export.client import QuickBooksClient
from tests.factories import issued_invoice, pay, split_payment

from .conftest import export

pytestmark = pytest.mark.django_db
S = Payment.ExportStatus
K = Refund.Kind

# kind, amount refunded, out of the invoice?, FieldSync open balance after, unapplied credit after
KINDS = [
    (K.NO_LONGER_OWED, "50.00", True, Decimal("0.00"), Decimal("10.00")),
    (K.REVERSAL, "50.00", True, Decimal("50.00"), Decimal("10.00")),
    (K.UNAPPLIED_CREDIT, "10.00", False, Decimal("0.00"), Decimal("0.00")),
]


def record_refund(payment, kind, amount, *, with_invoice):
    return billing_services.refund_record(
        payment=payment,
        amount=amount,
        kind=kind,
        invoice=payment.applications.get().invoice if with_invoice else None,
        reason="Customer request",
        refunded_on=datetime.date(2026, 11, 20),
        method=Refund.Method.CHECK,
    )


def qbo_invoice(company, number):
    return next(inv for inv in company.entities("Invoice") if inv["DocNumber"] == number)


def rule_agrees(payment) -> bool:
    """The SQL filter and the Python reasons say the same thing about the payment."""
    sql = payment_filter_exportable(Payment.objects.filter(pk=payment.pk)).exists()
    python = payment_export_readiness(payment_id=payment.pk).exportable
    assert sql == python, payment_export_readiness(payment_id=payment.pk).held_reason
    return sql


@pytest.mark.parametrize("kind, amount, with_invoice, open_after, credit_after", KINDS)
def test_refund_before_export(qbo_company, kind, amount, with_invoice, open_after, credit_after):
    invoice = issued_invoice(amount="550.00")
    payment = pay(invoice, "550.00", payment_amount="560.00")

    refund = record_refund(payment, kind, amount, with_invoice=with_invoice)

    assert invoice_get_with_balances(invoice_id=invoice.pk).open_balance == open_after
    assert payment_with_amounts(Payment.objects.filter(pk=payment.pk)).get().unapplied_credit == credit_after
    exportable = rule_agrees(payment)
    assert exportable == (open_after == 0)
    [loaded] = payments_for_export(payment_ids=[payment.pk])
    if kind == K.NO_LONGER_OWED:
        # Goes to QuickBooks as received; the money returned is a Refund Receipt (never netted and flagged).
        assert refund.handling == Refund.Handling.QUICKBOOKS
        assert mappers.payment_total(loaded) == Decimal("560.00")
        assert ManualHandlingItem.objects.filter(refund=refund).count() == 1
    else:
        assert refund.handling == Refund.Handling.NETTED
        assert mappers.payment_total(loaded) == Decimal("560.00") - Decimal(amount)
        assert not ManualHandlingItem.objects.exists()

    later = None
    if kind == K.REVERSAL:
        # The customer pays the re-opened balance: both go to QuickBooks, the invoice is paid there too.
        later = pay(invoice, "50.00")
        assert rule_agrees(payment) and rule_agrees(later)
    export(*[p for p in (payment, later) if p])

    payment.refresh_from_db()
    assert payment.export_status == S.EXPORTED
    fieldsync = invoice_get_with_balances(invoice_id=invoice.pk)
    assert Decimal(str(qbo_invoice(qbo_company, invoice.number)["Balance"])) == fieldsync.open_balance == 0
    qbo_payment = next(p for p in qbo_company.entities("Payment") if p["Id"] == payment.export_reference)
    assert Decimal(str(qbo_payment["UnappliedAmt"])) == credit_after


@pytest.mark.parametrize("kind, amount, with_invoice, open_after, credit_after", KINDS)
def test_refund_after_export_then_the_item_entered_in_quickbooks(
    qbo_company, kind, amount, with_invoice, open_after, credit_after
):
    invoice = issued_invoice(amount="550.00")
    payment = pay(invoice, "550.00", payment_amount="560.00")
    export(payment)
    payment.refresh_from_db()

    refund = record_refund(payment, kind, amount, with_invoice=with_invoice)

    assert refund.handling == Refund.Handling.QUICKBOOKS
    item = ManualHandlingItem.objects.get(refund=refund)
    assert item.quickbooks_reference == payment.export_reference
    assert f"QuickBooks payment {payment.export_reference}" in item.instructions
    assert invoice_get_with_balances(invoice_id=invoice.pk).open_balance == open_after
    [loaded] = payments_for_export(payment_ids=[payment.pk])
    assert mappers.payment_total(loaded) == Decimal("560.00")  # what QuickBooks holds: never netted as well

    client = QuickBooksClient.for_current_connection()
    qbo_payment = client.read("Payment", payment.export_reference)
    if kind == K.REVERSAL:
        assert "lower the amount applied to invoice" in item.instructions
        # What the item says, through the real python-quickbooks client: lower the line and the total by $50.
        lines = qbo_payment["Line"]
        lines[0]["Amount"] = str(Decimal(str(lines[0]["Amount"])) - Decimal(amount))
        client.update(
            "Payment",
            {
                "Id": qbo_payment["Id"],
                "SyncToken": qbo_payment["SyncToken"],
                "sparse": True,
                "Line": lines,
                "TotalAmt": str(Decimal(str(qbo_payment["TotalAmt"])) - Decimal(amount)),
            },
        )
    elif kind == K.NO_LONGER_OWED:
        assert "Refund Receipt of $50.00" in item.instructions
        # What the item says, through the real client: a Refund Receipt from the account the payment went to, one
        # line for the service refunded on the invoice.
        qbo_inv = qbo_invoice(qbo_company, invoice.number)
        service_line = next(ln for ln in qbo_inv["Line"] if ln.get("DetailType") == "SalesItemLineDetail")
        receipt = client.create(
            "RefundReceipt",
            {
                "CustomerRef": qbo_payment["CustomerRef"],
                "DepositToAccountRef": qbo_payment["DepositToAccountRef"],
                "TxnDate": "2026-11-20",
                "PrivateNote": f"FieldSync refund #{refund.pk}",
                "Line": [
                    {
                        "DetailType": "SalesItemLineDetail",
                        "Amount": amount,
                        "SalesItemLineDetail": {"ItemRef": service_line["SalesItemLineDetail"]["ItemRef"]},
                    }
                ],
            },
            request_id=f"test-refund-receipt-{refund.pk}",
        )
        assert Decimal(str(receipt["TotalAmt"])) == Decimal(amount) and Decimal(str(receipt["Balance"])) == 0
    else:
        assert "Accounts Receivable" in item.instructions and "Outstanding Transactions" in item.instructions

    fieldsync = invoice_get_with_balances(invoice_id=invoice.pk)
    assert Decimal(str(qbo_invoice(qbo_company, invoice.number)["Balance"])) == fieldsync.open_balance == open_after

    if kind == K.REVERSAL:
        # A later payment of the re-opened balance waits, with its reason, until the reversal is in QuickBooks.
        later = pay(invoice, "50.00")
        readiness = payment_export_readiness(payment_id=later.pk)
        assert not rule_agrees(later)
        assert "still shows paid in QuickBooks" in readiness.held_reason
        billing_services.manual_item_mark_handled(item=item, user=None, note="Payment edited in QuickBooks")
        assert rule_agrees(later)
        export(later)
        later.refresh_from_db()
        assert later.export_status == S.EXPORTED
        assert Decimal(str(qbo_invoice(qbo_company, invoice.number)["Balance"])) == 0
        assert invoice_get_with_balances(invoice_id=invoice.pk).open_balance == 0


def test_a_fully_refunded_application_on_a_voided_invoice_does_not_hold_the_payment(qbo_company):
    """Split payment $100 → INV-A, $200 → INV-B; the INV-A part is reversed and INV-A voided."""
    invoice_a, invoice_b = issued_invoice(amount="100.00"), None
    invoice_b = issued_invoice(customer=invoice_a.customer, amount="200.00")
    payment = split_payment((invoice_a, "100.00"), (invoice_b, "200.00"))
    billing_services.refund_record(
        payment=payment,
        amount="100.00",
        kind=K.REVERSAL,
        invoice=invoice_a,
        reason="Wrong charge",
        refunded_on=datetime.date(2026, 11, 20),
        method=Refund.Method.CARD,
    )
    billing_services.invoice_void(invoice=invoice_a)

    assert rule_agrees(payment)
    export(payment)

    payment.refresh_from_db()
    assert payment.export_status == S.EXPORTED
    [qbo_payment] = qbo_company.entities("Payment")
    assert Decimal(str(qbo_payment["TotalAmt"])) == Decimal("200.00")
    assert [inv["DocNumber"] for inv in qbo_company.entities("Invoice")] == [invoice_b.number]


# --- Refunds recorded while the payment is being exported --------------------------------------------------------


def claimed_then_worker_died(payment):
    """The state a killed worker leaves: the payment claimed (EXPORTING), its batch item pending, nothing sent."""
    from quickbooks_export.services import export_batch_start

    export_batch_start(payments=[payment.pk], selection="test", source="command")
    billing_services.payment_export_status_bulk_transition(
        payment_ids=[payment.pk], to_status=S.EXPORTING, expected_from=[S.QUEUED]
    )


def test_refund_of_unapplied_credit_while_exporting_is_flagged_not_netted_once_in_quickbooks(qbo_company):
    """The issue's scenario: $150 payment ($50 unapplied) claimed, worker dies, $50 refund recorded, next run."""
    from .conftest import drain

    invoice = issued_invoice(amount="100.00")
    payment = pay(invoice, "100.00", payment_amount="150.00")
    claimed_then_worker_died(payment)

    refund = record_refund(payment, K.UNAPPLIED_CREDIT, "50.00", with_invoice=False)
    item = ManualHandlingItem.objects.get(refund=refund)
    assert "by hand" not in item.instructions and "still sending to QuickBooks" in item.instructions

    drain(qbo_company.realm_id)

    payment.refresh_from_db()
    item.refresh_from_db()
    [qbo_payment] = qbo_company.entities("Payment")
    # Posted as claimed ($150, $50 unapplied) and the $50 is to be refunded in QuickBooks once: not both.
    assert Decimal(str(qbo_payment["TotalAmt"])) == Decimal("150.00")
    assert Decimal(str(qbo_payment["UnappliedAmt"])) == Decimal("50.00")
    assert item.status == ManualHandlingItem.Status.OPEN
    assert item.quickbooks_reference == payment.export_reference == qbo_payment["Id"]
    assert f"QuickBooks payment {qbo_payment['Id']}" in item.instructions
    assert "Refund the customer's credit of $50.00" in item.instructions


def test_reversal_while_exporting_resolves_its_item_when_the_payment_goes_back_and_is_then_exported_net(qbo_company):
    from .conftest import drain

    invoice = issued_invoice(amount="100.00")
    payment = pay(invoice, "100.00", payment_amount="150.00")
    claimed_then_worker_died(payment)
    refund = record_refund(payment, K.REVERSAL, "40.00", with_invoice=True)
    item = ManualHandlingItem.objects.get(refund=refund)

    drain(qbo_company.realm_id)  # the invoice re-opened: the payment is held, it never reached QuickBooks

    payment.refresh_from_db()
    item.refresh_from_db()
    refund.refresh_from_db()
    assert payment.export_status == S.NOT_EXPORTED
    assert not qbo_company.entities("Payment")
    assert item.status == ManualHandlingItem.Status.HANDLED and item.resolved_automatically
    assert refund.handling == Refund.Handling.NETTED

    later = pay(invoice, "40.00")
    export(payment, later)
    payment.refresh_from_db()
    qbo = {p["Id"]: p for p in qbo_company.entities("Payment")}
    assert Decimal(str(qbo[payment.export_reference]["TotalAmt"])) == Decimal("110.00")  # netted once, not flagged
    assert Decimal(str(qbo_invoice(qbo_company, invoice.number)["Balance"])) == 0
