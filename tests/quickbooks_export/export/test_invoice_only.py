"""An invoice with nothing to pay ($0.00, no payment: warranty work) goes to QuickBooks on its own, invoice-only,
exactly once, with its customer and items, and QuickBooks' copy checked to total 0.00 with nothing open."""

import datetime
from decimal import Decimal

import pytest
from django_q.models import OrmQ

from billing import services as billing_services
from billing.models import Invoice
from fieldsync.exceptions import ApplicationError
from quickbooks_export import tasks
from quickbooks_export.auto_export import (
    AUTO_EXPORT_TASK,
    auto_export_settings_update,
    auto_export_start,
    auto_export_summary_build,
)
from quickbooks_export.models import (
    AutoExportSettings,
    ExportAttempt,
    ExportBatch,
    ExportBatchItem,
    QuickBooksMapping,
    QuickBooksRequest,
)
from quickbooks_export.services import (
    export_all_exportable_start,
    export_batch_retry_failed,
    export_batch_start,
    export_invoice_start,
)
from tests.factories import CustomerFactory, issued_invoice, pay

from .conftest import drain

pytestmark = pytest.mark.django_db


def warranty_invoice(number: str = "INV-W1", customer=None) -> Invoice:
    """Issued through the services: one $0.00 line of warranty work, settled at issue."""
    invoice = billing_services.invoice_create(
        customer=customer or CustomerFactory(),
        number=number,
        lines=[billing_services.LineInput(service_name="Warranty repair", unit_price="0.00")],
    )
    return billing_services.invoice_issue(invoice=invoice, issued_on=datetime.date(2026, 11, 2))


def qbo_invoices(company, number: str) -> list[dict]:
    return [row for row in company.entities("Invoice") if row.get("DocNumber") == number]


def export_invoices(*invoices: Invoice, selection: str = "test"):
    batch = export_batch_start(invoices=[i.pk for i in invoices], selection=selection, source="command")
    drain(batch.realm_id)
    batch.refresh_from_db()
    return batch


def test_a_zero_invoice_is_settled_at_issue():
    invoice = warranty_invoice()
    assert invoice.status == Invoice.Status.PAID


def test_a_zero_invoice_goes_to_quickbooks_once_with_its_customer_and_item(qbo_company):
    invoice = warranty_invoice()

    batch = export_invoices(invoice)

    [row] = qbo_invoices(qbo_company, "INV-W1")
    assert Decimal(str(row["TotalAmt"])) == Decimal("0.00") and Decimal(str(row["Balance"])) == Decimal("0.00")
    [customer] = [c for c in qbo_company.entities("Customer") if c["Id"] == row["CustomerRef"]["value"]]
    assert customer["DisplayName"] == invoice.customer.display_name
    assert [i["Name"] for i in qbo_company.entities("Item") if i["Name"] == "Warranty repair"] == ["Warranty repair"]
    assert not qbo_company.entities("Payment")
    [item] = ExportBatchItem.objects.filter(batch=batch)
    assert (item.invoice_id, item.payment_id, item.outcome, item.qbo_id) == (invoice.pk, None, "created", row["Id"])
    assert batch.status == "finished"
    operations = set(ExportAttempt.objects.filter(invoice=invoice).values_list("operation", flat=True))
    assert {"create Customer", "create Invoice (batch)"} <= operations

    # Asked again: already there, nothing sent.
    again = export_invoices(invoice)
    assert len(qbo_invoices(qbo_company, "INV-W1")) == 1
    assert ExportBatchItem.objects.get(batch=again).outcome == "linked"


def test_a_lost_answer_is_replayed_and_creates_one_invoice(qbo_company):
    invoice = warranty_invoice("INV-W2")
    qbo_company.server.add_fault("drop_after_commit", count=1, path_contains="/batch")

    batch = export_invoices(invoice)

    assert qbo_company.server.stats(qbo_company.realm_id)["dropped"] == 1
    assert len(qbo_invoices(qbo_company, "INV-W2")) == 1
    assert ExportBatchItem.objects.get(batch=batch).outcome == "created"
    assert not QuickBooksRequest.objects.filter(state="pending").exists()
    assert QuickBooksMapping.objects.filter(kind="invoice", local_key=str(invoice.pk)).count() == 1


def test_two_batches_asking_at_once_make_one_invoice(qbo_company):
    invoice = warranty_invoice("INV-W3")
    first = export_batch_start(invoices=[invoice.pk], selection="a", source="command")
    second = export_batch_start(invoices=[invoice.pk], selection="b", source="command")
    drain(first.realm_id)

    assert len(qbo_invoices(qbo_company, "INV-W3")) == 1
    outcomes = [ExportBatchItem.objects.get(batch=b).outcome for b in (first, second)]
    assert outcomes == ["created", "linked"]


