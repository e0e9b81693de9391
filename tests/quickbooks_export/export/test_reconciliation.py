"""The reconciliation report against the sandbox through the real client: records exported by the engine, then
changed by hand in QuickBooks, are found — exactly those — with the QuickBooks reads it cost."""

import datetime
import importlib
from decimal import Decimal

import pytest
from django.apps import apps
from django.utils import timezone
from django.utils.module_loading import import_string
from django_q.models import OrmQ, Schedule

from billing import services as billing_services
from billing.models import ManualHandlingItem
from fieldsync.exceptions import ApplicationError, ConflictError
from quickbooks_export import client as client_module
from quickbooks_export.client import QuickBooksClient, id_chunks
from quickbooks_export.models import QuickBooksMapping, QuickBooksMappingSettings, ReconciliationRun
from quickbooks_export.reconciliation import reconciliation_run, reconciliation_start
from quickbooks_export.refund_recording import manual_item_record_in_quickbooks
from quickbooks_export.tasks import RECONCILIATION_TASK
from quickbooks_export.voids import invoice_void_push
from tests.factories import CustomerFactory, issued_invoice, pay

from .conftest import export
from .test_voids import exported_then_reversed

pytestmark = pytest.mark.django_db

NOVEMBER = {"date_from": datetime.date(2026, 11, 1), "date_to": datetime.date(2026, 11, 30)}


def run_now(**dates) -> ReconciliationRun:
    run = reconciliation_start(**(dates or NOVEMBER), trigger="command", enqueue=False)
    return reconciliation_run(run_id=run.pk, sleep=lambda seconds: None)


@pytest.fixture
def exported(qbo_company):
    """Four invoices of $40.00 (invoice date Nov 1), each paid in full (Nov 10), all exported."""
    invoices = [issued_invoice(amount="40.00") for _ in range(4)]
    payments = [pay(invoice, "40.00") for invoice in invoices]
    export(*payments)
    for payment in payments:
        payment.refresh_from_db()
    return invoices, payments


def qbo_invoice_id(company, invoice) -> str:
    [row] = [row for row in company.entities("Invoice") if row["DocNumber"] == invoice.number]
    return row["Id"]


def test_a_run_over_untouched_exports_matches_everything_in_two_reads(qbo_company, exported):
    before = qbo_company.server.stats(qbo_company.realm_id)["requests"]

    run = run_now()

    assert (run.state, run.invoices_checked, run.payments_checked, run.discrepancies) == ("done", 4, 4, 0)
    assert run.quickbooks_reads == 2  # one query for the invoices, one for the payments
    assert qbo_company.server.stats(qbo_company.realm_id)["requests"] - before == 2
    assert all(row.ok and row.problems == [] for row in run.rows.all())


def test_changes_made_by_hand_in_quickbooks_are_found_exactly(qbo_company, exported):
    (a, b, c, d), (p1, p2, p3, p4) = exported
    server, realm = qbo_company.server, qbo_company.realm_id
    # Payment 1 deleted; invoice B's amount changed to $50.00; invoice C voided (its payment taken off it first:
    # QuickBooks will not void an invoice with payments applied).
    server.delete_entity(realm, "Payment", p1.export_reference)
    b_id = qbo_invoice_id(qbo_company, b)
    [b_row] = [row for row in qbo_company.entities("Invoice") if row["Id"] == b_id]
    lines = [line for line in b_row["Line"] if line.get("DetailType") == "SalesItemLineDetail"]
    lines[0]["Amount"], lines[0]["SalesItemLineDetail"]["UnitPrice"] = 50, 50
    server.edit_entity(realm, "Invoice", b_id, {"Line": lines})
    server.edit_entity(realm, "Payment", p3.export_reference, {"Line": []})
    c_id = qbo_invoice_id(qbo_company, c)
    [c_row] = [row for row in qbo_company.entities("Invoice") if row["Id"] == c_id]
    QuickBooksClient.for_current_connection().void("Invoice", id=c_id, sync_token=c_row["SyncToken"])
    before = server.stats(realm)["requests"]

    run = run_now()

    found = {(row.label, tuple(row.problems)) for row in run.rows.filter(ok=False)}
    assert found == {
        (f"Payment #{p1.pk}", ("missing",)),
        (a.number, ("balance",)),  # its payment is gone from QuickBooks: $40.00 open there
        (b.number, ("amount", "balance")),
        (c.number, ("voided",)),
        (f"Payment #{p3.pk}", ("links",)),
    }
    assert {row.label for row in run.rows.filter(ok=True)} == {d.number, f"Payment #{p2.pk}", f"Payment #{p4.pk}"}
    assert (run.discrepancies, run.quickbooks_reads) == (5, 2)
    assert server.stats(realm)["requests"] - before == 2
    b_row = run.rows.get(label=b.number)
    assert (b_row.our_amount, b_row.qbo_amount, b_row.our_balance, b_row.qbo_balance) == (
        Decimal("40.00"),
        Decimal("50.00"),
        Decimal("0.00"),
        Decimal("10.00"),
    )
    assert "QuickBooks shows Invoice " + b.number + " at $50.00; FieldSync has $40.00" in b_row.explanation
    p3_row = run.rows.get(label=f"Payment #{p3.pk}")
    assert (p3_row.qbo_links, p3_row.our_links) == ("no invoice", f"{c.number} $40.00")
    assert "deleted there" in run.rows.get(label=f"Payment #{p1.pk}").explanation


