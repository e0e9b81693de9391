"""Read the QuickBooks company before writing to it: country, home currency, multicurrency, custom transaction
numbers, sales tax (automated or not) and its tax codes. Read at connect and before each export run, kept for a few
minutes (QuickBooks meters reads), refreshed on demand from the QuickBooks page.

Sources (docs/quickbooks_books_match.md): Intuit API reference, CompanyInfo (Country, and HomeCurrency is in
Preferences.CurrencyPrefs), Preferences (CurrencyPrefs.MultiCurrencyEnabled, SalesFormsPrefs.CustomTxnNumbers,
TaxPrefs.UsingSalesTax, TaxPrefs.PartnerTaxEnabled from minorversion 3), TaxCode; class and location tracking
(AccountingInfoPrefs.ClassTrackingPerTxn / ClassTrackingPerTxnLine / TrackDepartments / DepartmentTerminology) and the
Class and Department lists (docs/business_units.md, "Class and location per unit").
"""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from fieldsync.exceptions import ApplicationError

from .client import QuickBooksClient
from .models import ClassTracking, QuickBooksCompanyProfile, QuickBooksUnitTracking

MAX_AGE = timedelta(minutes=5)


class CurrencyMismatch(ApplicationError):
    code = "currency_mismatch"


class CompanyUnreadable(ApplicationError):
    """QuickBooks refused to tell the company's settings and none were ever stored: its currency is unknown."""

    code = "company_unreadable"


def _ref(value) -> str:
    return str((value or {}).get("value", "")) if isinstance(value, dict) else str(value or "")


def _class_tracking(accounting: dict) -> str:
    """Intuit ("Categorize income and expenses"): class tracking is on when ClassTrackingPerTxn or
    ClassTrackingPerTxnLine is true; the first puts one class on the whole transaction, the second one per line."""
    if accounting.get("ClassTrackingPerTxnLine"):
        return ClassTracking.PER_LINE
    if accounting.get("ClassTrackingPerTxn"):
        return ClassTracking.PER_TRANSACTION
    return ClassTracking.OFF


_LIST_QUERIES = {
    "Class": "SELECT * FROM Class WHERE Active IN (true, false)",
    "Department": "SELECT * FROM Department WHERE Active IN (true, false)",
}


def _listed(client: QuickBooksClient, entity: str) -> list[dict]:
    """A Class or Department list, inactive ones included (a query names Active to get them) so a choice that was
    made inactive in QuickBooks shows as such."""
    rows = client.query_all(_LIST_QUERIES[entity])
    return [
        {
            "id": str(row["Id"]),
            "name": row.get("FullyQualifiedName") or row.get("Name", ""),
            "active": row.get("Active", True),
        }
        for row in rows
    ]


def company_profile_refresh(*, client: QuickBooksClient) -> QuickBooksCompanyProfile:
    """Read CompanyInfo, Preferences and the TaxCode list (three requests), and the Class / Department lists while the
    company tracks them (one more request each), and store them. Network: call outside any transaction."""
    info = client.company_info()
    prefs_rows = client.query("SELECT * FROM Preferences")
    prefs = prefs_rows[0] if prefs_rows else {}
    codes = client.query_all("SELECT * FROM TaxCode")
    currency_prefs = prefs.get("CurrencyPrefs") or {}
    tax_prefs = prefs.get("TaxPrefs") or {}
    sales_forms = prefs.get("SalesFormsPrefs") or {}
    accounting = prefs.get("AccountingInfoPrefs") or {}
    class_tracking = _class_tracking(accounting)
    track_departments = bool(accounting.get("TrackDepartments"))
    country = (info.get("Country") or (info.get("CompanyAddr") or {}).get("Country") or "").upper()[:2]
    profile, _ = QuickBooksCompanyProfile.objects.update_or_create(
        realm_id=client.realm_id,
        defaults={
            "country": country,
            "home_currency": _ref(currency_prefs.get("HomeCurrency")).upper()[:3],
            "multicurrency_enabled": bool(currency_prefs.get("MultiCurrencyEnabled")),
            "custom_txn_numbers": bool(sales_forms.get("CustomTxnNumbers", True)),
            "using_sales_tax": bool(tax_prefs.get("UsingSalesTax")),
            "automated_sales_tax": bool(tax_prefs.get("PartnerTaxEnabled")),
            "tax_codes": [
                {"id": str(c["Id"]), "name": c.get("Name", ""), "active": c.get("Active", True) is not False}
                for c in codes
            ],
            "class_tracking": class_tracking,
            "track_departments": track_departments,
            "department_terminology": str(accounting.get("DepartmentTerminology") or "")[:40],
            "classes": _listed(client, "Class") if class_tracking != ClassTracking.OFF else [],
            "departments": _listed(client, "Department") if track_departments else [],
            "read_at": timezone.now(),
        },
    )
    return profile


def company_profile_get(*, realm_id: str) -> QuickBooksCompanyProfile | None:
    return QuickBooksCompanyProfile.objects.filter(realm_id=realm_id).first()


