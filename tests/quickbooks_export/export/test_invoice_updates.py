"""Changes after export: an exported invoice edited in FieldSync reaches QuickBooks as a sparse update through the
real python-quickbooks client — never overwriting what someone changed in QuickBooks, never blanking a field, never
leaving QuickBooks' invoice below the payments applied to it."""

import datetime
from decimal import Decimal

import pytest
from django_q.models import OrmQ

from billing import services as billing_services
from billing.models import Invoice
from fieldsync.exceptions import ApplicationError
from quickbooks_export.client import QuickBooksClient
from quickbooks_export.errors import QuickBooksError
from quickbooks_export.invoice_updates import PUSH_TASK, invoice_update_push
from quickbooks_export.models import QuickBooksChange, QuickBooksMapping, QuickBooksMappingAudit, QuickBooksRequest
from tests.factories import CustomerFactory, issued_invoice, pay

from .conftest import export

pytestmark = pytest.mark.django_db
LineEdit = billing_services.LineEdit


@pytest.fixture
def exported_invoice(qbo_company) -> Invoice:
    """INV of one Labor line of 100.00, paid in full and exported (QuickBooks has the invoice and its payment)."""
    invoice = issued_invoice(customer=CustomerFactory(display_name="Maria Gonzalez"), amount="100.00")
    billing_services.invoice_edit(invoice=invoice, due_on=datetime.date(2026, 12, 1))  # before export: not pushed
    export(pay(invoice, "100.00"))
    invoice.refresh_from_db()
    return invoice


def qbo_invoice(company, invoice) -> dict:
    mapping = QuickBooksMapping.objects.get(kind="invoice", local_key=str(invoice.pk))
    return next(row for row in company.entities("Invoice") if row["Id"] == mapping.qbo_id)


def item_lines(row: dict) -> list[tuple]:
    return [
        (line["Description"], Decimal(str(line["Amount"])))
        for line in row["Line"]
        if line["DetailType"] == "SalesItemLineDetail"
    ]


def with_extra_labor(invoice: Invoice, amount: str = "40.00", **changes) -> Invoice:
    [line] = invoice.lines.all()
    return billing_services.invoice_edit(
        invoice=invoice,
        lines=[
            LineEdit(line_id=line.pk, service_name="Labor", unit_price="100.00"),
            LineEdit(service_name="Labor", description="Second visit", unit_price=amount),
        ],
        **changes,
    )


def queued_pushes() -> list:
    return [row.task["args"] for row in OrmQ.objects.all() if row.task["func"] == PUSH_TASK]


