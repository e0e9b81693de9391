"""Nothing exported twice and nothing lost: lost answers, outages, throttling, expired tokens, crashes, refusals."""

import pytest

from billing.models import Payment
from quickbooks_export.models import ExportBatchItem, QuickBooksRequest
from quickbooks_export.selectors import export_batch_counts
from quickbooks_export.services import export_batch_retry_failed, export_batch_start, export_run
from tests.factories import CustomerFactory, issued_invoice, pay

from .conftest import drain, export, refund

pytestmark = pytest.mark.django_db
S = Payment.ExportStatus


def three_paid_invoices():
    customer = CustomerFactory()
    return [pay(issued_invoice(customer=customer, amount=f"{100 + i}.00"), f"{100 + i}.00") for i in range(3)]


def assert_exactly_once(company, payments):
    qbo = company.entities("Payment")
    assert len(qbo) == len(payments), qbo
    for payment in payments:
        payment.refresh_from_db()
        assert payment.export_status == S.EXPORTED
    assert sorted(p.export_reference for p in payments) == sorted(p["Id"] for p in qbo)
    assert not QuickBooksRequest.objects.filter(state=QuickBooksRequest.State.PENDING).exists()


@pytest.mark.parametrize("path", ["/batch", "/customer"])
def test_a_create_committed_then_answer_lost_is_replayed_not_duplicated(qbo_company, path):
    payments = three_paid_invoices()
    qbo_company.server.add_fault("drop_after_commit", count=1, path_contains=path)

    export(*payments)

    assert_exactly_once(qbo_company, payments)
    assert len(qbo_company.entities("Customer")) == 1
    assert len(qbo_company.entities("Invoice")) == 3


def test_server_errors_are_retried_until_exactly_one_payment_each(qbo_company):
    payments = three_paid_invoices()
    qbo_company.server.add_fault("500", count=3)
    qbo_company.server.add_fault("503", count=2, path_contains="/batch")
    export(*payments)
    assert_exactly_once(qbo_company, payments)


def test_a_throttling_storm_is_waited_out(qbo_company):
    payments = three_paid_invoices()
    qbo_company.server.add_fault("429", count=12)
    export(*payments)
    assert_exactly_once(qbo_company, payments)


def test_an_expired_access_token_is_refreshed_once_and_the_export_goes_on(qbo_company):
    payments = three_paid_invoices()
    qbo_company.server.expire_access_tokens(qbo_company.realm_id)
    export(*payments)
    assert_exactly_once(qbo_company, payments)


def test_quickbooks_down_for_the_whole_run_hands_over_and_loses_nothing(qbo_company):
    payments = three_paid_invoices()
    qbo_company.server.add_fault("503", count=1000)
    batch = export_batch_start(payments=[p.pk for p in payments], selection="all", source="command")

    assert export_run(realm_id=qbo_company.realm_id, sleep=lambda s: None) == "backoff"

    for payment in payments:
        payment.refresh_from_db()
        assert payment.export_status == S.QUEUED  # released, not stuck in EXPORTING
    batch.refresh_from_db()
    assert "QuickBooks is busy" in batch.waiting_reason
    assert export_batch_counts(batch_id=batch.pk)["pending"] == 3

    qbo_company.server.clear_faults()
    drain(qbo_company.realm_id)
    assert_exactly_once(qbo_company, payments)
    batch.refresh_from_db()
    assert batch.status == batch.Status.FINISHED and not batch.waiting_reason


def test_a_worker_killed_mid_export_is_recovered_without_duplicates(qbo_company):
    """Simulate the state a SIGKILL leaves: payments claimed (EXPORTING), the outbox batch PENDING after QuickBooks
    committed it, and the runner's lease still held until it expires."""
    payments = three_paid_invoices()
    qbo_company.server.add_fault("drop_after_commit", count=1, path_contains="/batch")
    export_batch_start(payments=[p.pk for p in payments], selection="all", source="command")
    # The run's time is up before it may retry: it stops exactly where a killed worker would.
    assert export_run(realm_id=qbo_company.realm_id, run_seconds=0.5, sleep=lambda s: None) == "backoff"
    pending = QuickBooksRequest.objects.filter(state=QuickBooksRequest.State.PENDING)
    assert pending.count() == 1  # the invoices' batch: committed in QuickBooks, answer never seen
    assert len(qbo_company.entities("Invoice")) == 3

    qbo_company.server.clear_faults()
    drain(qbo_company.realm_id)

    assert_exactly_once(qbo_company, payments)
    assert len(qbo_company.entities("Invoice")) == 3