def test_an_invoice_with_something_to_pay_is_refused_with_the_reason(qbo_company):
    unpaid = issued_invoice(amount="50.00", number="INV-U1")

    with pytest.raises(ApplicationError) as refused:
        export_invoice_start(invoice_id=unpaid.pk)

    assert refused.value.code == "invoice_has_something_to_pay"
    assert "INV-U1 totals $50.00" in refused.value.message and "goes with its payment" in refused.value.message
    assert not ExportBatchItem.objects.exists()


def test_everything_exportable_takes_zero_invoices_not_in_quickbooks_yet(qbo_company):
    warranty = warranty_invoice("INV-W4")
    paid = issued_invoice(amount="80.00", number="INV-P4")
    payment = pay(paid, "80.00")

    batch = export_all_exportable_start(source="command")
    drain(batch.realm_id)

    assert len(qbo_invoices(qbo_company, "INV-W4")) == 1 and len(qbo_invoices(qbo_company, "INV-P4")) == 1
    kinds = sorted((i.payment_id is not None, i.outcome) for i in ExportBatchItem.objects.filter(batch=batch))
    assert kinds == [(False, "created"), (True, "created")]
    payment.refresh_from_db()
    assert payment.export_status == "exported"
    # Once in QuickBooks, "everything exportable" no longer offers it.
    with pytest.raises(ApplicationError):
        export_all_exportable_start(source="command")
    assert warranty.pk


def test_a_voided_quickbooks_invoice_with_the_number_is_not_linked(qbo_company):
    invoice = warranty_invoice("INV-W5")
    export_invoices(invoice)
    [row] = qbo_invoices(qbo_company, "INV-W5")
    qbo_company.server.edit_entity(qbo_company.realm_id, "Invoice", row["Id"], {"PrivateNote": "Voided"})
    QuickBooksMapping.objects.filter(kind="invoice", local_key=str(invoice.pk)).delete()

    batch = export_invoices(invoice)

    item = ExportBatchItem.objects.get(batch=batch)
    assert item.outcome == "failed" and "is voided" in item.message
    assert len(qbo_invoices(qbo_company, "INV-W5")) == 1
    subject, body = auto_export_summary_build()  # the morning e-mail lists it for a person
    assert subject.startswith("FieldSync: 1 failed") and "invoice INV-W5 (nothing to pay)" in body

    # Renumbered in QuickBooks as the message says; the batch's retry sends it again.
    qbo_company.server.edit_entity(qbo_company.realm_id, "Invoice", row["Id"], {"DocNumber": "INV-W5-void"})
    retry = export_batch_retry_failed(batch_id=batch.pk)
    drain(retry.realm_id)
    assert auto_export_summary_build() is None
    [new_row] = qbo_invoices(qbo_company, "INV-W5")
    assert new_row["Id"] != row["Id"] and Decimal(str(new_row["TotalAmt"])) == 0
    assert ExportBatchItem.objects.get(batch=retry).outcome == "created"


def test_automatic_export_sends_a_zero_invoice_once_when_it_is_issued(qbo_company, django_capture_on_commit_callbacks):
    auto_export_settings_update(
        realm_id=qbo_company.realm_id, mode=AutoExportSettings.Mode.WHEN_PAID, nightly_at=None, user=None
    )
    with django_capture_on_commit_callbacks(execute=True):
        invoice = warranty_invoice("INV-W6")  # settled at issue: the invoice_paid listener queues a run
    queued = [row.task["args"] for row in OrmQ.objects.all() if row.task["func"] == AUTO_EXPORT_TASK]
    assert queued == [("when_paid", qbo_company.realm_id)]  # one schedule per company
    [batch_id] = [tasks.auto_export_task("when_paid", qbo_company.realm_id)]
    drain(qbo_company.realm_id)

    batch = ExportBatch.objects.get(pk=batch_id)
    assert batch.source == "automatic" and "1 invoice with nothing to pay" in batch.selection
    [row] = qbo_invoices(qbo_company, "INV-W6")
    assert Decimal(str(row["TotalAmt"])) == 0 and Decimal(str(row["Balance"])) == 0
    assert auto_export_start() is None  # in QuickBooks now: nothing new
    assert ExportBatchItem.objects.get(invoice=invoice).outcome == "created"
