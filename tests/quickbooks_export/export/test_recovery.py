"""Recovery that never re-sends blindly: old unanswered creates are looked up by FieldSync's marker first, request ids
carry this installation and the content, a runner that lost its lease writes nothing, a transient fault inside a
batch item is retried, and an outbox request that cannot be recorded never wedges a company's exports."""

from datetime import timedelta

import pytest
from django.utils import timezone

from billing.models import Payment
from quickbooks_export import mappers
from quickbooks_export import services as engine
from quickbooks_export.models import (
    ExportAttempt,
    ExportRunnerLease,
    Installation,
    QuickBooksMapping,
    QuickBooksRequest,
)
from quickbooks_export.services import export_batch_start, export_run
from tests.factories import CustomerFactory, issued_invoice, pay

from .conftest import drain, export

pytestmark = pytest.mark.django_db
S = Payment.ExportStatus
PENDING = QuickBooksRequest.State.PENDING


def three_paid_invoices():
    customer = CustomerFactory()
    return [pay(issued_invoice(customer=customer, amount=f"{100 + i}.00"), f"{100 + i}.00") for i in range(3)]


def assert_exported_once(company, payments):
    qbo = company.entities("Payment")
    assert len(qbo) == len(payments), qbo
    for payment in payments:
        payment.refresh_from_db()
        assert payment.export_status == S.EXPORTED
    assert sorted(p.export_reference for p in payments) == sorted(p["Id"] for p in qbo)
    assert not QuickBooksRequest.objects.filter(state=PENDING).exists()


def a_day_passes():
    QuickBooksRequest.objects.filter(state=PENDING).update(created_at=timezone.now() - timedelta(days=1))


def test_payments_whose_answer_was_lost_and_request_id_forgotten_are_adopted_a_day_later(qbo_company, monkeypatch):
    payments = three_paid_invoices()
    real_record = engine._record_mappings  # what a batch answer is recorded through

    def die_on_payments(run, rows):
        if any(kind == "payment" for kind, _, _ in rows):
            raise RuntimeError("worker killed")  # QuickBooks created them; FieldSync never saw the answer
        return real_record(run, rows)

    monkeypatch.setattr(engine, "_record_mappings", die_on_payments)
    export_batch_start(payments=[p.pk for p in payments], selection="all", source="command")
    with pytest.raises(RuntimeError):
        export_run(realm_id=qbo_company.realm_id, sleep=lambda s: None)
    monkeypatch.setattr(engine, "_record_mappings", real_record)
    assert QuickBooksRequest.objects.filter(state=PENDING).count() == 1

    assert qbo_company.server.forget_request_ids(qbo_company.realm_id) > 0
    a_day_passes()
    drain(qbo_company.realm_id)

    assert_exported_once(qbo_company, payments)  # re-sending would have created three more
    looked_up = QuickBooksRequest.objects.get(response__looked_up=True)
    assert len(looked_up.response["adopted"]) == 3 and looked_up.response["not_found"] == []
    assert "looked up in QuickBooks by FieldSync's marker" in looked_up.last_error


def test_invoices_whose_answer_was_lost_and_request_id_forgotten_are_adopted_a_day_later(qbo_company):
    payments = three_paid_invoices()
    qbo_company.server.add_fault("drop_after_commit", count=1, path_contains="/batch")
    export_batch_start(payments=[p.pk for p in payments], selection="all", source="command")
    assert export_run(realm_id=qbo_company.realm_id, run_seconds=0.5, sleep=lambda s: None) == "backoff"
    assert QuickBooksRequest.objects.filter(state=PENDING).count() == 1
    qbo_company.server.clear_faults()

    qbo_company.server.forget_request_ids(qbo_company.realm_id)
    a_day_passes()
    drain(qbo_company.realm_id)

    assert len(qbo_company.entities("Invoice")) == 3
    assert_exported_once(qbo_company, payments)


def test_a_recent_unanswered_request_is_still_re_sent_with_its_request_id(qbo_company):
    payments = three_paid_invoices()
    qbo_company.server.add_fault("drop_after_commit", count=1, path_contains="/batch")
    export_batch_start(payments=[p.pk for p in payments], selection="all", source="command")
    export_run(realm_id=qbo_company.realm_id, run_seconds=0.5, sleep=lambda s: None)
    qbo_company.server.clear_faults()

    drain(qbo_company.realm_id)

    assert not QuickBooksRequest.objects.filter(response__looked_up=True).exists()
    assert qbo_company.server.stats(qbo_company.realm_id)["replayed"] >= 1
    assert len(qbo_company.entities("Invoice")) == 3
    assert_exported_once(qbo_company, payments)