def test_a_stale_exporting_claim_is_taken_over_after_the_lease_expires(qbo_company):
    from django.utils import timezone

    from billing import services as billing_services
    from quickbooks_export.models import ExportRunnerLease

    payments = three_paid_invoices()
    export_batch_start(payments=[p.pk for p in payments], selection="all", source="command")
    billing_services.payment_export_status_bulk_transition(
        payment_ids=[p.pk for p in payments], to_status=S.EXPORTING, expected_from=[S.QUEUED]
    )
    lease = ExportRunnerLease.objects.create(
        realm_id=qbo_company.realm_id, holder="dead-worker", expires_at=timezone.now() + timezone.timedelta(seconds=60)
    )
    assert export_run(realm_id=qbo_company.realm_id, sleep=lambda s: None) == "busy"  # the dead worker's lease

    ExportRunnerLease.objects.filter(pk=lease.pk).update(expires_at=timezone.now() - timezone.timedelta(seconds=1))
    drain(qbo_company.realm_id)
    assert_exactly_once(qbo_company, payments)


def test_the_task_delivered_twice_exports_once(qbo_company):
    payments = three_paid_invoices()
    export_batch_start(payments=[p.pk for p in payments], selection="all", source="command")
    drain(qbo_company.realm_id)
    drain(qbo_company.realm_id)
    assert_exactly_once(qbo_company, payments)


def test_overlapping_batches_export_each_payment_once_and_count_it_once(qbo_company):
    payments = three_paid_invoices()
    first = export_batch_start(payments=[p.pk for p in payments], selection="first", source="page")
    second = export_batch_start(payments=[p.pk for p in payments], selection="second", source="api")
    drain(qbo_company.realm_id)
    assert_exactly_once(qbo_company, payments)
    assert export_batch_counts(batch_id=first.pk)["created"] == 3
    second_counts = export_batch_counts(batch_id=second.pk)
    assert second_counts["created"] == 0 and second_counts["linked"] == 3


def test_a_refund_after_queueing_holds_the_payment_at_run_time(qbo_company):
    [payment, *_] = three_paid_invoices()
    batch = export_batch_start(payments=[payment.pk], selection="one", source="page")
    refund(payment, "5.00")
    drain(qbo_company.realm_id)
    item = ExportBatchItem.objects.get(batch=batch)
    assert item.outcome == ExportBatchItem.Outcome.SKIPPED
    assert "still has $5.00 open" in item.message
    payment.refresh_from_db()
    assert payment.export_status == S.NOT_EXPORTED
    assert qbo_company.entities("Payment") == []


def test_a_validation_fault_fails_the_record_with_quickbooks_words_and_retry_works_once_fixed(qbo_company):
    from quickbooks_export.models import QuickBooksMappingSettings

    payment = pay(issued_invoice(amount="100.00"), "100.00")
    # A deposit account that does not exist in the company: QuickBooks refuses the payment (2500 Invalid Reference).
    settings_row = QuickBooksMappingSettings.objects.get(realm_id=qbo_company.realm_id)
    good_account = settings_row.deposit_account_id
    QuickBooksMappingSettings.objects.filter(pk=settings_row.pk).update(deposit_account_id="999999")

    batch = export(payment)

    item = ExportBatchItem.objects.get(batch=batch)
    assert item.outcome == ExportBatchItem.Outcome.FAILED
    assert item.error_code and item.message.startswith("Payment: QuickBooks rejected the request")
    payment.refresh_from_db()
    assert payment.export_status == S.FAILED
    assert qbo_company.entities("Payment") == []
    assert len(qbo_company.entities("Invoice")) == 1  # the invoice went in; it is reused by the retry

    QuickBooksMappingSettings.objects.filter(pk=settings_row.pk).update(deposit_account_id=good_account)
    retry = export_batch_retry_failed(batch_id=batch.pk)
    drain(qbo_company.realm_id)
    assert export_batch_counts(batch_id=retry.pk)["created"] == 1
    assert_exactly_once(qbo_company, [payment])
    assert len(qbo_company.entities("Invoice")) == 1