def test_only_records_dated_in_the_range_are_checked(qbo_company, exported):
    run = run_now(date_from=datetime.date(2026, 11, 5), date_to=datetime.date(2026, 11, 30))

    assert (run.invoices_checked, run.payments_checked, run.quickbooks_reads) == (0, 4, 1)


def test_reads_are_batched_by_a_thousand_and_split_by_statement_length(qbo_company, exported, monkeypatch):
    assert [len(chunk) for chunk in id_chunks("Invoice", [str(i) for i in range(1, 2501)])] == [1000, 1000, 500]
    monkeypatch.setattr(client_module, "QUERY_MAX_CHARS", 62)  # room for one short quoted id per statement

    run = run_now()

    assert run.quickbooks_reads == 8 and run.discrepancies == 0


def test_quickbooks_refusing_to_answer_fails_the_run_with_the_reason(qbo_company, exported):
    qbo_company.server.add_fault("500", count=10, path_contains="/query")

    run = run_now()

    assert run.state == "failed" and "QuickBooks could not be read" in run.message
    assert not run.rows.exists() and run.quickbooks_reads == 4  # the first try and three retries


def test_a_bad_range_or_a_run_under_way_is_refused_and_nothing_is_queued(qbo_company):
    with pytest.raises(ApplicationError, match="after the last"):
        reconciliation_start(date_from=datetime.date(2026, 12, 2), date_to=datetime.date(2026, 12, 1), trigger="page")
    with pytest.raises(ApplicationError, match="at most 366 days"):
        reconciliation_start(date_from=datetime.date(2025, 1, 1), date_to=datetime.date(2026, 12, 1), trigger="page")
    reconciliation_start(**NOVEMBER, trigger="page", enqueue=False)
    with pytest.raises(ConflictError, match="still under way"):
        reconciliation_start(**NOVEMBER, trigger="page")
    assert ReconciliationRun.objects.count() == 1 and not OrmQ.objects.exists()


