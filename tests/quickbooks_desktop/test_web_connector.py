"""The Desktop export end to end: payments queued through the export seam, a simulated Web Connector calling our SOAP
endpoint, and the simulated company file's state asserted (not only our rows)."""

from decimal import Decimal

import pytest

from billing.models import Payment
from quickbooks_desktop import routing
from quickbooks_desktop.models import DesktopObject, DesktopRequest
from quickbooks_desktop.simulator import run_interleaved
from quickbooks_export.models import ExportAttempt, ExportBatch, ExportBatchItem
from tests.factories import CustomerFactory, issued_invoice, pay, split_payment

pytestmark = pytest.mark.django_db

D = Decimal


def export(*payments) -> ExportBatch:
    return routing.export_batch_start(payments=[p.pk for p in payments], selection="test")


def assert_one_of_each(company, payments) -> None:
    """Exactly one received payment per payment, one invoice per invoice, each exported with its TxnID."""
    received = company.transactions("ReceivePayment")
    refs = sorted(t.ref_number for t in received)
    assert refs == sorted(f"FS-P{p.pk}" for p in payments)
    invoice_numbers = [t.ref_number for t in company.transactions("Invoice")]
    assert len(invoice_numbers) == len(set(invoice_numbers))
    names = [r.name for r in company.records("Customer")]
    assert len(names) == len(set(names))
    for payment in payments:
        payment.refresh_from_db()
        assert payment.export_status == Payment.ExportStatus.EXPORTED
        txn = next(t for t in received if t.ref_number == f"FS-P{payment.pk}")
        assert payment.export_reference == txn.txn_id


def test_deposit_part_and_final_payment_make_one_invoice_three_payments_and_a_zero_balance(
    desktop, company, web_connector
):
    invoice = issued_invoice(amount="1200.00", number="INV-7001")
    deposit, part, final = pay(invoice, "300.00"), pay(invoice, "400.00"), pay(invoice, "500.00")
    batch = export(deposit)  # the other two come with their invoice

    report = web_connector().run()

    assert report.auth_code == "" and report.percents[-1] == 100 and report.closed.startswith("OK")
    [qb_invoice] = company.transactions("Invoice")
    assert qb_invoice.ref_number == "INV-7001" and qb_invoice.total == D("1200.00")
    assert company.invoice_balance(qb_invoice.txn_id) == D("0.00")
    received = company.transactions("ReceivePayment")
    assert sorted(t.total for t in received) == [D("300.00"), D("400.00"), D("500.00")]
    assert all(t.applied == [(qb_invoice.txn_id, t.total)] for t in received)
    [customer] = company.records("Customer")
    assert company.customer_balance(customer.list_id) == D("0.00")
    assert [r.name for r in company.records("ItemService")] == ["Labor"]
    assert_one_of_each(company, [deposit, part, final])
    batch.refresh_from_db()
    assert batch.status == ExportBatch.Status.FINISHED
    assert set(batch.items.values_list("outcome", flat=True)) == {ExportBatchItem.Outcome.CREATED}
    assert ExportAttempt.objects.filter(payment=final, operation="add ReceivePayment").count() == 1


def test_split_payment_is_applied_to_both_invoices(desktop, company, web_connector):
    customer = CustomerFactory()
    first = issued_invoice(customer=customer, amount="60.00", number="INV-7101")
    second = issued_invoice(customer=customer, amount="40.00", number="INV-7102")
    payment = split_payment((first, "60.00"), (second, "40.00"))
    export(payment)

    web_connector().run()

    [received] = company.transactions("ReceivePayment")
    invoices = {t.ref_number: t for t in company.transactions("Invoice")}
    assert received.total == D("100.00")
    assert sorted(received.applied) == sorted(
        [(invoices["INV-7101"].txn_id, D("60.00")), (invoices["INV-7102"].txn_id, D("40.00"))]
    )
    assert all(company.invoice_balance(t.txn_id) == 0 for t in invoices.values())
    assert_one_of_each(company, [payment])


def test_overpayment_is_left_on_the_customer_as_a_credit(desktop, company, web_connector):
    invoice = issued_invoice(amount="100.00", number="INV-7201")
    payment = pay(invoice, "100.00", payment_amount="150.00")
    export(payment)

    web_connector().run()

    [received] = company.transactions("ReceivePayment")
    assert received.total == D("150.00") and company.unused_payment(received) == D("50.00")
    [customer] = company.records("Customer")
    assert company.customer_balance(customer.list_id) == D("-50.00")
    assert_one_of_each(company, [payment])


