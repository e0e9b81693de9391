"""Done means (issue 9): the whole demo company exported into each kind of QuickBooks company, seeded with data that
collides with ours, leaves QuickBooks' books matching FieldSync: every invoice FieldSync says is paid in QuickBooks
has QuickBooks' TotalAmt = ours and Balance 0; QuickBooks' payments add up to the exported ones; nothing was posted
against a held invoice; no Inventory or Category item is on any line. Asserted on QuickBooks' state in the sandbox."""

from decimal import Decimal

import pytest

from billing.demo import seed_story_company
from billing.models import Payment
from billing.selectors import invoice_with_balances
from quickbooks_export.models import InvoiceExportHold, QuickBooksMapping, QuickBooksMappingSettings
from quickbooks_export.services import export_all_exportable_start

from .conftest import connect, drain

pytestmark = pytest.mark.django_db
S = Payment.ExportStatus
Kind = QuickBooksMapping.Kind
D = Decimal

PROFILES = {
    # profile: (currency, the QuickBooks tax code chosen for taxed invoices, the one for lines without tax)
    "us-ast": ("USD", None, None),
    "us-manual-tax": ("USD", "California", None),
    "ca": ("CAD", "HST ON", "Zero-rated"),
    "uk": ("GBP", "20.0% S", "0.0% Z"),
    "au": ("AUD", "GST", "FRE"),
}


def _money(value) -> Decimal:
    return D(str(value)).quantize(D("0.01"))


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_the_demo_company_exported_into_each_kind_of_company_matches_quickbooks(qbo_sandbox, settings, profile):
    currency, taxed_code, untaxed_code = PROFILES[profile]
    settings.FIELDSYNC_CURRENCY = currency
    settings.EXPORT_MAX_RETRY_AFTER_SECONDS = 0.2
    seed_story_company()
    company = connect(qbo_sandbox, settings, profile=profile, seed="collisions")
    codes = {c["Name"]: c["Id"] for c in company.entities("TaxCode")}
    QuickBooksMappingSettings.objects.update_or_create(
        realm_id=company.realm_id,
        defaults={
            "sales_tax_code_id": codes[taxed_code] if taxed_code else "",
            "no_tax_code_id": codes[untaxed_code] if untaxed_code else "",
        },
    )

    batch = export_all_exportable_start(source="command")
    drain(batch.realm_id, rounds=20)

    qbo_invoices = {inv["Id"]: inv for inv in company.entities("Invoice")}
    qbo_payments = company.entities("Payment")
    ours = {m.qbo_id: int(m.local_key) for m in QuickBooksMapping.objects.filter(kind=Kind.INVOICE)}
    exported = list(Payment.objects.filter(export_status=S.EXPORTED).prefetch_related("applications", "refunds"))
    assert exported, "the demo company exports something into every profile"
    paid_invoice_ids = {app.invoice_id for p in exported for app in p.applications.all()}
    totals = {inv.pk: inv for inv in invoice_with_balances().filter(pk__in=set(ours.values()))}

    # 1. Every invoice FieldSync holds paid in QuickBooks: same total, nothing left open.
    for qbo_id, invoice_pk in ours.items():
        if invoice_pk not in paid_invoice_ids:
            continue
        qbo = qbo_invoices[qbo_id]
        assert _money(qbo["TotalAmt"]) == totals[invoice_pk].total, (profile, totals[invoice_pk].number, qbo)
        assert _money(qbo["Balance"]) == 0, (profile, totals[invoice_pk].number, qbo)

    # 2. Nothing posted against a held invoice.
    def linked_to(qbo_id):
        return [
            p
            for p in qbo_payments
            if any(link["TxnId"] == qbo_id for line in p["Line"] for link in line.get("LinkedTxn", []))
        ]

    for hold in InvoiceExportHold.objects.filter(state="open"):
        assert linked_to(hold.qbo_invoice_id) == [], (profile, hold.invoice.number, hold.message)
        assert not Payment.objects.filter(applications__invoice=hold.invoice, export_status=S.EXPORTED).exists()

    # 3. QuickBooks' payments made by FieldSync add up to the exported payments.
    ours_payments = set(QuickBooksMapping.objects.filter(kind=Kind.PAYMENT).values_list("qbo_id", flat=True))
    in_qbo = sum((_money(p["TotalAmt"]) for p in qbo_payments if p["Id"] in ours_payments), D("0.00"))
    refunded = {p.pk: sum((r.amount for r in p.refunds.all()), D("0.00")) for p in exported}
    assert in_qbo == sum((p.amount - refunded[p.pk] for p in exported), D("0.00"))
    assert len(ours_payments) == len(exported)

    # 4. No Inventory / Category item on any line of ours.
    items = {i["Id"]: i for i in company.entities("Item")}
    for qbo_id in ours:
        for line in qbo_invoices[qbo_id]["Line"]:
            if "SalesItemLineDetail" in line:
                item = items[line["SalesItemLineDetail"]["ItemRef"]["value"]]
                assert item["Type"] in ("Service", "NonInventory") and item.get("Active", True), item
