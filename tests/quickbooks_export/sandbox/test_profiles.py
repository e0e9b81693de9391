"""Company profiles: what each kind of QuickBooks company reads like through python-quickbooks (CompanyInfo,
Preferences, TaxCode, TaxRate), how a profile is chosen, and the demo-colliding seed."""

import json
from decimal import Decimal

import pytest
import requests
from quickbooks.objects.company_info import CompanyInfo
from quickbooks.objects.customer import Customer
from quickbooks.objects.invoice import Invoice
from quickbooks.objects.item import Item
from quickbooks.objects.preferences import Preferences
from quickbooks.objects.taxcode import TaxCode
from quickbooks.objects.taxrate import TaxRate

from quickbooks_export.sandbox.profiles import PROFILES

from .clients import connect, connect_company

EXPECTED = {
    # profile: (Country, HomeCurrency, multicurrency, custom numbers, AST, sales tax code names)
    "us-ast": ("US", "USD", False, True, True, {"TAX", "NON", "Chicago, IL", "Illinois"}),
    "us-manual-tax": ("US", "USD", False, False, False, {"TAX", "NON", "California", "Tucson"}),
    "ca": ("CA", "CAD", True, True, None, {"HST ON", "GST", "Zero-rated", "Exempt"}),
    "uk": ("GB", "GBP", False, True, None, {"20.0% S", "5.0% R", "0.0% Z", "Exempt"}),
    "au": ("AU", "AUD", False, True, None, {"GST", "FRE", "INP"}),
}


@pytest.mark.parametrize("profile", list(EXPECTED))
def test_profile_reads_like_that_kind_of_company(qbo_sandbox, profile):
    country, currency, multicurrency, custom_numbers, ast, codes = EXPECTED[profile]
    qbo = connect_company(qbo_sandbox, profile)

    info = CompanyInfo.get(qbo.realm_id, qb=qbo.qb)
    prefs = Preferences.get(qb=qbo.qb)
    queried = qbo.qb.query("select * from Preferences")["QueryResponse"]["Preferences"][0]

    assert info.Country == country
    assert info.CompanyAddr.Country == country
    assert info.LegalName == f"{profile} Co"
    assert prefs.CurrencyPrefs.HomeCurrency.value == currency
    assert prefs.CurrencyPrefs.MultiCurrencyEnabled is multicurrency
    assert prefs.SalesFormsPrefs.CustomTxnNumbers is custom_numbers
    assert prefs.TaxPrefs.UsingSalesTax is True
    # PartnerTaxEnabled is a US attribute; python-quickbooks' TaxPrefs defaults it to True when it is absent, so
    # only the raw JSON tells a non-US company apart (read Country first).
    assert queried["TaxPrefs"].get("PartnerTaxEnabled") is ast
    assert prefs.TaxPrefs.PartnerTaxEnabled is (True if ast is None else ast)
    assert queried["CurrencyPrefs"]["HomeCurrency"]["value"] == currency
    assert {code.Name for code in TaxCode.all(qb=qbo.qb)} == codes


def test_tax_codes_and_rates_are_queryable_and_readable_by_id(qbo_sandbox):
    qbo = connect_company(qbo_sandbox, "ca")

    hst = TaxCode.where("Name = 'HST ON'", qb=qbo.qb)[0]
    rate_id = hst.SalesTaxRateList.TaxRateDetail[0].TaxRateRef.value
    rate = TaxRate.get(rate_id, qb=qbo.qb)

    assert TaxCode.get(hst.Id, qb=qbo.qb).Name == "HST ON"
    assert rate.Name == "HST ON" and rate.RateValue == Decimal("13")
    assert {r.Name for r in TaxRate.all(qb=qbo.qb)} == {"HST ON", "GST", "GST/HST ZR", "Exempt"}


def test_us_group_code_lists_its_rates_and_the_pseudo_codes_read_by_name(qbo_sandbox):
    qbo = connect_company(qbo_sandbox, "us-manual-tax")

    tucson = TaxCode.where("Name = 'Tucson'", qb=qbo.qb)[0]
    rates = [TaxRate.get(d.TaxRateRef.value, qb=qbo.qb) for d in tucson.SalesTaxRateList.TaxRateDetail]

    assert tucson.TaxGroup is True
    assert [(r.Name, r.RateValue) for r in rates] == [("AZ State tax", Decimal("7.1")), ("Tucson City", Decimal("2"))]
    assert TaxCode.get("TAX", qb=qbo.qb).Taxable is True
    assert TaxCode.get("NON", qb=qbo.qb).Taxable is False


