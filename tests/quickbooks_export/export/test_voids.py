"""An invoice voided in FieldSync is voided in QuickBooks once, in the order QuickBooks needs, or flagged."""

import datetime
from decimal import Decimal

import pytest
from django_q.models import OrmQ

from billing import services as billing_services
from billing.models import ManualHandlingItem
from quickbooks_export.errors import QuickBooksError
from quickbooks_export.models import (
    QuickBooksChange,
    QuickBooksMappingAudit,
    QuickBooksMappingSettings,
    QuickBooksRequest,
)
from quickbooks_export.refund_recording import manual_item_record_in_quickbooks
from quickbooks_export.voids import VOID_TASK, invoice_void_push
from tests.factories import UserFactory, issued_invoice, pay

from .conftest import export

pytestmark = pytest.mark.django_db


def exported_then_reversed(company, number="INV-7001"):
    """An invoice exported with its one payment, then the payment reversed in FieldSync (a bounced check)."""
    invoice = issued_invoice(amount="200.00", number=number)
    payment = pay(invoice, "200.00")
    export(payment)
    billing_services.refund_record(
        payment=payment,
        amount="200.00",
        reason="Check bounced",
        refunded_on=datetime.date(2026, 11, 20),
        method="check",
        kind="reversal",
        invoice=invoice,
    )
    invoice.refresh_from_db()
    return invoice, payment


def qbo_invoice(company, number):
    return next(i for i in company.entities("Invoice") if i["DocNumber"] == number)


def test_void_waits_for_the_payment_to_leave_the_invoice_in_quickbooks_then_voids_it_once(
    qbo_company, django_capture_on_commit_callbacks
):
    invoice, payment = exported_then_reversed(qbo_company)

    with django_capture_on_commit_callbacks(execute=True):
        billing_services.invoice_void(invoice=invoice)
    assert [row.task["args"] for row in OrmQ.objects.all() if row.task["func"] == VOID_TASK] == [(invoice.pk,)]

    # QuickBooks still has the payment applied: not voided, flagged for a person with what to do.
    assert invoice_void_push(invoice_id=invoice.pk) == "flagged"
    [change] = QuickBooksChange.objects.all()
    assert change.change == "void_held" and "void or unapply them in QuickBooks" in change.theirs["note"]
    assert Decimal(str(qbo_invoice(qbo_company, "INV-7001")["TotalAmt"])) == Decimal("200.00")
    assert not QuickBooksRequest.objects.filter(kind="void").exists()

    # The reversal is entered in QuickBooks (here by FieldSync: "Record it in QuickBooks for me"): payments first ...
    QuickBooksMappingSettings.objects.update_or_create(
        realm_id=qbo_company.realm_id, defaults={"record_refunds_for_me": True}
    )
    item = ManualHandlingItem.objects.get(payment=payment)
    manual_item_record_in_quickbooks(item_id=item.pk, user=UserFactory())

    # ... then the invoice.
    assert invoice_void_push(invoice_id=invoice.pk) == "voided"
    row = qbo_invoice(qbo_company, "INV-7001")
    assert Decimal(str(row["TotalAmt"])) == 0 and row["PrivateNote"].startswith("Voided")
    # The whole payment was reversed: FieldSync voided it first (refund_recording.py), then the invoice.
    assert sorted(QuickBooksMappingAudit.objects.filter(action="void").values_list("kind", flat=True)) == [
        "invoice",
        "payment",
    ]
    assert invoice_void_push(invoice_id=invoice.pk) == "already_void"  # a task run twice sends nothing more
    assert QuickBooksRequest.objects.filter(kind="void").count() == 1


def test_a_lost_answer_is_resent_unchanged_and_voids_once(qbo_company):
    invoice, payment = exported_then_reversed(qbo_company, number="INV-7002")
    QuickBooksMappingSettings.objects.update_or_create(
        realm_id=qbo_company.realm_id, defaults={"record_refunds_for_me": True}
    )
    manual_item_record_in_quickbooks(item_id=ManualHandlingItem.objects.get(payment=payment).pk, user=None)
    billing_services.invoice_void(invoice=invoice)
    qbo_company.server.add_fault("drop_after_commit", count=1, path_contains="/invoice", method="POST")

    with pytest.raises(QuickBooksError) as excinfo:  # the connection dropped after QuickBooks voided it
        invoice_void_push(invoice_id=invoice.pk)
    assert excinfo.value.retryable
    assert QuickBooksRequest.objects.get(kind="void").state == "pending"

    assert invoice_void_push(invoice_id=invoice.pk) == "voided"
    assert QuickBooksRequest.objects.get(kind="void").state == "done"
    row = qbo_invoice(qbo_company, "INV-7002")
    assert (
        row["PrivateNote"].startswith("Voided")
        and row["SyncToken"] == QuickBooksRequest.objects.get(kind="void").response["SyncToken"]
    )


def test_an_invoice_never_exported_sends_nothing(qbo_company, django_capture_on_commit_callbacks):
    invoice = issued_invoice(amount="50.00")
    with django_capture_on_commit_callbacks(execute=True):
        billing_services.invoice_void(invoice=invoice)
    assert not OrmQ.objects.exists()
    assert invoice_void_push(invoice_id=invoice.pk) == "not_exported"
