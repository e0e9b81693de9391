"""What happens after export follows the business unit too: an invoice edit is pushed to its unit's company, a payment
keyed in one unit's QuickBooks is brought into that unit, reconciliation runs per company, an invoice with nothing to
pay goes to its unit's company. Two units connected to two sandbox companies, the real engine and clients."""

import datetime
from decimal import Decimal

import pytest
from django.utils.module_loading import import_string

from billing import services as billing_services
from billing.models import Invoice, Payment
from fieldsync.exceptions import ApplicationError
from quickbooks_export.changes import webhook_events_check
from quickbooks_export.inbound import payment_bring_in
from quickbooks_export.invoice_updates import invoice_update_push
from quickbooks_export.models import (
    ExportBatch,
    QuickBooksEvent,
    QuickBooksMapping,
    QuickBooksMappingSettings,
    ReconciliationRun,
)
from quickbooks_export.reconciliation import reconciliation_run, reconciliation_start
from quickbooks_export.services import export_all_exportable_start, export_batch_start
from tests.factories import CustomerFactory

from .conftest import drain, export
from .test_business_units import companies, paid, units  # noqa: F401 - the fixtures

pytestmark = pytest.mark.django_db
NOVEMBER = {"date_from": datetime.date(2026, 11, 1), "date_to": datetime.date(2026, 11, 30)}


def qbo_invoice(company, invoice: Invoice) -> dict:
    mapping = QuickBooksMapping.objects.get(realm_id=company.realm_id, kind="invoice", local_key=str(invoice.pk))
    return next(row for row in company.entities("Invoice") if row["Id"] == mapping.qbo_id)


def warranty_invoice(unit, number: str) -> Invoice:
    """A $0.00 invoice (warranty work), issued: nothing to pay, it goes to QuickBooks on its own."""
    invoice = billing_services.invoice_create(
        customer=CustomerFactory(business_unit=unit, display_name=f"{unit} warranty"),
        number=number,
        lines=[billing_services.LineInput(service_name="Warranty repair", unit_price="0.00")],
    )
    return billing_services.invoice_issue(invoice=invoice, issued_on=datetime.date(2026, 11, 2))


def test_an_edit_of_an_exported_invoice_goes_to_its_units_company(units, companies):  # noqa: F811
    main, north = units
    main_company, north_company = companies
    export(paid(main, "80.00", name="Ann Lee"))
    in_north = paid(north, "100.00", name="Bo Chen")
    export(in_north)
    invoice = in_north.applications.get().invoice
    main_before = main_company.entities("Invoice")
    [line] = invoice.lines.all()
    billing_services.invoice_edit(
        invoice=invoice,
        lines=[
            billing_services.LineEdit(line_id=line.pk, service_name="Labor", unit_price="100.00"),
            billing_services.LineEdit(service_name="Labor", description="Second visit", unit_price="40.00"),
        ],
    )

    assert invoice_update_push(invoice_id=invoice.pk) == "updated"

    assert Decimal(str(qbo_invoice(north_company, invoice)["TotalAmt"])) == Decimal("140.00")
    assert main_company.entities("Invoice") == main_before  # the other unit's books untouched


def test_a_payment_keyed_in_a_units_quickbooks_is_brought_into_that_unit(units, companies):  # noqa: F811
    """A webhook names a payment nobody exported in North's company, against North's invoice: read with North's
    client and brought into North (Main's company, connected too, is never asked)."""
    main, north = units
    main_company, north_company = companies
    export(paid(main, "80.00", name="Ann Lee"))
    # North's invoice paid by check and exported; the check bounced: reversed in FieldSync, deleted in QuickBooks.
    bounced = paid(north, "50.00", name="Bo Chen")
    export(bounced)
    bounced.refresh_from_db()
    invoice = bounced.applications.get().invoice
    billing_services.refund_record(
        payment=bounced,
        amount="50.00",
        reason="Check bounced",
        refunded_on=datetime.date(2026, 11, 20),
        method="check",
        kind="reversal",
    )
    north_company.server.delete_entity(north_company.realm_id, "Payment", bounced.export_reference)
    QuickBooksMappingSettings.objects.filter(realm_id=north_company.realm_id).update(bring_in_quickbooks_payments=True)
    qbo_invoice_id = qbo_invoice(north_company, invoice)["Id"]
    qbo_customer = QuickBooksMapping.objects.get(realm_id=north_company.realm_id, kind="customer")
    keyed = north_company.server.create_entity(
        north_company.realm_id,
        "Payment",
        {
            "CustomerRef": {"value": qbo_customer.qbo_id},
            "TotalAmt": "50.00",
            "TxnDate": "2026-12-01",
            "Line": [{"Amount": "50.00", "LinkedTxn": [{"TxnId": qbo_invoice_id, "TxnType": "Invoice"}]}],
        },
    )
    main_requests = main_company.server.stats(main_company.realm_id)["requests"]
    QuickBooksEvent.objects.create(
        event_id="n-1", realm_id=north_company.realm_id, entity="Payment", qbo_id=keyed["Id"], operation="Create"
    )

    webhook_events_check()

    brought = Payment.objects.get(origin=Payment.Origin.QUICKBOOKS)
    assert (brought.business_unit, brought.amount, brought.export_reference) == (north, Decimal("50.00"), keyed["Id"])
    assert main_company.server.stats(main_company.realm_id)["requests"] == main_requests