def test_an_edit_of_an_exported_invoice_is_pushed_as_a_sparse_update(
    qbo_company, exported_invoice, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        with_extra_labor(exported_invoice, issued_on=datetime.date(2026, 11, 3))
    assert queued_pushes() == [(exported_invoice.pk,)]
    exported_invoice.refresh_from_db()
    assert exported_invoice.changed_at is not None and exported_invoice.status == Invoice.Status.OPEN

    assert invoice_update_push(invoice_id=exported_invoice.pk) == "updated"

    row = qbo_invoice(qbo_company, exported_invoice)
    assert item_lines(row) == [("Labor", Decimal("100.00")), ("Second visit", Decimal("40.00"))]
    assert Decimal(str(row["TotalAmt"])) == Decimal("140.00")
    assert Decimal(str(row["Balance"])) == Decimal("40.00")  # the exported 100.00 payment stays applied
    assert row["TxnDate"] == "2026-11-03"
    assert row["DueDate"] == "2026-12-01"
    [request] = QuickBooksRequest.objects.filter(kind="update", local_key=f"invoice:{exported_invoice.pk}")
    assert request.state == "done" and request.payload["sparse"] is True
    assert "DueDate" not in request.payload  # unchanged parts are not sent
    mapping = QuickBooksMapping.objects.get(kind="invoice", local_key=str(exported_invoice.pk))
    assert mapping.sync_token == row["SyncToken"]
    assert QuickBooksMappingAudit.objects.filter(action="update_invoice", local_key=str(exported_invoice.pk)).exists()
    assert not QuickBooksChange.objects.exists()

    assert invoice_update_push(invoice_id=exported_invoice.pk) == "unchanged"  # run twice: nothing more sent
    assert QuickBooksRequest.objects.filter(kind="update").count() == 1


def test_an_empty_value_in_fieldsync_never_blanks_quickbooks(qbo_company, exported_invoice):
    """FieldSync never clears a date; a line without a description sends its service name, never an empty text."""
    qbo_id = qbo_invoice(qbo_company, exported_invoice)["Id"]
    [line] = exported_invoice.lines.all()
    billing_services.invoice_edit(
        invoice=exported_invoice,
        lines=[LineEdit(line_id=line.pk, service_name="Labor", description="", quantity="2", unit_price="60.00")],
        issued_on=None,
        due_on=None,
    )

    assert invoice_update_push(invoice_id=exported_invoice.pk) == "updated"

    row = next(r for r in qbo_company.entities("Invoice") if r["Id"] == qbo_id)
    assert item_lines(row) == [("Labor", Decimal("120.00"))]
    assert (row["TxnDate"], row["DueDate"]) == ("2026-11-01", "2026-12-01")


def test_an_invoice_changed_elsewhere_in_quickbooks_gets_only_our_part_at_its_current_synctoken(
    qbo_company, exported_invoice
):
    before = qbo_invoice(qbo_company, exported_invoice)
    qbo_company.server.edit_entity(qbo_company.realm_id, "Invoice", before["Id"], {"CustomerMemo": {"value": "Thanks"}})
    with_extra_labor(exported_invoice)

    assert invoice_update_push(invoice_id=exported_invoice.pk) == "updated"

    row = qbo_invoice(qbo_company, exported_invoice)
    assert Decimal(str(row["TotalAmt"])) == Decimal("140.00")
    assert row["CustomerMemo"]["value"] == "Thanks"  # what the person typed in QuickBooks stays
    assert int(row["SyncToken"]) == int(before["SyncToken"]) + 2


def test_an_invoice_changed_on_both_sides_is_not_sent_and_is_flagged_for_a_person(qbo_company, exported_invoice):
    qbo_id = qbo_invoice(qbo_company, exported_invoice)["Id"]
    qbo_company.server.edit_entity(qbo_company.realm_id, "Invoice", qbo_id, {"DueDate": "2026-12-24"})
    billing_services.invoice_edit(invoice=exported_invoice, due_on=datetime.date(2026, 12, 15))

    assert invoice_update_push(invoice_id=exported_invoice.pk) == "flagged"

    assert qbo_invoice(qbo_company, exported_invoice)["DueDate"] == "2026-12-24"
    assert not QuickBooksRequest.objects.filter(kind="update").exists()
    [change] = QuickBooksChange.objects.filter(state="open")
    assert (change.change, change.kind, change.qbo_id) == ("edit_held", "invoice", qbo_id)
    assert "changed in QuickBooks since FieldSync last sent it (due date)" in change.theirs["note"]


def test_a_stale_synctoken_at_send_time_is_read_and_compared_again_not_overwritten(
    qbo_company, exported_invoice, monkeypatch
):
    """Someone edits the invoice in QuickBooks between FieldSync's read and its write: QuickBooks answers 5010."""
    real_read, edited = QuickBooksClient.read, []

    def read_then_someone_edits(self, entity, id):
        row = real_read(self, entity, id)
        if entity == "Invoice" and not edited:
            memo = {"CustomerMemo": {"value": "Gate 4"}}
            edited.append(qbo_company.server.edit_entity(qbo_company.realm_id, "Invoice", id, memo))
        return row

    monkeypatch.setattr(QuickBooksClient, "read", read_then_someone_edits)
    with_extra_labor(exported_invoice)

    assert invoice_update_push(invoice_id=exported_invoice.pk) == "updated"

    row = qbo_invoice(qbo_company, exported_invoice)
    assert (Decimal(str(row["TotalAmt"])), row["CustomerMemo"]["value"]) == (Decimal("140.00"), "Gate 4")
    states = sorted(QuickBooksRequest.objects.filter(kind="update").values_list("state", "last_error"))
    assert states == [("done", ""), ("failed", "5010: changed in QuickBooks meanwhile; compared again")]


def test_a_stale_synctoken_whose_change_touches_our_part_is_flagged_not_overwritten(
    qbo_company, exported_invoice, monkeypatch
):
    real_read, edited = QuickBooksClient.read, []

    def read_then_someone_changes_the_due_date(self, entity, id):
        row = real_read(self, entity, id)
        if entity == "Invoice" and not edited:
            edited.append(
                qbo_company.server.edit_entity(qbo_company.realm_id, "Invoice", id, {"DueDate": "2027-01-05"})
            )
        return row

    monkeypatch.setattr(QuickBooksClient, "read", read_then_someone_changes_the_due_date)
    billing_services.invoice_edit(invoice=exported_invoice, due_on=datetime.date(2026, 12, 20))

    assert invoice_update_push(invoice_id=exported_invoice.pk) == "flagged"

    assert qbo_invoice(qbo_company, exported_invoice)["DueDate"] == "2027-01-05"
    assert QuickBooksChange.objects.get(state="open").change == "edit_held"


def test_an_update_below_what_quickbooks_has_applied_is_not_sent(qbo_company, exported_invoice):
    """FieldSync refunded part of the payment (so its own rule allows a lower total), but QuickBooks still has the
    whole payment applied: the lower total would leave QuickBooks' invoice below its payments."""
    payment = exported_invoice.applications.get().payment
    billing_services.refund_record(
        payment=payment,
        amount="30.00",
        reason="Chargeback",
        refunded_on=datetime.date(2026, 11, 20),
        method="check",
        kind="reversal",
        invoice=exported_invoice,
    )
    [line] = exported_invoice.lines.all()
    billing_services.invoice_edit(
        invoice=exported_invoice, lines=[LineEdit(line_id=line.pk, service_name="Labor", unit_price="80.00")]
    )
    qbo_before = qbo_invoice(qbo_company, exported_invoice)

    assert invoice_update_push(invoice_id=exported_invoice.pk) == "flagged"

    assert qbo_invoice(qbo_company, exported_invoice)["SyncToken"] == qbo_before["SyncToken"]
    change = QuickBooksChange.objects.get(state="open", change="edit_held")
    assert "QuickBooks has $100.00 of payments applied" in change.theirs["note"]
    assert not QuickBooksRequest.objects.filter(kind="update").exists()


def test_an_edit_below_the_payments_is_refused_with_the_reason_and_changes_nothing(
    qbo_company, exported_invoice, django_capture_on_commit_callbacks
):
    [line] = exported_invoice.lines.all()
    changed_at = exported_invoice.changed_at
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(ApplicationError) as excinfo:
        billing_services.invoice_edit(
            invoice=exported_invoice, lines=[LineEdit(line_id=line.pk, service_name="Labor", unit_price="90.00")]
        )

    assert excinfo.value.code == "below_paid"
    assert "would total $90.00, less than the $100.00 paid on it; nothing was changed" in excinfo.value.message
    line.refresh_from_db()
    exported_invoice.refresh_from_db()
    assert line.amount == Decimal("100.00") and exported_invoice.changed_at == changed_at
    assert queued_pushes() == []


def test_a_new_service_not_yet_in_quickbooks_is_flagged_not_sent(qbo_company, exported_invoice):
    [line] = exported_invoice.lines.all()
    billing_services.invoice_edit(
        invoice=exported_invoice,
        lines=[
            LineEdit(line_id=line.pk, service_name="Labor", unit_price="100.00"),
            LineEdit(service_name="Water heater", unit_price="650.00"),
        ],
    )

    assert invoice_update_push(invoice_id=exported_invoice.pk) == "flagged"

    assert "no QuickBooks item for water heater" in QuickBooksChange.objects.get(state="open").theirs["note"]


def test_a_lost_answer_is_resent_unchanged_and_updates_once(qbo_company, exported_invoice):
    with_extra_labor(exported_invoice)
    qbo_company.server.add_fault("drop_after_commit", count=1, path_contains="/invoice", method="POST")

    with pytest.raises(QuickBooksError) as excinfo:
        invoice_update_push(invoice_id=exported_invoice.pk)
    assert excinfo.value.retryable
    token_after_first = qbo_invoice(qbo_company, exported_invoice)["SyncToken"]

    assert invoice_update_push(invoice_id=exported_invoice.pk) == "updated"

    [request] = QuickBooksRequest.objects.filter(kind="update")
    assert request.state == "done"
    assert qbo_invoice(qbo_company, exported_invoice)["SyncToken"] == token_after_first  # performed once


def test_an_invoice_not_in_quickbooks_queues_nothing(qbo_company, django_capture_on_commit_callbacks):
    invoice = issued_invoice(amount="100.00")
    with django_capture_on_commit_callbacks(execute=True):
        billing_services.invoice_edit(invoice=invoice, due_on=datetime.date(2026, 12, 1))

    assert queued_pushes() == []
    assert invoice_update_push(invoice_id=invoice.pk) == "not_exported"


def test_a_tax_added_after_export_reaches_quickbooks_and_its_total_is_compared(qbo_company, exported_invoice):
    billing_services.invoice_edit(invoice=exported_invoice, sales_tax="8.00")

    assert invoice_update_push(invoice_id=exported_invoice.pk) == "updated"

    row = qbo_invoice(qbo_company, exported_invoice)
    # QuickBooks computed its answer (the tax code's amount overridden by ours, Intuit's US sales tax rules), and
    # its TotalAmt equals FieldSync's, so nothing is flagged.
    assert (Decimal(str(row["TxnTaxDetail"]["TotalTax"])), Decimal(str(row["TotalAmt"]))) == (
        Decimal("8.00"),
        Decimal("108.00"),
    )
    assert Decimal(str(row["Balance"])) == Decimal("8.00")
    assert not QuickBooksChange.objects.exists()


def test_the_flag_and_its_reason_are_on_the_changed_in_quickbooks_page(qbo_company, exported_invoice, admin_client):
    qbo_id = qbo_invoice(qbo_company, exported_invoice)["Id"]
    qbo_company.server.edit_entity(qbo_company.realm_id, "Invoice", qbo_id, {"DueDate": "2026-12-24"})
    billing_services.invoice_edit(invoice=exported_invoice, due_on=datetime.date(2026, 12, 15))
    assert invoice_update_push(invoice_id=exported_invoice.pk) == "flagged"

    from django.urls import reverse

    html = admin_client.get(reverse("exports:changes")).content.decode()

    assert "Changed in FieldSync, not in QuickBooks" in html
    assert f"{exported_invoice.number} was changed in QuickBooks since FieldSync last sent it (due date)" in html


def test_a_total_quickbooks_computes_differently_is_flagged_after_the_update(qbo_sandbox, settings):
    """A company with manual sales tax and no tax code chosen for FieldSync's tax: QuickBooks takes the new lines but
    computes its own tax (none), so its TotalAmt differs from FieldSync's — compared, and flagged for a person."""
    from .conftest import connect

    company = connect(qbo_sandbox, settings, profile="us-manual-tax")
    invoice = issued_invoice(amount="100.00")
    export(pay(invoice, "100.00"))
    billing_services.invoice_edit(invoice=invoice, sales_tax="8.00")

    assert invoice_update_push(invoice_id=invoice.pk) == "flagged"

    row = qbo_invoice(company, invoice)
    assert Decimal(str(row["TotalAmt"])) == Decimal("100.00")  # QuickBooks' own computation, not ours echoed
    change = QuickBooksChange.objects.get(state="open")
    assert change.change == "edit_off" and change.ours["total"] == "108.00"
    assert "computed a total of $100.00; FieldSync has $108.00" in change.theirs["note"]
    assert QuickBooksRequest.objects.get(kind="update").state == "done"


def test_while_an_export_of_the_company_runs_the_task_waits_and_tries_again(qbo_company, exported_invoice):
    from django_q.models import Schedule

    from quickbooks_export.services import _lease_acquire, _lease_release
    from quickbooks_export.tasks import invoice_update_push_task

    with_extra_labor(exported_invoice)
    assert _lease_acquire(qbo_company.realm_id, "an export runner")

    assert invoice_update_push_task(exported_invoice.pk) == "busy"

    [retry] = Schedule.objects.filter(func=PUSH_TASK)
    assert retry.args == repr(exported_invoice.pk)
    assert Decimal(str(qbo_invoice(qbo_company, exported_invoice)["TotalAmt"])) == Decimal("100.00")  # not sent
    _lease_release(qbo_company.realm_id, "an export runner")
    assert invoice_update_push_task(exported_invoice.pk) == "updated"