def test_a_connection_needing_reconnect_pauses_the_batch_with_a_reason(qbo_company):
    from quickbooks_export.models import QuickBooksConnection

    payment = pay(issued_invoice(amount="100.00"), "100.00")
    batch = export_batch_start(payments=[payment.pk], selection="one", source="page")
    QuickBooksConnection.objects.update(state=QuickBooksConnection.State.NEEDS_RECONNECT)
    assert export_run(realm_id=qbo_company.realm_id, sleep=lambda s: None) == "waiting"
    batch.refresh_from_db()
    assert batch.waiting_reason.startswith("Paused:")
    payment.refresh_from_db()
    assert payment.export_status == S.QUEUED


def test_a_crash_between_the_answer_and_the_mapping_is_replayed_not_posted_again(qbo_company, monkeypatch):
    """The worker dies after QuickBooks created the payments but before FieldSync recorded them: the outbox row
    must still be pending, and the next run must replay it (same request id), not post the payments again."""
    from quickbooks_export import services

    payments = three_paid_invoices()
    real_record = services._record_mappings  # what a batch answer is recorded through

    def die_on_payments(run, rows):
        if any(kind == "payment" for kind, _, _ in rows):
            raise RuntimeError("worker killed")
        return real_record(run, rows)

    monkeypatch.setattr(services, "_record_mappings", die_on_payments)
    export_batch_start(payments=[p.pk for p in payments], selection="all", source="command")
    with pytest.raises(RuntimeError):
        export_run(realm_id=qbo_company.realm_id, sleep=lambda s: None)
    assert len(qbo_company.entities("Payment")) == 3  # QuickBooks has them ...
    assert QuickBooksRequest.objects.filter(state=QuickBooksRequest.State.PENDING).count() == 1  # ... in doubt here
    for payment in payments:
        payment.refresh_from_db()
        assert payment.export_status == S.EXPORTING  # may be in QuickBooks: a refund now is flagged

    refund(payments[0], "5.00")  # the invoice re-opens, but the payment is already in QuickBooks
    from billing.models import ManualHandlingItem

    assert ManualHandlingItem.objects.filter(payment=payments[0]).exists()

    monkeypatch.setattr(services, "_record_mappings", real_record)
    drain(qbo_company.realm_id)
    assert_exactly_once(qbo_company, payments)


def test_a_runner_that_loses_its_lease_stops_without_touching_the_payments(qbo_company):
    from quickbooks_export.models import ExportRunnerLease

    payments = three_paid_invoices()
    export_batch_start(payments=[p.pk for p in payments], selection="all", source="command")
    qbo_company.server.add_fault("503", count=1, path_contains="/batch")

    def stall_and_lose_the_lease(seconds):  # the runner sleeps past its lease and another worker takes over
        ExportRunnerLease.objects.filter(realm_id=qbo_company.realm_id).update(holder="another-worker")

    assert export_run(realm_id=qbo_company.realm_id, sleep=stall_and_lose_the_lease) == "lease_lost"
    assert qbo_company.entities("Payment") == []
    lease = ExportRunnerLease.objects.get(realm_id=qbo_company.realm_id)
    assert lease.holder == "another-worker"  # left alone

    ExportRunnerLease.objects.update(holder="", expires_at=None)  # the other worker finished or died
    drain(qbo_company.realm_id)
    assert_exactly_once(qbo_company, payments)


def test_two_service_names_that_become_one_quickbooks_item_share_it(qbo_company):
    from billing import services as billing_services

    customer = CustomerFactory()
    invoice = billing_services.invoice_create(
        customer=customer,
        number="INV-77",
        lines=[
            billing_services.LineInput(service_name="HVAC: tune-up", unit_price="80.00"),
            billing_services.LineInput(service_name="HVAC- tune-up", unit_price="20.00"),
        ],
    )
    billing_services.invoice_issue(invoice=invoice)
    payment = pay(invoice, "100.00")
    export(payment)
    assert [item["Name"] for item in qbo_company.entities("Item")] == ["HVAC- tune-up"]
    assert_exactly_once(qbo_company, [payment])
