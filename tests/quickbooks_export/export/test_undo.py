"""Undo an export: void in QuickBooks what it created (payments, then invoices), once, and only when nothing changed."""

from decimal import Decimal

import pytest

from billing.models import Payment
from fieldsync.exceptions import ConflictError
from quickbooks_export.models import ExportUndo, QuickBooksMapping, QuickBooksMappingAudit, QuickBooksRequest
from quickbooks_export.undo import export_undo_plan, export_undo_run, export_undo_start
from tests.factories import CustomerFactory, UserFactory, issued_invoice, pay

from .conftest import export, refund

pytestmark = pytest.mark.django_db
S = Payment.ExportStatus
Kind = QuickBooksMapping.Kind


def thirty_payments() -> list[Payment]:
    """28 invoices paid by one payment each and one invoice paid by two: 30 payments, 29 invoices, 5 customers."""
    people = [CustomerFactory() for _ in range(5)]
    payments = [pay(issued_invoice(customer=people[i % 5], amount=f"{100 + i}.00"), f"{100 + i}.00") for i in range(28)]
    shared = issued_invoice(customer=people[0], amount="90.00", number="INV-SHARED")
    return payments + [pay(shared, "40.00"), pay(shared, "50.00")]


def voided(row: dict) -> bool:
    return Decimal(str(row["TotalAmt"])) == 0 and row.get("PrivateNote", "").startswith("Voided")


def test_undo_of_a_30_payment_export_voids_its_payments_then_its_invoices_once(qbo_company):
    payments = thirty_payments()
    batch = export(*payments)
    assert len(qbo_company.entities("Payment")) == 30 and len(qbo_company.entities("Invoice")) == 29
    user = UserFactory(username="dana")

    plan = export_undo_plan(batch_id=batch.pk)
    assert plan.refusals == []
    assert (len(plan.payments), len(plan.invoices), plan.quickbooks_reads) == (30, 29, 2)
    assert [s["entity"] for s in plan.steps] == ["Payment"] * 30 + ["Invoice"] * 29

    undo = export_undo_start(user=user, batch_id=batch.pk)
    assert export_undo_run(undo_id=undo.pk) == "done"

    assert all(voided(p) for p in qbo_company.entities("Payment"))
    assert len(qbo_company.entities("Payment")) == 30  # voided, not deleted: QuickBooks keeps the record
    for invoice in qbo_company.entities("Invoice"):
        assert Decimal(str(invoice["TotalAmt"])) == 0 and Decimal(str(invoice["Balance"])) == 0
        assert invoice["PrivateNote"].startswith("Voided")
    assert all(Decimal(str(c["Balance"])) == 0 for c in qbo_company.entities("Customer"))
    assert len(qbo_company.entities("Customer")) == 5  # customers and items stay
    undo.refresh_from_db()
    assert (undo.state, undo.voided_payments, undo.voided_invoices) == (ExportUndo.State.DONE, 30, 29)
    assert set(Payment.objects.values_list("export_status", "export_reference")) == {(S.NOT_EXPORTED, "")}
    assert not QuickBooksMapping.objects.filter(kind__in=[Kind.PAYMENT, Kind.INVOICE]).exists()
    assert QuickBooksMapping.objects.filter(kind=Kind.CUSTOMER).count() == 5
    audits = QuickBooksMappingAudit.objects.filter(action=QuickBooksMappingAudit.Action.UNDO)
    assert audits.count() == 59 and set(audits.values_list("by", flat=True)) == {user.pk}

    # Run again (a task delivered twice): nothing more is sent.
    sent = QuickBooksRequest.objects.filter(kind="undo").count()
    assert export_undo_run(undo_id=undo.pk) == "done"
    assert QuickBooksRequest.objects.filter(kind="undo").count() == sent == 59
    with pytest.raises(ConflictError, match="Nothing to undo"):
        export_undo_start(user=user, batch_id=batch.pk)


def test_undone_payments_can_be_exported_again_once_quickbooks_frees_the_invoice_number(qbo_company):
    payment = pay(issued_invoice(amount="120.00", number="INV-4001"), "120.00")
    batch = export(payment)
    undo = export_undo_start(user=None, batch_id=batch.pk)
    export_undo_run(undo_id=undo.pk)
    [old_invoice] = qbo_company.entities("Invoice")

    retry = export(payment)  # QuickBooks keeps INV-4001 on the void and takes no second invoice with that number
    [item] = retry.items.all()
    assert item.outcome == "failed" and "is voided, and QuickBooks will not take a second invoice" in item.message

    qbo_company.server.edit_entity(qbo_company.realm_id, "Invoice", old_invoice["Id"], {"DocNumber": "INV-4001-void"})
    export(payment)

    payment.refresh_from_db()
    assert payment.export_status == S.EXPORTED
    live = [p for p in qbo_company.entities("Payment") if not voided(p)]
    assert [Decimal(str(p["TotalAmt"])) for p in live] == [Decimal("120.00")]
    assert payment.export_reference == live[0]["Id"]
    new_invoice = next(i for i in qbo_company.entities("Invoice") if i["DocNumber"] == "INV-4001")
    assert Decimal(str(new_invoice["Balance"])) == 0 and new_invoice["Id"] != old_invoice["Id"]


