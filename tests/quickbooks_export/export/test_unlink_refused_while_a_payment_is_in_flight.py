"""Review: unlinking an invoice is refused while a payment of it is in QuickBooks, but not while a payment's create
is in flight (outbox PENDING, payment EXPORTING: QuickBooks may hold it already, and the replay will map it)."""

import pytest

from billing.models import Payment
from fieldsync.exceptions import ApplicationError
from quickbooks_export import mappings
from quickbooks_export import services as engine
from quickbooks_export.models import QuickBooksMapping, QuickBooksRequest
from quickbooks_export.services import export_batch_start, export_run
from tests.factories import CustomerFactory, UserFactory, issued_invoice, pay

from .conftest import connect, drain

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("profile", ["us-ast", "us-manual-tax"])  # custom transaction numbers on / off
def test_unlink_is_refused_while_a_payment_of_the_invoice_is_in_flight(qbo_sandbox, settings, monkeypatch, profile):
    qbo_company = connect(qbo_sandbox, settings, profile=profile)
    invoice = issued_invoice(customer=CustomerFactory(), amount="100.00")
    payment = pay(invoice, "100.00")
    real_record = engine._record_mappings  # what a batch answer is recorded through

    def die_on_payments(run, rows):
        if any(kind == "payment" for kind, _, _ in rows):
            raise RuntimeError("worker killed")  # QuickBooks created it; FieldSync never saw the answer
        return real_record(run, rows)

    monkeypatch.setattr(engine, "_record_mappings", die_on_payments)
    export_batch_start(payments=[payment.pk], selection="one", source="command")
    with pytest.raises(RuntimeError):
        export_run(realm_id=qbo_company.realm_id, sleep=lambda s: None)
    monkeypatch.setattr(engine, "_record_mappings", real_record)
    payment.refresh_from_db()
    assert payment.export_status == Payment.ExportStatus.EXPORTING
    assert QuickBooksRequest.objects.filter(state=QuickBooksRequest.State.PENDING).count() == 1
    assert len(qbo_company.entities("Payment")) == 1  # it IS in QuickBooks, against the linked invoice

    invoice_mapping = QuickBooksMapping.objects.get(kind="invoice", local_key=str(invoice.pk))
    user = UserFactory()
    with pytest.raises(ApplicationError) as refused:
        mappings.mapping_unlink(mapping_id=invoice_mapping.pk, user=user, note="review")
    assert refused.value.code == "unlink_refused"
    assert "1 payment of INV-" in refused.value.message and "on its way to QuickBooks" in refused.value.message
    with pytest.raises(ApplicationError) as refused:  # linking another QuickBooks invoice has the same consequence
        mappings.mapping_relink(mapping_id=invoice_mapping.pk, qbo_id="999", user=user, note="review")
    assert refused.value.code == "relink_refused"
    assert QuickBooksMapping.objects.filter(pk=invoice_mapping.pk, qbo_id=invoice_mapping.qbo_id).exists()

    # Once the outbox is replayed the payment is mapped to the one QuickBooks invoice, and there is still only one.
    drain(qbo_company.realm_id)
    payment.refresh_from_db()
    assert payment.export_status == Payment.ExportStatus.EXPORTED
    assert len(qbo_company.entities("Invoice")) == 1
