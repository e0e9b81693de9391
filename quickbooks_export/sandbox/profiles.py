"""Kinds of QuickBooks Online company the sandbox can be: country, currency, preferences, tax codes and rates.

A profile is what a real company of that kind reads like through the API: CompanyInfo (Country, addresses),
Preferences (CurrencyPrefs, SalesFormsPrefs.CustomTxnNumbers, TaxPrefs) and its TaxCode / TaxRate lists. The
accounting rules (accounting.py) read the company's Preferences entity, not the profile, so a test that edits the
Preferences (SandboxServer.edit_entity) changes how the company behaves, as in QuickBooks.

Sources (docs/quickbooks_sales_tax.md has the full list):
- Intuit, "Manage sales tax for US locales": lines carry the pseudo codes TAX / NON, TxnTaxDetail.TxnTaxCodeRef
  names a tax rate or group; AST (Preferences.TaxPrefs.PartnerTaxEnabled) computes from the ship-to address.
- Intuit, "Manage sales tax for non-US locales": every taxable line carries a TaxCode made of one or more rates.
- The US manual-tax codes follow Intuit's US sandbox sample company ("California" 8%, "Tucson" = AZ State tax 7.1%
  + Tucson City 2%). The Canadian, UK and Australian code names follow those locales' default QuickBooks lists
  (*unconfirmed* in detail: Ids and descriptions are ours).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

DEFAULT_PROFILE = "us-ast"


@dataclass(frozen=True)
class Rate:
    name: str
    percent: Decimal
    agency: str


@dataclass(frozen=True)
class Code:
    name: str
    description: str
    rates: tuple[str, ...]  # names of Rate, in the order QuickBooks applies them
    taxable: bool = True


@dataclass(frozen=True)
class Jurisdiction:
    """Our stand-in for Intuit's AST engine: a destination (state, postal-code prefix) -> the code AST assigns."""

    state: str
    postal_prefix: str  # "" matches the whole state
    code: str


@dataclass(frozen=True)
class CompanyProfile:
    key: str
    description: str
    country: str
    currency: str
    address: dict
    time_zone: str
    automated_sales_tax: bool
    custom_txn_numbers: bool
    multicurrency: bool
    rates: tuple[Rate, ...]
    codes: tuple[Code, ...]
    # non-US: the 6000 detail when a line has no TaxCodeRef (see accounting._line_tax_code).
    missing_tax_code_detail: str = ""
    jurisdictions: tuple[Jurisdiction, ...] = ()
    # Demo data that collides with FieldSync's (billing/demo.py) when the company is seeded with "collisions".
    paid_invoice_doc_number: str | None = None

    @property
    def is_us(self) -> bool:
        return self.country == "US"


def _address(line1: str, city: str, region: str, postal: str, country: str) -> dict:
    return {
        "Line1": line1,
        "City": city,
        "CountrySubDivisionCode": region,
        "PostalCode": postal,
        "Country": country,
    }


D = Decimal

