"""The QuickBooks page says what kind of company is connected, in plain words, and where tax codes are chosen."""

import pytest
from django.urls import reverse

from billing import services as billing_services
from quickbooks_export.models import QuickBooksCompanyProfile, QuickBooksMappingSettings, QuickBooksTaxCodeMapping
from tests.quickbooks_export.export.conftest import connect

pytestmark = pytest.mark.django_db


@pytest.fixture
def us_company(qbo_sandbox, settings, db):
    return connect(qbo_sandbox, settings, profile="us-manual-tax")


def test_connecting_reads_the_company_and_the_page_says_what_it_is(manager_client, us_company):
    profile = QuickBooksCompanyProfile.objects.get(realm_id=us_company.realm_id)
    assert profile.describe().startswith("US company, sales tax set by hand, USD")
    html = manager_client.get(reverse("quickbooks_export:settings")).content.decode()
    assert "US company, sales tax set by hand, USD" in html
    assert "Save tax codes" in html and "California" in html


def test_choosing_tax_codes_saves_the_default_and_one_per_rate(manager_client, us_company):
    rate = billing_services.tax_rate_create(name="Tucson", percentage="9.1")
    codes = {c["Name"]: c["Id"] for c in us_company.entities("TaxCode")}
    response = manager_client.post(
        reverse("quickbooks_export:tax_codes"),
        {"sales_tax_code": codes["California"], "no_tax_code": "", f"rate_{rate.pk}": codes["Tucson"]},
    )
    assert response.status_code == 302
    mapping = QuickBooksMappingSettings.objects.get(realm_id=us_company.realm_id)
    assert (mapping.sales_tax_code_id, mapping.sales_tax_code_name) == (codes["California"], "California")
    row = QuickBooksTaxCodeMapping.objects.get(tax_rate=rate)
    assert (row.qbo_tax_code_id, row.qbo_tax_code_name) == (codes["Tucson"], "Tucson")


def test_an_unknown_tax_code_is_refused_and_nothing_changes(manager_client, us_company):
    response = manager_client.post(reverse("quickbooks_export:tax_codes"), {"sales_tax_code": "9999"})
    assert response.status_code == 400
    assert not QuickBooksMappingSettings.objects.filter(realm_id=us_company.realm_id, sales_tax_code_id="9999").exists()


def test_someone_without_the_manage_permission_cannot_choose_or_refresh(viewer_client, us_company):
    for name in ("quickbooks_export:tax_codes", "quickbooks_export:company_refresh"):
        assert viewer_client.post(reverse(name), {"sales_tax_code": ""}).status_code == 403


def test_read_the_company_again(manager_client, us_company, qbo_sandbox):
    prefs = us_company.entities("Preferences")[0]
    qbo_sandbox.edit_entity(
        us_company.realm_id, "Preferences", prefs["Id"], {"TaxPrefs": {**prefs["TaxPrefs"], "UsingSalesTax": False}}
    )
    response = manager_client.post(reverse("quickbooks_export:company_refresh"), follow=True)
    assert "US company, no sales tax, USD" in response.content.decode()
