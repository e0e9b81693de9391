"""Read the QuickBooks company before writing to it: currency, custom transaction numbers, tax codes (issue 9)."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing import services as billing_services
from billing.models import Payment
from billing.selectors import invoice_get_with_balances
from quickbooks_export.client import QuickBooksClient
from quickbooks_export.company import company_profile_refresh
from quickbooks_export.errors import QuickBooksValidationError
from quickbooks_export.models import (
    ExportBatch,
    QuickBooksCompanyProfile,
    QuickBooksMappingSettings,
    QuickBooksTaxCodeMapping,
)
from tests.factories import CustomerFactory, issued_invoice, pay

from .conftest import connect, export

pytestmark = pytest.mark.django_db
S = Payment.ExportStatus


@pytest.fixture
def company_of(qbo_sandbox, settings, db):
    settings.EXPORT_MAX_RETRY_AFTER_SECONDS = 0.2
    return lambda profile: connect(qbo_sandbox, settings, profile=profile)


def test_the_profile_of_a_us_automated_tax_company_in_plain_words(company_of):
    company = company_of("us-ast")
    profile = company_profile_refresh(client=QuickBooksClient.for_current_connection())
    assert (profile.country, profile.home_currency, profile.automated_sales_tax) == ("US", "USD", True)
    assert profile.describe().startswith("US company, automated sales tax, USD")
    assert QuickBooksCompanyProfile.objects.get(realm_id=company.realm_id) == profile


def test_a_company_in_another_currency_is_refused_before_anything_is_written(company_of):
    company = company_of("ca")
    payment = pay(issued_invoice(amount="100.00"), "100.00")

    batch = export(payment)

    assert company.entities("Customer") == [] and company.entities("Invoice") == []
    assert company.entities("Payment") == []
    assert batch.status == ExportBatch.Status.QUEUED or batch.waiting_reason
    assert "keeps its books in CAD; FieldSync works in USD" in ExportBatch.objects.get(pk=batch.pk).waiting_reason
    payment.refresh_from_db()
    assert payment.export_status in (S.QUEUED, S.EXPORTING)


def _company_info_refused(monkeypatch):
    """QuickBooks refuses the CompanyInfo read for good (a permanent 400; the sandbox's faults are all transient, so
    the refusal is raised at the client's edge, as the client raises QuickBooks' answer)."""

    def refused(self):
        raise QuickBooksValidationError("QuickBooks rejected the request: Invalid request", qbo_code="2010")

    monkeypatch.setattr(QuickBooksClient, "company_info", refused)


def test_an_unreadable_company_falls_back_to_its_stored_profile_and_is_still_refused_in_another_currency(
    company_of, monkeypatch
):
    company = company_of("ca")
    company_profile_refresh(client=QuickBooksClient.for_current_connection())  # read at connect: CAD
    QuickBooksCompanyProfile.objects.update(read_at=timezone.now() - timedelta(hours=1))  # old: read again
    _company_info_refused(monkeypatch)
    payment = pay(issued_invoice(amount="100.00"), "100.00")

    batch = export(payment)

    assert company.entities("Customer") == [] and company.entities("Payment") == []
    assert "keeps its books in CAD; FieldSync works in USD" in ExportBatch.objects.get(pk=batch.pk).waiting_reason


def test_a_company_never_read_and_unreadable_is_refused_not_exported_blind(company_of, monkeypatch):
    company = company_of("ca")
    QuickBooksCompanyProfile.objects.all().delete()
    _company_info_refused(monkeypatch)
    payment = pay(issued_invoice(amount="100.00"), "100.00")

    batch = export(payment)

    assert company.entities("Customer") == [] and company.entities("Payment") == []
    reason = ExportBatch.objects.get(pk=batch.pk).waiting_reason
    assert reason.startswith("Refused: QuickBooks would not tell the company's settings")
    assert "Nothing was sent" in reason
    payment.refresh_from_db()
    assert payment.export_status in (S.QUEUED, S.EXPORTING)


def test_custom_transaction_numbers_off_sends_no_doc_number_and_keeps_ours_in_the_memo(qbo_sandbox, settings, db):
    company = connect(qbo_sandbox, settings, profile="us-manual-tax")
    prefs = company.entities("Preferences")[0]
    qbo_sandbox.edit_entity(
        company.realm_id,
        "Preferences",
        prefs["Id"],
        {"SalesFormsPrefs": {**prefs["SalesFormsPrefs"], "CustomTxnNumbers": False}},
    )
    invoice = issued_invoice(amount="250.00", number="INV-3001")
    payment = pay(invoice, "250.00")

    export(payment)

    [qbo_invoice] = company.entities("Invoice")
    assert qbo_invoice.get("DocNumber") != "INV-3001"  # QuickBooks numbered it
    assert "INV-3001" in qbo_invoice["PrivateNote"]
    assert Decimal(str(qbo_invoice["Balance"])) == 0 and len(company.entities("Payment")) == 1


def test_a_us_manual_tax_company_takes_our_tax_with_the_mapped_code(qbo_sandbox, settings, db):
    company = connect(qbo_sandbox, settings, profile="us-manual-tax")
    code = next(c for c in company.entities("TaxCode") if c["Id"] not in ("TAX", "NON"))
    QuickBooksMappingSettings.objects.update_or_create(
        realm_id=company.realm_id, defaults={"sales_tax_code_id": code["Id"], "sales_tax_code_name": code["Name"]}
    )
    invoice = issued_invoice(customer=CustomerFactory(), amount="1905.00", sales_tax="119.63", number="INV-1041")
    payments = [pay(invoice, "500.00"), pay(invoice, "1000.00"), pay(invoice, "524.63")]

    export(*payments)

    [qbo_invoice] = company.entities("Invoice")
    assert Decimal(str(qbo_invoice["TotalAmt"])) == Decimal("2024.63")
    assert Decimal(str(qbo_invoice["TxnTaxDetail"]["TotalTax"])) == Decimal("119.63")
    assert Decimal(str(qbo_invoice["Balance"])) == 0
    assert sum(Decimal(str(p["TotalAmt"])) for p in company.entities("Payment")) == Decimal("2024.63")


def test_outside_the_us_an_invoice_without_a_chosen_tax_code_fails_with_what_to_choose(qbo_sandbox, settings, db):
    settings.FIELDSYNC_CURRENCY = "GBP"
    company = connect(qbo_sandbox, settings, profile="uk")
    invoice = issued_invoice(amount="100.00", sales_tax="20.00", number="INV-4001")
    payment = pay(invoice, "120.00")

    export(payment)

    assert company.entities("Invoice") == []
    payment.refresh_from_db()
    assert payment.export_status == S.FAILED
    assert "choose the tax code for taxed invoices on the QuickBooks page" in payment.export_items.get().message


def _code_id(company, name):
    return next(c["Id"] for c in company.entities("TaxCode") if c["Name"] == name)


def test_us_manual_tax_with_a_rate_mapped_and_a_non_taxable_line_matches_to_the_cent(qbo_sandbox, settings, db):
    company = connect(qbo_sandbox, settings, profile="us-manual-tax")
    rate = billing_services.tax_rate_create(name="California", percentage="8")
    QuickBooksTaxCodeMapping.objects.create(
        realm_id=company.realm_id, tax_rate=rate, qbo_tax_code_id=_code_id(company, "California")
    )
    invoice = billing_services.invoice_issue(
        invoice=billing_services.invoice_create(
            customer=CustomerFactory(),
            number="INV-7001",
            tax_rate=rate,
            lines=[
                billing_services.LineInput("Drain cleaning", "137.50", quantity="4"),
                billing_services.LineInput("Permit", "75.00", taxable=False),
            ],
        )
    )
    assert invoice.sales_tax == Decimal("44.00")
    payment = pay(invoice, "669.00")

    export(payment)

    [qbo_invoice] = company.entities("Invoice")
    codes = [
        line["SalesItemLineDetail"]["TaxCodeRef"]["value"]
        for line in qbo_invoice["Line"]
        if "SalesItemLineDetail" in line
    ]
    assert codes == ["TAX", "NON"]
    assert Decimal(str(qbo_invoice["TotalAmt"])) == Decimal("669.00") and Decimal(str(qbo_invoice["Balance"])) == 0


@pytest.mark.parametrize(
    ("profile", "currency", "rate", "taxed_code", "untaxed_code"),
    [
        ("uk", "GBP", "20", "20.0% S", "0.0% Z"),
        ("ca", "CAD", "13", "HST ON", "Zero-rated"),
        ("au", "AUD", "10", "GST", "FRE"),
    ],
)
def test_outside_the_us_every_line_carries_the_chosen_code_and_quickbooks_total_matches(
    qbo_sandbox, settings, db, profile, currency, rate, taxed_code, untaxed_code
):
    settings.FIELDSYNC_CURRENCY = currency
    company = connect(qbo_sandbox, settings, profile=profile)
    names = {c["Name"]: c["Id"] for c in company.entities("TaxCode")}
    untaxed = untaxed_code
    ours = billing_services.tax_rate_create(name=f"Standard {profile}", percentage=rate)
    QuickBooksTaxCodeMapping.objects.create(realm_id=company.realm_id, tax_rate=ours, qbo_tax_code_id=names[taxed_code])
    QuickBooksMappingSettings.objects.update_or_create(
        realm_id=company.realm_id, defaults={"no_tax_code_id": names[untaxed]}
    )
    invoice = billing_services.invoice_issue(
        invoice=billing_services.invoice_create(
            customer=CustomerFactory(),
            number=f"INV-{profile}",
            tax_rate=ours,
            lines=[
                billing_services.LineInput("Boiler service", "123.45"),
                billing_services.LineInput("Call-out", "40.00", taxable=False),
            ],
        )
    )
    total = invoice_get_with_balances(invoice_id=invoice.pk).total
    payment = pay(invoice, str(total))

    export(payment)

    [qbo_invoice] = company.entities("Invoice")
    codes = [
        line["SalesItemLineDetail"]["TaxCodeRef"]["value"]
        for line in qbo_invoice["Line"]
        if "SalesItemLineDetail" in line
    ]
    assert codes == [names[taxed_code], names[untaxed]]
    assert Decimal(str(qbo_invoice["TotalAmt"])) == total
    assert Decimal(str(qbo_invoice["Balance"])) == 0


def test_tax_rounded_line_by_line_matches_a_company_that_takes_no_override(qbo_sandbox, settings, db):
    """31 lines of £1.59 at 20%: QuickBooks rounds each line's VAT (31 x 0.32 = 9.92), not the subtotal's (9.86)."""
    settings.FIELDSYNC_CURRENCY = "GBP"
    company = connect(qbo_sandbox, settings, profile="uk")
    names = {c["Name"]: c["Id"] for c in company.entities("TaxCode")}
    rate = billing_services.tax_rate_create(name="Standard VAT", percentage="20")
    QuickBooksTaxCodeMapping.objects.create(realm_id=company.realm_id, tax_rate=rate, qbo_tax_code_id=names["20.0% S"])
    invoice = billing_services.invoice_issue(
        invoice=billing_services.invoice_create(
            customer=CustomerFactory(),
            number="INV-UK31",
            tax_rate=rate,
            lines=[billing_services.LineInput("Fittings", "1.59") for _ in range(31)],
        )
    )
    assert invoice.sales_tax == Decimal("9.92")
    payment = pay(invoice, "59.21")

    export(payment)

    assert payment.export_items.get().message == ""
    [qbo_invoice] = company.entities("Invoice")
    assert Decimal(str(qbo_invoice["TotalAmt"])) == Decimal("59.21")
    assert Decimal(str(qbo_invoice["Balance"])) == 0