def test_tax_codes_cannot_be_created_through_the_api(qbo_sandbox):
    qbo = connect_company(qbo_sandbox, "uk")
    url = f"{qbo.server.api_url}/company/{qbo.realm_id}/taxcode"

    answer = qbo.qb.process_request("POST", url, headers={"Content-Type": "application/json"}, data="{}")

    assert answer.json()["Fault"]["Error"][0]["code"] == "500"


def test_default_profile_is_us_ast_and_the_config_chooses_another(qbo_sandbox_factory):
    default = connect(qbo_sandbox_factory())
    uk = connect(qbo_sandbox_factory(company_profile="uk"))

    assert CompanyInfo.get(default.realm_id, qb=default.qb).Country == "US"
    assert Preferences.get(qb=default.qb).TaxPrefs.PartnerTaxEnabled is True
    assert CompanyInfo.get(uk.realm_id, qb=uk.qb).Country == "GB"


def test_qbo_sandbox_profile_fixture_runs_once_per_profile(qbo_sandbox_profile):
    qbo = connect(qbo_sandbox_profile)

    country = CompanyInfo.get(qbo.realm_id, qb=qbo.qb).Country

    assert country == PROFILES[qbo_sandbox_profile.config.company_profile].country


def test_options_override_the_profiles_preferences(qbo_sandbox):
    qbo = connect_company(qbo_sandbox, "us-ast", custom_txn_numbers=False, multicurrency=True)

    prefs = Preferences.get(qb=qbo.qb)

    assert prefs.SalesFormsPrefs.CustomTxnNumbers is False
    assert prefs.CurrencyPrefs.MultiCurrencyEnabled is True


def test_an_unknown_profile_or_seed_is_refused_with_the_choices(qbo_sandbox):
    with pytest.raises(ValueError, match="us-ast, us-manual-tax, ca, uk, au"):
        qbo_sandbox.create_company("X", profile="fr")
    with pytest.raises(ValueError, match="collisions"):
        qbo_sandbox.create_company("X", seed="everything")

    answer = requests.post(f"{qbo_sandbox.base_url}/_sandbox/companies", json={"profile": "fr"}, timeout=5)

    assert answer.status_code == 400 and "us-manual-tax" in answer.json()["error"]
    assert qbo_sandbox.companies() == []


def test_companies_can_be_created_over_http_with_a_profile_and_seed(qbo_sandbox):
    answer = requests.post(
        f"{qbo_sandbox.base_url}/_sandbox/companies",
        json={"name": "Over HTTP", "profile": "au", "seed": "collisions"},
        timeout=5,
    ).json()

    qbo = connect(qbo_sandbox, realm_id=answer["realm_id"])

    assert answer["profile"] == "au"
    assert CompanyInfo.get(qbo.realm_id, qb=qbo.qb).Country == "AU"
    assert Item.where("Active IN (true, false) AND Name = 'Pest control'", qb=qbo.qb)[0].Active is False


def test_consent_page_offers_the_profiles_and_the_seed(qbo_sandbox):
    params = {
        "client_id": qbo_sandbox.config.client_id,
        "response_type": "code",
        "scope": "com.intuit.quickbooks.accounting",
        "redirect_uri": "http://localhost/cb",
        "state": "s",
    }
    page = requests.get(f"{qbo_sandbox.base_url}/connect/oauth2", params=params, timeout=5).text
    form = {**params, "action": "approve", "realm_id": "new", "company_name": "Picked", "company_profile": "ca"}

    answer = requests.post(
        f"{qbo_sandbox.base_url}/connect/oauth2",
        data={**form, "company_seed": "collisions"},
        allow_redirects=False,
        timeout=5,
    )

    assert '<option value="uk">' in page and 'name="company_seed"' in page
    assert answer.status_code == 302
    assert qbo_sandbox.companies()[0]["profile"] == "ca"
    realm_id = qbo_sandbox.companies()[0]["realm_id"]
    assert any(c["DisplayName"] == "Lakeview Property Management" for c in qbo_sandbox.entities(realm_id, "Customer"))