def test_a_customer_named_like_a_vendor_gets_a_name_of_its_own(desktop, company, web_connector):
    customer = CustomerFactory(display_name="Acme Supply")
    company.add_vendor("Acme Supply")
    payment = pay(issued_invoice(customer=customer, amount="80.00", number="INV-7301"), "80.00")
    export(payment)

    web_connector().run()

    [qb_customer] = company.records("Customer")
    assert qb_customer.name == f"Acme Supply (FS-{customer.pk})"
    assert [r.name for r in company.records("Vendor")] == ["Acme Supply"]
    assert company.transactions("Invoice")[0].customer_id == qb_customer.list_id
    assert ExportAttempt.objects.filter(payment=payment, error_code="3100").exists()
    assert_one_of_each(company, [payment])


def _three_payments():
    customer = CustomerFactory()
    invoice = issued_invoice(customer=customer, amount="300.00", number="INV-7401")
    other = issued_invoice(customer=customer, amount="50.00", number="INV-7402")
    return [pay(invoice, "100.00"), pay(invoice, "200.00"), pay(other, "50.00")]


def test_responses_lost_after_quickbooks_applied_them_add_nothing_twice(desktop, company, web_connector):
    payments = _three_payments()
    export(*payments)

    report = web_connector(drop_responses=range(2, 60, 2)).run()

    assert report.dropped >= 4 and report.percents[-1] == 100
    assert_one_of_each(company, payments)
    assert len(company.transactions("Invoice")) == 2 and len(company.records("Customer")) == 1
    # What QuickBooks applied without our hearing of it was found by its marker, not added again.
    assert DesktopObject.objects.filter(linked_existing=True).exists()
    assert DesktopRequest.objects.filter(state=DesktopRequest.State.LOST).count() == report.dropped


@pytest.mark.parametrize("before_apply", [False, True], ids=["after-apply", "before-apply"])
@pytest.mark.parametrize("kill_after", range(1, 9))
def test_a_session_killed_midway_is_finished_by_the_next_one_exactly_once(
    desktop, company, web_connector, settings, kill_after, before_apply
):
    settings.QBWC_LOCK_SECONDS = 0  # the dead session's lease has expired by the next scheduled run
    payments = _three_payments()
    export(*payments)

    first = web_connector(kill_after=kill_after, kill_before_apply=before_apply).run()
    second = web_connector().run()

    assert first.killed and second.percents[-1] == 100
    assert_one_of_each(company, payments)
    assert len(company.transactions("Invoice")) == 2 and len(company.records("Customer")) == 1


def test_two_sessions_at_once_never_add_twice(desktop, company, web_connector):
    payments = _three_payments()
    export(*payments)

    reports = run_interleaved(web_connector(), web_connector())

    assert sum(r.noops for r in reports) > 0  # one waited while the other had a message set out
    assert_one_of_each(company, payments)
    assert len(company.transactions("Invoice")) == 2 and len(company.records("Customer")) == 1


def test_a_refusal_fails_the_payment_in_plain_words_and_a_retry_exports_it(desktop, company, web_connector):
    invoice = issued_invoice(amount="90.00", number="INV-7501")
    payment = pay(invoice, "90.00")
    export(payment)
    company.fail_next["ReceivePaymentAdd"] = "The company file is being backed up."

    web_connector().run()

    payment.refresh_from_db()
    assert payment.export_status == Payment.ExportStatus.FAILED
    item = ExportBatchItem.objects.get(payment=payment)
    assert item.outcome == ExportBatchItem.Outcome.FAILED and item.error_code == "3180"
    assert "being backed up" in item.message and "QuickBooks Desktop refused" in item.message
    assert company.transactions("ReceivePayment") == []

    routing.export_payment_retry(payment_id=payment.pk)
    web_connector().run()

    assert_one_of_each(company, [payment])
    assert len(company.transactions("Invoice")) == 1


def test_an_invoice_number_desktop_cannot_hold_fails_before_anything_is_sent(desktop, company, web_connector):
    payment = pay(issued_invoice(amount="10.00", number="INV-2026-000042"), "10.00")
    export(payment)

    web_connector().run()

    payment.refresh_from_db()
    assert payment.export_status == Payment.ExportStatus.FAILED
    assert "longer than the 11 characters" in ExportBatchItem.objects.get(payment=payment).message
    assert company.transactions("Invoice") == [] and company.records("Customer") == []


def test_held_payments_are_skipped_with_their_reason_and_nothing_reaches_quickbooks(desktop, company, web_connector):
    payment = pay(issued_invoice(amount="100.00", number="INV-7601"), "40.00")

    batch = export(payment)
    report = web_connector().run()

    item = batch.items.get()
    assert item.outcome == ExportBatchItem.Outcome.SKIPPED and "still has $60.00 open" in item.message
    assert report.auth_code == "none"  # nothing queued: the Web Connector is told so at once
    assert company.records("Customer") == []