def test_a_payment_changed_in_quickbooks_since_the_export_refuses_the_undo_and_nothing_is_voided(qbo_company):
    first, second = pay(issued_invoice(amount="60.00"), "60.00"), pay(issued_invoice(amount="70.00"), "70.00")
    batch = export(first, second)
    second.refresh_from_db()
    qbo_company.server.edit_entity(qbo_company.realm_id, "Payment", second.export_reference, {"PrivateNote": "fixed"})

    with pytest.raises(ConflictError, match="was changed in QuickBooks since the export") as excinfo:
        export_undo_start(user=None, batch_id=batch.pk)

    assert f"Payment #{second.pk}" in excinfo.value.message
    assert not ExportUndo.objects.exists() and not QuickBooksRequest.objects.filter(kind="undo").exists()
    assert not any(voided(p) for p in qbo_company.entities("Payment"))
    assert set(Payment.objects.values_list("export_status", flat=True)) == {S.EXPORTED}


def test_undoing_one_payment_keeps_its_invoice_while_another_payment_of_it_stays(qbo_company):
    invoice = issued_invoice(amount="100.00", number="INV-4100")
    deposit, final = pay(invoice, "30.00"), pay(invoice, "70.00")
    export(final)

    plan = export_undo_plan(payment_id=deposit.pk)
    assert (len(plan.payments), plan.invoices, plan.invoices_kept) == (
        1,
        [],
        ["INV-4100 (other payments of it stay in QuickBooks)"],
    )
    undo = export_undo_start(user=None, payment_id=deposit.pk)
    assert export_undo_run(undo_id=undo.pk) == "done"

    [qbo_invoice] = qbo_company.entities("Invoice")
    assert Decimal(str(qbo_invoice["TotalAmt"])) == Decimal("100.00")
    assert Decimal(str(qbo_invoice["Balance"])) == Decimal("30.00")  # the deposit is open again in QuickBooks
    deposit.refresh_from_db()
    final.refresh_from_db()
    assert (deposit.export_status, final.export_status) == (S.NOT_EXPORTED, S.EXPORTED)


def test_a_refunded_payment_refuses_the_undo(qbo_company):
    payment = pay(issued_invoice(amount="80.00"), "80.00")
    batch = export(payment)
    refund(payment, "10.00")

    plan = export_undo_plan(batch_id=batch.pk)

    assert plan.refusals == [
        f"Payment #{payment.pk} has a refund recorded; settle the refund in QuickBooks by hand instead of undoing."
    ]


def test_undo_voids_the_invoices_the_export_sent_on_their_own_after_the_payments(qbo_company):
    """An export of a payment and of a $0 warranty invoice (invoice-only): the undo voids the payment, then both
    invoices, and the warranty invoice can be exported again."""
    from quickbooks_export.services import export_batch_start

    from .conftest import drain
    from .test_invoice_only import qbo_invoices, warranty_invoice

    payment = pay(issued_invoice(amount="80.00", number="INV-U1"), "80.00")
    warranty = warranty_invoice("INV-W9")
    batch = export_batch_start(payments=[payment.pk], invoices=[warranty.pk], selection="test", source="command")
    drain(batch.realm_id)
    [in_quickbooks] = qbo_invoices(qbo_company, "INV-W9")

    plan = export_undo_plan(batch_id=batch.pk)
    assert plan.refusals == []
    assert [(s["entity"], s["local_key"]) for s in plan.steps] == [
        ("Payment", str(payment.pk)),
        ("Invoice", str(payment.applications.get().invoice_id)),
        ("Invoice", str(warranty.pk)),
    ]
    undo = export_undo_start(user=UserFactory(), batch_id=batch.pk)
    assert export_undo_run(undo_id=undo.pk) == "done"

    [row] = qbo_invoices(qbo_company, "INV-W9")
    assert row["Id"] == in_quickbooks["Id"] and voided(row)
    undo.refresh_from_db()
    assert (undo.voided_payments, undo.voided_invoices) == (1, 2)
    assert not QuickBooksMapping.objects.filter(kind=Kind.INVOICE, local_key=str(warranty.pk)).exists()
    with pytest.raises(ConflictError, match="Nothing to undo"):
        export_undo_start(user=UserFactory(), batch_id=batch.pk)