def test_a_started_run_is_queued_after_commit_and_a_second_delivery_does_nothing(
    qbo_company, exported, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        run = reconciliation_start(**NOVEMBER, trigger="page")
    assert [row.task["func"] for row in OrmQ.objects.all()] == [RECONCILIATION_TASK]

    first = reconciliation_run(run_id=run.pk)
    second = reconciliation_run(run_id=run.pk)

    assert first.state == second.state == "done" and second.rows.count() == 8
    assert second.quickbooks_reads == 2


def test_the_nightly_schedule_reconciles_the_last_35_days(qbo_company, exported):
    # The data migration's schedule (re-created here: a transactional test elsewhere may have flushed the table).
    importlib.import_module("quickbooks_export.migrations.0010_reconciliation").add_schedule(apps, None)
    schedule = Schedule.objects.get(name="quickbooks-reconciliation-nightly")
    assert (schedule.schedule_type, schedule.repeats) == (Schedule.DAILY, -1)
    assert timezone.localtime(schedule.next_run).time() == datetime.time(3, 0)
    today = timezone.localdate()

    [run_id] = import_string(schedule.func)()  # what the worker does with it: one run per connected company

    run = ReconciliationRun.objects.get(pk=run_id)
    assert (run.trigger, run.date_from, run.date_to) == ("nightly", today - datetime.timedelta(days=34), today)
    in_range = [i for i in exported[0] if run.date_from <= i.issued_on <= run.date_to]
    assert run.state == "done" and run.invoices_checked == len(in_range)


def test_an_invoice_moved_to_another_customer_in_quickbooks_is_found(qbo_company):
    ada, bo = CustomerFactory(display_name="Ada Plumbing"), CustomerFactory(display_name="Bo Heating")
    moved = issued_invoice(customer=ada, amount="40.00")
    payment = pay(moved, "40.00")
    export(payment, pay(issued_invoice(customer=bo, amount="30.00"), "30.00"))
    payment.refresh_from_db()
    bo_qbo_id = QuickBooksMapping.objects.get(kind="customer", local_key=str(bo.pk)).qbo_id
    # QuickBooks moves an invoice to another customer only once no payment is applied to it.
    qbo_company.server.delete_entity(qbo_company.realm_id, "Payment", payment.export_reference)
    qbo_company.server.edit_entity(
        qbo_company.realm_id, "Invoice", qbo_invoice_id(qbo_company, moved), {"CustomerRef": {"value": bo_qbo_id}}
    )

    run = run_now()

    found = {row.label: row for row in run.rows.filter(ok=False)}
    assert {label: row.problems for label, row in found.items()} == {
        moved.number: ["balance", "customer"],
        f"Payment #{payment.pk}": ["missing"],
    }
    row = found[moved.number]
    assert "FieldSync's Ada Plumbing" in row.explanation and f"QuickBooks customer {bo_qbo_id}" in row.explanation


def test_an_invoice_and_payment_voided_in_fieldsync_only_are_reported_in_plain_words(qbo_company):
    # Exported together; then the check bounced (the whole payment reversed in FieldSync) and the invoice was voided
    # in FieldSync. Neither has reached QuickBooks: the void's push runs after commit, which never comes here.
    invoice, payment = exported_then_reversed(qbo_company, number="INV-7101")
    billing_services.invoice_void(invoice=invoice)

    run = run_now()

    rows = {row.label: row for row in run.rows.all()}
    invoice_row, payment_row = rows["INV-7101"], rows[f"Payment #{payment.pk}"]
    assert (invoice_row.ok, invoice_row.problems, payment_row.ok, payment_row.problems) == (
        False,
        ["not_voided"],
        False,
        ["not_voided"],
    )
    assert invoice_row.explanation == (
        "Invoice INV-7101 is voided in FieldSync but not in QuickBooks, where it is still $200.00 ($0.00 open). Void "
        "it in QuickBooks too (QuickBooks voids an invoice only once no payment is applied to it there)."
    )
    assert payment_row.explanation == (
        f"Payment #{payment.pk} ($200.00, {payment.customer.display_name}) was reversed in full in FieldSync (a "
        "bounced check, chargeback or wrong charge), but QuickBooks still has it at $200.00, paying INV-7101 $200.00. "
        "Void it in QuickBooks (Needs manual handling lists it; FieldSync records it for you there when the "
        "QuickBooks settings allow)."
    )
    assert run.discrepancies == 2 and run.quickbooks_reads == 2

    # FieldSync records the reversal (it voids the QuickBooks payment), then pushes the invoice's void: both match.
    QuickBooksMappingSettings.objects.update_or_create(
        realm_id=qbo_company.realm_id, defaults={"record_refunds_for_me": True}
    )
    manual_item_record_in_quickbooks(item_id=ManualHandlingItem.objects.get(payment=payment).pk, user=None)
    assert invoice_void_push(invoice_id=invoice.pk) == "voided"

    again = run_now()

    assert again.discrepancies == 0 and again.rows.filter(ok=True).count() == 2