@pytest.mark.parametrize("profile", list(EXPECTED))
def test_collisions_seed_holds_look_alikes_of_the_demo(qbo_sandbox, profile):
    qbo = connect_company(qbo_sandbox, profile, seed="collisions")

    items = {item.Name: item for item in Item.where("Active IN (true, false)", qb=qbo.qb)}
    active_items = {item.Name for item in Item.all(qb=qbo.qb)}
    customers = {c.DisplayName: c for c in Customer.where("Active IN (true, false)", qb=qbo.qb)}

    assert items["Water heater"].Type == "Inventory" and items["Water heater"].QtyOnHand == Decimal("3")
    assert items["Drain cleaning"].Type == "Category"
    assert items["Pest control"].Type == "Service" and items["Pest control"].Active is False
    assert "Pest control" not in active_items and "Water heater" in active_items
    assert customers["Lakeview Property Management"].Active is False
    assert "Lakeview Property Management" not in {c.DisplayName for c in Customer.all(qb=qbo.qb)}


def test_collisions_seed_of_us_ast_holds_a_paid_invoice_numbered_like_ours(qbo_sandbox):
    qbo = connect_company(qbo_sandbox, "us-ast", seed="collisions")

    invoice = Invoice.where("DocNumber = 'INV-1044'", qb=qbo.qb)[0]

    assert invoice.CustomerRef.name == "Counter Sales"
    assert invoice.TotalAmt == Decimal("120.00") and invoice.Balance == Decimal("0")


def test_without_a_seed_a_company_is_empty_of_customers_and_items(qbo_sandbox):
    qbo = connect_company(qbo_sandbox, "uk")

    assert Item.where("Active IN (true, false)", qb=qbo.qb) == []
    assert Customer.where("Active IN (true, false)", qb=qbo.qb) == []


def test_tax_codes_cannot_be_changed_in_a_batch_either(qbo_sandbox):
    qbo = connect_company(qbo_sandbox, "ca")
    url = f"{qbo.server.api_url}/company/{qbo.realm_id}/batch"
    body = {"BatchItemRequest": [{"bId": "1", "operation": "update", "TaxCode": {"Id": "1", "SyncToken": "0"}}]}

    answer = qbo.qb.process_request("POST", url, headers={"Content-Type": "application/json"}, data=json.dumps(body))

    assert answer.json()["BatchItemResponse"][0]["Fault"]["Error"][0]["code"] == "500"
    assert TaxCode.get("1", qb=qbo.qb).SyncToken == "0"


def test_index_page_lists_each_companys_profile(qbo_sandbox):
    qbo_sandbox.create_company("Indexed", profile="au")

    page = requests.get(qbo_sandbox.base_url + "/", timeout=5).text

    assert "Indexed" in page and "(au)" in page


def test_the_reads_the_export_engine_makes_before_writing(qbo_sandbox):
    # SANDBOX_REQUESTS.md (engine helper): Preferences, TaxCode pages and invoices by Id IN (...).
    qbo = connect_company(qbo_sandbox, "us-ast", seed="collisions")

    prefs = qbo.qb.query("SELECT * FROM Preferences")["QueryResponse"]["Preferences"]
    codes = qbo.qb.query("SELECT * FROM TaxCode STARTPOSITION 1 MAXRESULTS 1000")["QueryResponse"]["TaxCode"]
    invoices = qbo.qb.query("SELECT * FROM Invoice WHERE Id IN ('1', '2')")["QueryResponse"]["Invoice"]

    assert len(prefs) == 1 and prefs[0]["TaxPrefs"]["PartnerTaxEnabled"] is True
    assert [code["Id"] for code in codes] == ["TAX", "NON", "1", "2"]
    assert [(invoice["Id"], invoice["DocNumber"]) for invoice in invoices] == [("1", "INV-1044")]


def test_consent_page_without_the_seed_box_makes_an_empty_company_even_when_collisions_are_the_default(
    qbo_sandbox_factory,
):
    server = qbo_sandbox_factory(company_seed="collisions")
    form = {
        "client_id": server.config.client_id,
        "response_type": "code",
        "scope": "com.intuit.quickbooks.accounting",
        "redirect_uri": "http://localhost/cb",
        "action": "approve",
        "realm_id": "new",
        "company_name": "Unticked",
        "company_profile": "us-ast",
    }
    page = requests.get(f"{server.base_url}/connect/oauth2", params=form, timeout=5).text

    requests.post(f"{server.base_url}/connect/oauth2", data=form, allow_redirects=False, timeout=5)

    assert 'value="collisions" checked' in page
    assert server.entities(server.companies()[0]["realm_id"], "Customer") == []