PROFILES: dict[str, CompanyProfile] = {
    profile.key: profile
    for profile in (
        CompanyProfile(
            key="us-ast",
            description="US company with automated sales tax (AST), USD, custom transaction numbers on",
            country="US",
            currency="USD",
            address=_address("2 N LaSalle St", "Chicago", "IL", "60602", "US"),
            time_zone="America/Chicago",
            automated_sales_tax=True,
            custom_txn_numbers=True,
            multicurrency=False,
            rates=(
                Rate("IL State", D("6.25"), "Illinois Department of Revenue"),
                Rate("Cook County", D("1.75"), "Illinois Department of Revenue"),
                Rate("Chicago City", D("1.25"), "Illinois Department of Revenue"),
                Rate("Chicago RTA", D("1.00"), "Illinois Department of Revenue"),
            ),
            codes=(
                Code(
                    "Chicago, IL",
                    "AST: Chicago, IL 10.25%",
                    ("IL State", "Cook County", "Chicago City", "Chicago RTA"),
                ),
                Code("Illinois", "AST: Illinois 6.25%", ("IL State",)),
            ),
            # Chicago addresses (606xx) pay 10.25%, the rest of Illinois 6.25%; the company has no other nexus,
            # so destinations outside Illinois pay no tax.
            jurisdictions=(Jurisdiction("IL", "606", "Chicago, IL"), Jurisdiction("IL", "", "Illinois")),
            paid_invoice_doc_number="INV-1044",
        ),
        CompanyProfile(
            key="us-manual-tax",
            description="US company with manual sales tax (created before AST), USD, custom transaction numbers off",
            country="US",
            currency="USD",
            address=_address("2700 Coast Ave", "Mountain View", "CA", "94043", "US"),
            time_zone="America/Los_Angeles",
            automated_sales_tax=False,
            custom_txn_numbers=False,
            multicurrency=False,
            rates=(
                Rate("California", D("8"), "Board of Equalization"),
                Rate("AZ State tax", D("7.1"), "Arizona Dept. of Revenue"),
                Rate("Tucson City", D("2"), "Tucson City"),
            ),
            codes=(
                Code("California", "California", ("California",)),
                Code("Tucson", "Tucson", ("AZ State tax", "Tucson City")),
            ),
        ),
        CompanyProfile(
            key="ca",
            description="Canadian company (Ontario), CAD, GST/HST, multicurrency on",
            country="CA",
            currency="CAD",
            address=_address("100 King St W", "Toronto", "ON", "M5X 1A9", "CA"),
            time_zone="America/Toronto",
            automated_sales_tax=False,
            custom_txn_numbers=True,
            multicurrency=True,
            rates=(
                Rate("HST ON", D("13"), "Canada Revenue Agency"),
                Rate("GST", D("5"), "Canada Revenue Agency"),
                Rate("GST/HST ZR", D("0"), "Canada Revenue Agency"),
                Rate("Exempt", D("0"), "Canada Revenue Agency"),
            ),
            codes=(
                Code("HST ON", "HST ON 13%", ("HST ON",)),
                Code("GST", "GST 5%", ("GST",)),
                Code("Zero-rated", "Zero-rated 0%", ("GST/HST ZR",)),
                Code("Exempt", "Exempt", ("Exempt",), taxable=False),
            ),
            # Observed QBO answer for a Canadian invoice line without a tax code (activepieces issue #8539, 2025).
            missing_tax_code_detail="Make sure all your transactions have a GST/HST rate before you save.",
        ),
        CompanyProfile(
            key="uk",
            description="UK company, GBP, VAT",
            country="GB",
            currency="GBP",
            address=_address("1 Poultry", "London", "", "EC2R 8EJ", "GB"),
            time_zone="Europe/London",
            automated_sales_tax=False,
            custom_txn_numbers=True,
            multicurrency=False,
            rates=(
                Rate("20.0% S", D("20"), "HM Revenue & Customs"),
                Rate("5.0% R", D("5"), "HM Revenue & Customs"),
                Rate("0.0% Z", D("0"), "HM Revenue & Customs"),
                Rate("Exempt", D("0"), "HM Revenue & Customs"),
            ),
            codes=(
                Code("20.0% S", "Standard rate 20%", ("20.0% S",)),
                Code("5.0% R", "Reduced rate 5%", ("5.0% R",)),
                Code("0.0% Z", "Zero rate", ("0.0% Z",)),
                Code("Exempt", "Exempt", ("Exempt",), taxable=False),
            ),
            # Observed QBO answer for a UK invoice line without a VAT code (intuit/quickbooks-online-mcp-server #94).
            missing_tax_code_detail="Make sure all your transactions have a VAT rate before you save.",
        ),
        CompanyProfile(
            key="au",
            description="Australian company, AUD, GST",
            country="AU",
            currency="AUD",
            address=_address("1 Martin Pl", "Sydney", "NSW", "2000", "AU"),
            time_zone="Australia/Sydney",
            automated_sales_tax=False,
            custom_txn_numbers=True,
            multicurrency=False,
            rates=(
                Rate("GST (sales)", D("10"), "Australian Taxation Office"),
                Rate("GST free (sales)", D("0"), "Australian Taxation Office"),
                Rate("Input taxed (sales)", D("0"), "Australian Taxation Office"),
            ),
            codes=(
                Code("GST", "GST 10%", ("GST (sales)",)),
                Code("FRE", "GST free", ("GST free (sales)",)),
                Code("INP", "Input taxed", ("Input taxed (sales)",), taxable=False),
            ),
            # *unconfirmed*: wording by analogy with the observed Canadian and UK answers.
            missing_tax_code_detail="Make sure all your transactions have a GST rate before you save.",
        ),
    )
}

SEEDS = (None, "collisions")

# What "collisions" seeds: QuickBooks data made by hand that collides with FieldSync's demo (billing/demo.py).
COLLIDING_INVENTORY_ITEM = "Water heater"  # INV-1041's first line: an Inventory item, never to be used
COLLIDING_CATEGORY = "Drain cleaning"  # INV-1046's service: a Category, cannot be on a line
COLLIDING_INACTIVE_SERVICE = "Pest control"  # INV-1044/1045's service: a Service item made inactive
COLLIDING_INACTIVE_CUSTOMER = "Lakeview Property Management"  # a demo customer, inactive in QuickBooks
HAND_KEYED_CUSTOMER = "Counter Sales"  # owns the hand-keyed, already paid invoice


def get_profile(key: str | None) -> CompanyProfile:
    """The profile named `key` (None: the default); ValueError naming the choices otherwise."""
    profile = PROFILES.get(key or DEFAULT_PROFILE)
    if profile is None:
        raise ValueError(f"unknown company profile {key!r}; choose one of {', '.join(PROFILES)}")
    return profile


def check_seed(seed: str | None) -> str | None:
    """The seed to apply: None (also "none") or "collisions"; ValueError otherwise."""
    if seed == "none":
        return None
    if seed not in SEEDS:
        raise ValueError(f"unknown seed {seed!r}; choose none or 'collisions'")
    return seed