def test_request_ids_carry_the_installation_and_the_content():
    installation = Installation.current_id()
    assert Installation.current_id() == installation and len(installation) == 16
    same = mappers.request_id_for(installation, "realm", "payment", "7", 0, mappers.payload_digest({"TotalAmt": "5"}))
    assert same == mappers.request_id_for(
        installation, "realm", "payment", "7", 0, mappers.payload_digest({"TotalAmt": "5"})
    )
    # A restored backup re-using payment #7 for other content, or another installation: another id.
    assert same != mappers.request_id_for(
        installation, "realm", "payment", "7", 0, mappers.payload_digest({"TotalAmt": "6"})
    )
    assert same != mappers.request_id_for(
        "0123456789abcdef", "realm", "payment", "7", 0, mappers.payload_digest({"TotalAmt": "5"})
    )


def test_a_transient_fault_inside_a_batch_item_is_retried_not_failed(qbo_company):
    payments = three_paid_invoices()
    qbo_company.server.add_fault("batch_item_10000", count=1, path_contains="/batch")

    export(*payments)

    assert len(qbo_company.entities("Invoice")) == 3
    assert_exported_once(qbo_company, payments)
    attempt = ExportAttempt.objects.get(error_code="10000")
    assert "sent again later" in attempt.message


def test_a_stalled_runner_that_lost_its_lease_writes_no_outbox_row(qbo_company, monkeypatch):
    """Runner A stalls just before writing the payments' batch; its lease expires and runner B exports them. When A
    wakes it must write nothing: a pending create left behind would post the payments a second time."""
    payments = three_paid_invoices()
    real_batch_request = engine._batch_request
    stalled, results = [], []

    def stall_then_write(run, bids, items):
        if bids[0].startswith("p") and not stalled:
            stalled.append(run.holder)
            ExportRunnerLease.objects.filter(realm_id=run.realm_id).update(
                expires_at=timezone.now() - timedelta(seconds=1)
            )
            results.append(export_run(realm_id=run.realm_id, sleep=lambda s: None))  # runner B, meanwhile
        return real_batch_request(run, bids, items)

    monkeypatch.setattr(engine, "_batch_request", stall_then_write)
    export_batch_start(payments=[p.pk for p in payments], selection="all", source="command")

    assert export_run(realm_id=qbo_company.realm_id, sleep=lambda s: None) == "lease_lost"  # runner A
    assert results == ["drained"]
    monkeypatch.setattr(engine, "_batch_request", real_batch_request)
    drain(qbo_company.realm_id)
    assert_exported_once(qbo_company, payments)
    assert QuickBooksRequest.objects.filter(operation="batch").count() == 2  # B's invoices and payments only


def test_an_outbox_request_that_cannot_be_recorded_does_not_wedge_the_company(qbo_company):
    first = pay(issued_invoice(amount="100.00"), "100.00")
    export(first)
    done = QuickBooksRequest.objects.get(operation="Customer")
    other = CustomerFactory()
    # A pending create whose answer (QuickBooks remembers this request id) is a customer already mapped to another
    # of ours: recording it is refused (never merged silently).
    request_id = done.request_id
    done.delete()
    QuickBooksRequest.objects.create(
        realm_id=qbo_company.realm_id,
        request_id=request_id,
        operation="Customer",
        kind=QuickBooksMapping.Kind.CUSTOMER,
        local_key=str(other.pk),
        payload={"DisplayName": other.display_name},
    )
    later = pay(issued_invoice(customer=other, amount="80.00"), "80.00")

    export(later)

    stuck = QuickBooksRequest.objects.get(request_id=request_id)
    assert stuck.state == QuickBooksRequest.State.FAILED and "already linked" in stuck.last_error
    later.refresh_from_db()
    assert later.export_status == S.EXPORTED  # the company's exports go on
    assert len(qbo_company.entities("Payment")) == 2


def test_a_refund_between_the_rule_check_and_the_claim_is_seen_by_the_claim(qbo_company, monkeypatch):
    """The engine checks the fully-paid rule, then a refund re-opens the invoice, then the engine claims: the claim
    checks the rule again under the same locks, so the payment is not exported with its invoice open."""
    import datetime

    from billing import selectors as billing_selectors
    from billing import services as billing_services

    invoice = issued_invoice(amount="100.00")
    payment = pay(invoice, "100.00")
    real_map = billing_selectors.payment_export_readiness_map
    refunded = []

    def refund_right_after_the_check(*, payment_ids):
        result = real_map(payment_ids=payment_ids)
        if not refunded:
            refunded.append(
                billing_services.refund_record(
                    payment=payment,
                    amount="30.00",
                    kind="reversal",
                    reason="Chargeback",
                    refunded_on=datetime.date(2026, 11, 20),
                    method="card",
                )
            )
        return result

    export_batch_start(payments=[payment.pk], selection="one", source="command")
    monkeypatch.setattr(billing_selectors, "payment_export_readiness_map", refund_right_after_the_check)

    drain(qbo_company.realm_id)

    payment.refresh_from_db()
    assert refunded and payment.export_status == S.NOT_EXPORTED  # held: its invoice has $30.00 open again
    assert qbo_company.entities("Payment") == []
    assert refunded[0].handling == "netted"  # never claimed, so never flagged for QuickBooks