def test_wrong_password_is_refused_and_changes_nothing(desktop, company, web_connector):
    payment = pay(issued_invoice(amount="10.00", number="INV-7701"), "10.00")
    export(payment)

    report = web_connector(password="not the password").run()

    assert report.auth_code == "nvu" and company.records("Customer") == []
    payment.refresh_from_db()
    assert payment.export_status == Payment.ExportStatus.QUEUED
    desktop.refresh_from_db()
    assert "wrong user name or password" in desktop.last_error


def test_quickbooks_that_cannot_open_the_company_is_reported_in_plain_words(desktop, company, web_connector):
    payment = pay(issued_invoice(amount="10.00", number="INV-7801"), "10.00")
    batch = export(payment)

    web_connector(fail_to_open=True).run()

    desktop.refresh_from_db()
    batch.refresh_from_db()
    assert "could not open the company file" in desktop.last_error
    assert "could not open the company file" in batch.waiting_reason
    payment.refresh_from_db()
    assert payment.export_status == Payment.ExportStatus.QUEUED  # the next run carries on


def test_payment_methods_and_the_deposit_account_are_sent_as_mapped(desktop, company, web_connector):
    from quickbooks_desktop import services

    services.desktop_connection_update(
        use_desktop=True,
        income_account_name="Services",
        deposit_account_name="Checking",
        run_every_minutes=15,
        username="fieldsync",
        payment_method_names={"card": "Visa", "check": "Check"},
    )
    card = pay(issued_invoice(amount="50.00", number="INV-7901"), "50.00", method=Payment.Method.CARD)
    ach = pay(issued_invoice(amount="70.00", number="INV-7902"), "70.00", method=Payment.Method.ACH)
    export(card, ach)

    web_connector().run()

    received = {t.ref_number: t for t in company.transactions("ReceivePayment")}
    assert received[f"FS-P{card.pk}"].payment_method == "Visa"
    assert received[f"FS-P{ach.pk}"].payment_method == ""  # not mapped: sent without one
    assert {t.deposit_to for t in received.values()} == {"Checking"}


def test_a_payment_method_the_company_does_not_have_fails_in_plain_words(desktop, company, web_connector):
    from quickbooks_desktop import services

    services.desktop_connection_update(
        use_desktop=True,
        income_account_name="Services",
        deposit_account_name="",
        run_every_minutes=15,
        username="fieldsync",
        payment_method_names={"card": "Amex"},
    )
    payment = pay(issued_invoice(amount="50.00", number="INV-7911"), "50.00", method=Payment.Method.CARD)
    export(payment)

    web_connector().run()

    payment.refresh_from_db()
    item = ExportBatchItem.objects.get(payment=payment)
    assert payment.export_status == Payment.ExportStatus.FAILED and item.error_code == "3140"
    assert "Check the account and payment method names on the QuickBooks Desktop page" in item.message
    assert company.transactions("ReceivePayment") == []


def test_payments_go_to_undeposited_funds_when_no_account_is_mapped(desktop, company, web_connector):
    payment = pay(issued_invoice(amount="20.00", number="INV-7921"), "20.00")
    export(payment)
    web_connector().run()
    [received] = company.transactions("ReceivePayment")
    assert received.deposit_to == "Undeposited Funds" and received.payment_method == "Check"


def test_two_services_that_become_the_same_desktop_item_fail_in_plain_words(desktop, company, web_connector):
    from billing import services as billing_services

    long_name = "Emergency after-hours drain cleaning"  # 36 characters: QuickBooks keeps 31
    customer = CustomerFactory()

    def invoice(number, service, amount):
        draft = billing_services.invoice_create(
            customer=customer,
            number=number,
            lines=[billing_services.LineInput(service_name=service, unit_price=amount)],
        )
        return billing_services.invoice_issue(invoice=draft)

    first = invoice("INV-7931", long_name, "10.00")
    second = invoice("INV-7932", long_name + " (weekend)", "20.00")
    a, b = pay(first, "10.00"), pay(second, "20.00")
    export(a)
    web_connector().run()
    export(b)

    web_connector().run()

    b.refresh_from_db()
    assert b.export_status == Payment.ExportStatus.FAILED
    assert "Shorten one of the service names" in ExportBatchItem.objects.get(payment=b).message
    assert len(company.records("ItemService")) == 1 and len(company.transactions("Invoice")) == 1