def company_profile_current(*, client: QuickBooksClient, max_age: timedelta = MAX_AGE) -> QuickBooksCompanyProfile:
    """The stored profile when younger than `max_age`, else a fresh read."""
    profile = company_profile_get(realm_id=client.realm_id)
    if profile is not None and timezone.now() - profile.read_at < max_age:
        return profile
    return company_profile_refresh(client=client)


def company_currency_check(profile: QuickBooksCompanyProfile | None) -> None:
    """Refuse a company whose home currency is not this deployment's: never post USD amounts into a CAD company."""
    ours = settings.FIELDSYNC_CURRENCY
    if profile is None or not profile.home_currency or profile.home_currency == ours:
        return
    raise CurrencyMismatch(
        f"The QuickBooks company keeps its books in {profile.home_currency}; FieldSync works in {ours}. Nothing was "
        f"sent. Connect a QuickBooks company whose home currency is {ours}.",
        extra={"company_currency": profile.home_currency, "fieldsync_currency": ours},
    )


def invoice_tax_code_id(*, tax_rate_id: int | None, per_rate: dict[int, str], settings_row) -> str:
    """The QuickBooks TaxCode that carries a taxed invoice's tax: the one chosen for its tax rate, else the company's
    default (QuickBooksMappingSettings, None when nothing was chosen). The export and the hold's "Update the
    QuickBooks invoice" both call this, so they send the same code."""
    return per_rate.get(tax_rate_id, "") or (settings_row.sales_tax_code_id if settings_row else "")


@transaction.atomic
def tax_code_mapping_update(
    *, realm_id: str, user, sales_tax_code_id: str, no_tax_code_id: str, per_rate: dict[int, str]
) -> None:
    """Save which QuickBooks TaxCode our taxed invoices (by default and per tax rate) and untaxed lines use. Ids must
    be active codes of the company's profile; "" clears a choice."""
    from billing.models import TaxRate

    from .models import QuickBooksMappingSettings, QuickBooksTaxCodeMapping

    profile = company_profile_get(realm_id=realm_id)
    names = {c["id"]: c["name"] for c in (profile.tax_codes if profile else []) if c.get("active", True)}
    for code in (sales_tax_code_id, no_tax_code_id, *per_rate.values()):
        if code and code not in names:
            raise ApplicationError(
                f"QuickBooks has no active tax code {code}; read the company again on the QuickBooks page and "
                "choose again.",
                code="unknown_tax_code",
            )
    rates = {rate.pk: rate for rate in TaxRate.objects.filter(pk__in=list(per_rate))}
    if missing := set(per_rate) - set(rates):
        raise ApplicationError(f"No tax rate with id {', '.join(map(str, sorted(missing)))}.", code="unknown_tax_rate")
    mapping, _ = QuickBooksMappingSettings.objects.select_for_update().get_or_create(realm_id=realm_id)
    mapping.sales_tax_code_id, mapping.sales_tax_code_name = sales_tax_code_id, names.get(sales_tax_code_id, "")
    mapping.no_tax_code_id, mapping.no_tax_code_name = no_tax_code_id, names.get(no_tax_code_id, "")
    mapping.updated_by = user
    mapping.full_clean()
    mapping.save()
    for rate_id, code in per_rate.items():
        if code:
            QuickBooksTaxCodeMapping.objects.update_or_create(
                realm_id=realm_id,
                tax_rate=rates[rate_id],
                defaults={"qbo_tax_code_id": code, "qbo_tax_code_name": names[code]},
            )
        else:
            QuickBooksTaxCodeMapping.objects.filter(realm_id=realm_id, tax_rate_id=rate_id).delete()


@transaction.atomic
def unit_tracking_update(*, realm_id: str, business_unit, user, class_id: str, department_id: str) -> None:
    """Save the class and location a unit's invoices carry in this company. Ids must be active entries of the
    company's lists as last read (and the company must track them); "" clears a choice."""
    profile = company_profile_get(realm_id=realm_id)
    if profile is None:
        raise ApplicationError(
            "FieldSync has not read this QuickBooks company yet; read it on the QuickBooks page first.",
            code="company_not_read",
        )
    classes, departments = profile.active_choices("classes"), profile.active_choices("departments")
    if class_id and (not profile.tracks_classes or class_id not in classes):
        raise ApplicationError(
            f"QuickBooks has no active class {class_id} (or class tracking is off); read the company again on the "
            "QuickBooks page and choose again.",
            code="unknown_class",
        )
    if department_id and (not profile.track_departments or department_id not in departments):
        raise ApplicationError(
            f"QuickBooks has no active {profile.location_label.lower()} {department_id} (or "
            f"{profile.location_label.lower()} tracking is off); read the company again on the QuickBooks page and "
            "choose again.",
            code="unknown_department",
        )
    if not class_id and not department_id:
        QuickBooksUnitTracking.objects.filter(realm_id=realm_id, business_unit=business_unit).delete()
        return
    row, _ = QuickBooksUnitTracking.objects.select_for_update().get_or_create(
        realm_id=realm_id, business_unit=business_unit
    )
    row.class_id, row.class_name = class_id, classes.get(class_id, "")
    row.department_id, row.department_name = department_id, departments.get(department_id, "")
    row.updated_by = user
    row.full_clean()
    row.save()