def test_a_payment_against_another_units_invoice_is_not_brought_in(units, companies):  # noqa: F811
    """Main's invoice mapped in North's company (a company that moved between units): refused, nothing recorded."""
    main, north = units
    _, north_company = companies
    in_main = paid(main, "80.00", name="Ann Lee")
    invoice = in_main.applications.get().invoice
    QuickBooksMapping.objects.create(
        realm_id=north_company.realm_id, kind="invoice", local_key=str(invoice.pk), qbo_id="9"
    )
    row = {
        "Id": "77",
        "TotalAmt": "80.00",
        "TxnDate": "2026-12-01",
        "Line": [{"Amount": "80.00", "LinkedTxn": [{"TxnId": "9", "TxnType": "Invoice"}]}],
    }

    with pytest.raises(ApplicationError) as exc:
        payment_bring_in(realm_id=north_company.realm_id, row=row)

    assert exc.value.code == "other_business_unit"
    assert not Payment.objects.filter(origin=Payment.Origin.QUICKBOOKS).exists()


def test_reconciliation_runs_on_the_company_of_the_unit_asked(units, companies):  # noqa: F811
    main, north = units
    main_company, north_company = companies
    export(paid(main, "80.00", name="Ann Lee"))
    export(paid(north, "40.00", name="Bo Chen"))
    main_requests = main_company.server.stats(main_company.realm_id)["requests"]

    run = reconciliation_start(**NOVEMBER, trigger="command", business_unit=north, enqueue=False)
    run = reconciliation_run(run_id=run.pk, sleep=lambda seconds: None)

    assert (run.realm_id, run.state, run.invoices_checked, run.payments_checked) == (
        north_company.realm_id,
        "done",
        1,
        1,
    )
    assert run.discrepancies == 0
    assert main_company.server.stats(main_company.realm_id)["requests"] == main_requests


def test_the_nightly_reconciliation_runs_once_per_connected_company(units, companies):  # noqa: F811
    main, north = units
    export(paid(main, "80.00", name="Ann Lee"))
    export(paid(north, "40.00", name="Bo Chen"))

    run_ids = import_string("quickbooks_export.tasks.reconciliation_nightly_task")()

    runs = ReconciliationRun.objects.filter(pk__in=run_ids)
    assert sorted(runs.values_list("realm_id", flat=True)) == sorted(c.realm_id for c in companies)
    assert {(r.trigger, r.state) for r in runs} == {("nightly", "done")}


def test_an_invoice_with_nothing_to_pay_goes_to_its_units_company(units, companies):  # noqa: F811
    main, north = units
    main_company, north_company = companies
    in_main, in_north = warranty_invoice(main, "INV-WM"), warranty_invoice(north, "INV-WN")

    batch = export_batch_start(invoices=[in_north.pk], selection="north", source="command")
    drain(batch.realm_id)

    assert batch.realm_id == north_company.realm_id
    assert [row["DocNumber"] for row in north_company.entities("Invoice")] == ["INV-WN"]
    assert main_company.entities("Invoice") == []
    with pytest.raises(ApplicationError) as exc:
        export_batch_start(invoices=[in_main.pk, in_north.pk], selection="both", source="command")
    assert exc.value.code == "several_business_units"


def test_everything_exportable_takes_one_units_payments_and_invoices(units, companies):  # noqa: F811
    main, north = units
    main_company, north_company = companies
    warranty_invoice(main, "INV-WM")
    in_north = warranty_invoice(north, "INV-WN")
    main_payment, north_payment = paid(main, "80.00", name="Ann Lee"), paid(north, "40.00", name="Bo Chen")

    batch = export_all_exportable_start(source="command", business_unit=north)
    drain(batch.realm_id)

    assert batch.realm_id == north_company.realm_id
    assert set(batch.items.values_list("payment_id", "invoice_id")) == {(north_payment.pk, None), (None, in_north.pk)}
    assert sorted(row["DocNumber"] for row in north_company.entities("Invoice")) == sorted(
        ["INV-WN", north_payment.applications.get().invoice.number]
    )
    assert main_company.entities("Invoice") == []
    main_payment.refresh_from_db()
    assert main_payment.export_status == Payment.ExportStatus.NOT_EXPORTED
    with pytest.raises(ApplicationError) as exc:
        export_all_exportable_start(source="command")  # two units: say which
    assert exc.value.code == "business_unit_required"
    assert ExportBatch.objects.count() == 1
