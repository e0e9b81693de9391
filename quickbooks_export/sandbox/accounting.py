"""QuickBooks Online's accounting rules for the entities FieldSync uses.

`Books(company, now)` performs one operation on one company; the caller holds `company.lock`. Every operation
validates completely before it changes anything, so a refused request (or batch item) leaves no trace.

Behaviour follows Intuit's API reference, QBO.md and docs/quickbooks_sales_tax.md (tax, totals, numbering, items,
inactive objects, currency, per kind of company: profiles.py); choices without a documented source say
*unconfirmed*.
"""

from __future__ import annotations

import copy
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from . import deposits, faults, profiles, query, refunds
from .faults import QboFault
from .store import ENTITY_NAMES, Company, qbo_datetime, qbo_time

MAX_BATCH_ITEMS = 30
MAX_BATCH_ID_WITH_REQUESTID = 10  # Intuit: "For each batch ID, only 10 characters are allowed when RequestID is..."
MAX_CDC_OBJECTS = 1000  # Intuit: a Change Data Capture answer holds at most 1,000 objects
SYSTEM_FIELDS = frozenset({"Id", "SyncToken", "MetaData", "domain", "sparse", "status", "time"})
DECIMAL_KEYS = frozenset({
    "Amount", "TotalAmt", "UnitPrice", "Qty", "TotalTax", "Balance", "UnappliedAmt", "Deposit", "ExchangeRate",
    "HomeBalance", "HomeTotalAmt", "BalanceWithJobs", "CurrentBalance", "CurrentBalanceWithSubAccounts",
    "TaxPercent", "NetAmountTaxable", "PurchaseCost", "QtyOnHand", "TaxInclusiveAmt",
})  # fmt: skip
ENTITY_BY_PATH = {name.lower(): name for name in ENTITY_NAMES}
ZERO = Decimal("0")
CENT = Decimal("0.01")
# Name lists: they carry Active, and a query answers only active ones unless its WHERE names Active.
NAME_LISTS = frozenset({"Account", "Class", "Customer", "Department", "Item", "PaymentMethod", "TaxCode", "TaxRate"})
# Read-only lists of a company: QuickBooks creates them (TaxService / AST / company setup), not the API's create.
NOT_CREATABLE = frozenset({"CompanyInfo", "Preferences", "TaxCode", "TaxRate"})
ITEM_TYPES = ("Service", "NonInventory", "Inventory", "Category")
US_LINE_TAX_CODES = ("TAX", "NON")
CURRENCY_NAMES = {
    "USD": "United States Dollar",
    "CAD": "Canadian Dollar",
    "GBP": "British Pound Sterling",
    "AUD": "Australian Dollar",
    "EUR": "Euro",
}

ACCOUNT_CLASSIFICATION = {
    "Bank": "Asset",
    "Other Current Asset": "Asset",
    "Fixed Asset": "Asset",
    "Other Asset": "Asset",
    "Accounts Receivable": "Asset",
    "Equity": "Equity",
    "Expense": "Expense",
    "Other Expense": "Expense",
    "Cost of Goods Sold": "Expense",
    "Accounts Payable": "Liability",
    "Credit Card": "Liability",
    "Long Term Liability": "Liability",
    "Other Current Liability": "Liability",
    "Income": "Revenue",
    "Other Income": "Revenue",
}
DEPOSIT_ACCOUNT_TYPES = ("Bank", "Other Current Asset")

# What a new company holds. Account names follow a new QBO company; payment methods follow Intuit's sandbox
# sample company (Ids 1-7, "Diners Club" is Id 7 in Intuit's PaymentMethod sample) plus ACH/EFT, which FieldSync
# maps bank transfers to (*unconfirmed*: not in Intuit's sample company).
SEED_ACCOUNTS = (
    ("Checking", "Bank", "Checking"),
    ("Undeposited Funds", "Other Current Asset", "UndepositedFunds"),
    ("Accounts Receivable (A/R)", "Accounts Receivable", "AccountsReceivable"),
    ("Services", "Income", "ServiceFeeIncome"),
)
SEED_PAYMENT_METHODS = (
    ("Cash", "NON_CREDIT_CARD"),
    ("Check", "NON_CREDIT_CARD"),
    ("Visa", "CREDIT_CARD"),
    ("MasterCard", "CREDIT_CARD"),
    ("Discover", "CREDIT_CARD"),
    ("American Express", "CREDIT_CARD"),
    ("Diners Club", "CREDIT_CARD"),
    ("ACH/EFT", "NON_CREDIT_CARD"),
)

# Read-only fields each entity computes; values sent for them are ignored.
COMPUTED_FIELDS = {
    "Customer": frozenset({"Balance", "BalanceWithJobs", "FullyQualifiedName", "Level"}),
    "Item": frozenset({"FullyQualifiedName", "Level"}),
    "Account": frozenset({"Classification", "FullyQualifiedName", "CurrentBalance", "CurrentBalanceWithSubAccounts"}),
    "PaymentMethod": frozenset(),
    "Class": frozenset({"FullyQualifiedName"}),
    "Department": frozenset({"FullyQualifiedName"}),
    "CompanyInfo": frozenset(),
    "Preferences": frozenset(),
    "TaxCode": frozenset(),
    "TaxRate": frozenset(),
    # Invoice.LinkedTxn lists the payments applied to it: QBO maintains it (links to payments are read-only).
    "Invoice": frozenset({"TotalAmt", "Balance", "HomeBalance", "HomeTotalAmt", "LinkedTxn"}),
    "Payment": frozenset({"UnappliedAmt", "LinkedTxn"}),
    "RefundReceipt": refunds.COMPUTED,
    "Deposit": deposits.COMPUTED,
}
DELETABLE = frozenset({"Invoice", "Payment"})
# The field each entity keeps unique (case-insensitively) within a company.
UNIQUE_FIELD = {
    "Customer": "DisplayName",
    "Item": "Name",
    "Account": "Name",
    "PaymentMethod": "Name",
    "Class": "Name",
    "Department": "Name",
    "Invoice": "DocNumber",
}  # name lists are made inactive (Active=false), never deleted


def normalize(value: object, key: str | None = None) -> object:
    """Input as the sandbox keeps it: nulls and empty strings dropped (QBO omits empty fields), amounts Decimal.

    Amounts arrive as JSON numbers or, from python-quickbooks with use_decimal, as strings ("100.10").
    """
    if isinstance(value, dict):
        return {k: normalize(v, k) for k, v in value.items() if v is not None and v != ""}
    if isinstance(value, list):
        return [normalize(item, key) for item in value if item is not None]
    if key in DECIMAL_KEYS and not isinstance(value, bool | dict | list):
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            raise faults.invalid_property(f"{key} must be a number, got {value!r}") from None
        if not number.is_finite():
            raise faults.invalid_property(f"{key} must be a number, got {value!r}")
        return number
    return value


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ("" if value is None else str(value))


def _check_length(fields: dict, name: str, maximum: int) -> None:
    value = fields.get(name)
    if isinstance(value, str) and len(value) > maximum:
        raise faults.string_too_long(name, maximum, len(value))


def _ref_value(ref: object) -> str | None:
    if isinstance(ref, dict):
        value = _text(ref.get("value"))
        return value or None
    if isinstance(ref, str | int):
        return _text(ref) or None
    return None


def _money(value: Decimal) -> Decimal:
    """To the cent, half up (*unconfirmed*: the rounding mode of QuickBooks' computed tax is not documented)."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def _today(now: float) -> str:
    return qbo_datetime(now).date().isoformat()


def _valid_date(fields: dict, name: str) -> None:
    value = fields.get(name)
    if value is None:
        return
    try:
        date.fromisoformat(str(value)[:10])
    except ValueError:
        raise faults.invalid_property(f"{name} must be a date (yyyy-MM-dd), got {value!r}") from None


def rebuild_indexes(company: Company) -> None:
    """Derive the indexes from the entities (after loading a company from its file)."""
    company.applications = {}
    for payment in company.entities["Payment"].values():
        for invoice_id, amount in _applications(payment).items():
            company.applications.setdefault(invoice_id, {})[payment["Id"]] = amount
    company.unique = {}
    for name in UNIQUE_FIELD:
        for entity in company.entities[name].values():
            _index_unique(company, name, None, entity)


def _unique_key(name: str, entity: dict | None) -> str:
    return _text(entity.get(UNIQUE_FIELD[name])).casefold() if entity else ""


def _index_unique(company: Company, name: str, old: dict | None, new: dict | None) -> None:
    if name not in UNIQUE_FIELD:
        return
    index = company.unique.setdefault(name, {})
    old_key, new_key = _unique_key(name, old), _unique_key(name, new)
    if old_key and index.get(old_key) == old["Id"]:
        del index[old_key]
    if new_key:
        index[new_key] = new["Id"]


def _applications(payment: dict) -> dict[str, Decimal]:
    applied: dict[str, Decimal] = {}
    for line in payment.get("Line", []):
        for linked in line.get("LinkedTxn", []):
            invoice_id = linked["TxnId"]
            applied[invoice_id] = applied.get(invoice_id, ZERO) + line["Amount"]
    return applied


def seed_company(
    company: Company,
    now: float,
    *,
    seed: str | None = None,
    custom_txn_numbers: bool | None = None,
    multicurrency: bool | None = None,
) -> None:
    """What a new sandbox company holds before anyone writes to it: CompanyInfo, Preferences, tax codes and rates
    of its profile, accounts, payment methods; with `seed="collisions"` also QuickBooks data made by hand that
    collides with FieldSync's demo (see profiles.py)."""
    profile = profiles.get_profile(company.profile)
    books = Books(company, now)
    books.insert(
        "CompanyInfo",
        {
            "CompanyName": company.name,
            "LegalName": company.name,
            "CompanyAddr": dict(profile.address),
            "LegalAddr": dict(profile.address),
            "CustomerCommunicationAddr": dict(profile.address),
            "Country": profile.country,
            "CompanyStartDate": _today(now),
            "FiscalYearStartMonth": "January",
            "SupportedLanguages": "en",
            "DefaultTimeZone": profile.time_zone,
            "NameValue": [{"Name": "CompanyType", "Value": "Sandbox"}],
        },
    )
    books.insert("Preferences", _preferences(profile, custom_txn_numbers, multicurrency))
    rate_ids = {}
    agencies: dict[str, str] = {}
    for rate in profile.rates:
        agency_id = agencies.setdefault(rate.agency, str(len(agencies) + 1))
        created = books.insert(
            "TaxRate",
            {
                "Name": rate.name,
                "Description": rate.name,
                "Active": True,
                "RateValue": rate.percent,
                "AgencyRef": {"value": agency_id, "name": rate.agency},
                "SpecialTaxType": "NONE",
                "DisplayType": "ReadOnly",
                "EffectiveTaxRate": [{"RateValue": rate.percent, "EffectiveDate": "2017-01-01T00:00:00-08:00"}],
            },
        )
        rate_ids[rate.name] = created["Id"]
    if profile.is_us:
        # The pseudo codes of US lines (Intuit, "Manage sales tax for US locales"): their Id is their name.
        for code, taxable in (("TAX", True), ("NON", False)):
            books.insert(
                "TaxCode",
                {"Name": code, "Description": code, "Active": True, "Taxable": taxable, "TaxGroup": False},
                entity_id=code,
            )
    for code in profile.codes:
        details = [
            {
                "TaxRateRef": {"value": rate_ids[name], "name": name},
                "TaxTypeApplicable": "TaxOnAmount",
                "TaxOrder": 0,
            }
            for name in code.rates
        ]
        books.insert(
            "TaxCode",
            {
                "Name": code.name,
                "Description": code.description,
                "Active": True,
                "Hidden": False,
                "Taxable": code.taxable,
                "TaxGroup": len(code.rates) > 1,
                "SalesTaxRateList": {"TaxRateDetail": details},
                "PurchaseTaxRateList": {"TaxRateDetail": []},
            },
        )
    for name, account_type, sub_type in SEED_ACCOUNTS:
        books.create("Account", {"Name": name, "AccountType": account_type, "AccountSubType": sub_type})
    for name, method_type in SEED_PAYMENT_METHODS:
        books.create("PaymentMethod", {"Name": name, "Type": method_type})
    if profiles.check_seed(seed) == "collisions":
        _seed_collisions(books, profile, now)


def _preferences(profile: profiles.CompanyProfile, custom_txn_numbers: bool | None, multicurrency: bool | None) -> dict:
    tax_prefs: dict = {"UsingSalesTax": True}
    if profile.is_us:
        # Intuit: PartnerTaxEnabled (minorversion >= 3) is true when the company uses automated sales tax.
        tax_prefs["PartnerTaxEnabled"] = profile.automated_sales_tax
    return {
        "AccountingInfoPrefs": {
            # Class and location tracking start off in a new company (Settings > Advanced > Categories); a test
            # turns them on by editing the Preferences, as a person does in QuickBooks (see _class_and_department).
            "TrackDepartments": False,
            "DepartmentTerminology": "Location",
            "ClassTrackingPerTxn": False,
            "ClassTrackingPerTxnLine": False,
            "CustomerTerminology": "Customers",
        },
        "ProductAndServicesPrefs": {
            "ForSales": True,
            "ForPurchase": True,
            "QuantityWithPriceAndRate": True,
            "QuantityOnHand": True,
        },
        "SalesFormsPrefs": {
            "CustomTxnNumbers": profile.custom_txn_numbers if custom_txn_numbers is None else custom_txn_numbers,
            "AllowDeposit": False,
            "AllowDiscount": False,
            "AllowShipping": False,
            "ETransactionEnabledStatus": "NotApplicable",
        },
        "TaxPrefs": tax_prefs,
        "CurrencyPrefs": {
            "MultiCurrencyEnabled": profile.multicurrency if multicurrency is None else multicurrency,
            "HomeCurrency": {"value": profile.currency},
        },
        "OtherPrefs": {"NameValue": [{"Name": "SalesFormsPrefs.DefaultCustomerMessage", "Value": ""}]},
    }


def _seed_collisions(books: Books, profile: profiles.CompanyProfile, now: float) -> None:
    """Hand-made QuickBooks data that collides with FieldSync's demo names and numbers (billing/demo.py)."""
    income = "4"  # Services (Income), seeded above
    asset = books.create(
        "Account", {"Name": "Inventory Asset", "AccountType": "Other Current Asset", "AccountSubType": "Inventory"}
    )
    cogs = books.create(
        "Account",
        {"Name": "Cost of Goods Sold", "AccountType": "Cost of Goods Sold", "AccountSubType": "SuppliesMaterialsCogs"},
    )
    books.create(
        "Item",
        {
            "Name": profiles.COLLIDING_INVENTORY_ITEM,
            "Type": "Inventory",
            "IncomeAccountRef": {"value": income},
            "ExpenseAccountRef": {"value": cogs["Account"]["Id"]},
            "AssetAccountRef": {"value": asset["Account"]["Id"]},
            "TrackQtyOnHand": True,
            "QtyOnHand": Decimal("3"),
            "InvStartDate": _today(now),
            "UnitPrice": Decimal("1299.00"),
        },
    )
    books.create("Item", {"Name": profiles.COLLIDING_CATEGORY, "Type": "Category"})
    inactive = books.create(
        "Item", {"Name": profiles.COLLIDING_INACTIVE_SERVICE, "Type": "Service", "IncomeAccountRef": {"value": income}}
    )["Item"]
    books.update("Item", {"Id": inactive["Id"], "SyncToken": inactive["SyncToken"], "sparse": True, "Active": False})
    customer = books.create("Customer", {"DisplayName": profiles.COLLIDING_INACTIVE_CUSTOMER})["Customer"]
    books.update(
        "Customer", {"Id": customer["Id"], "SyncToken": customer["SyncToken"], "sparse": True, "Active": False}
    )
    if profile.paid_invoice_doc_number:
        counter = books.create("Customer", {"DisplayName": profiles.HAND_KEYED_CUSTOMER})["Customer"]
        sale = books.create("Item", {"Name": "Counter sale", "Type": "Service", "IncomeAccountRef": {"value": income}})[
            "Item"
        ]
        line: dict = {
            "DetailType": "SalesItemLineDetail",
            "Amount": Decimal("120.00"),
            "Description": "Hand-keyed in QuickBooks",
            "SalesItemLineDetail": {"ItemRef": {"value": sale["Id"]}, "Qty": 1, "UnitPrice": Decimal("120.00")},
        }
        if profile.is_us:
            line["SalesItemLineDetail"]["TaxCodeRef"] = {"value": "NON"}
        invoice = books.create(
            "Invoice",
            {"CustomerRef": {"value": counter["Id"]}, "DocNumber": profile.paid_invoice_doc_number, "Line": [line]},
        )["Invoice"]
        books.create(
            "Payment",
            {
                "CustomerRef": {"value": counter["Id"]},
                "TotalAmt": invoice["TotalAmt"],
                "Line": [
                    {"Amount": invoice["TotalAmt"], "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}
                ],
            },
        )


def _copy(value: object) -> object:
    """A deep copy of JSON-shaped data (dicts, lists and immutable scalars: str, Decimal, int, bool), as
    copy.deepcopy would make it but several times cheaper: entities are copied on every write."""
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value


def _deep_merge(base: dict, changes: dict) -> dict:
    merged = dict(base)
    for key, value in changes.items():
        merged[key] = (
            _deep_merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
        )
    return merged


def _subtotal(lines: list[dict]) -> Decimal:
    return sum((line["Amount"] for line in lines if line.get("DetailType") == "SalesItemLineDetail"), ZERO)


def _invoice_total(invoice: dict) -> Decimal:
    return _subtotal(invoice["Line"]) + invoice.get("TxnTaxDetail", {}).get("TotalTax", ZERO)


def _line_tax(amount: Decimal, rate: dict) -> Decimal:
    """One line's tax at one rate. QuickBooks taxes line by line, rounding each line's tax to the cent before
    adding them up (QuickBooks Community, Intuit staff answers, 2019 and 2024: 31 lines of $1.59 at 12% give $9.71,
    not 12% of the $81.09 subtotal = $9.73). *unconfirmed*: half up; the same in AST companies."""
    return _money(amount * rate["RateValue"] / 100)


def _tax_line(rate: dict, amount: Decimal, net: Decimal) -> dict:
    return {
        "Amount": amount,
        "DetailType": "TaxLineDetail",
        "TaxLineDetail": {
            "TaxRateRef": {"value": rate["Id"], "name": rate["Name"]},
            "PercentBased": True,
            "TaxPercent": rate["RateValue"],
            "NetAmountTaxable": net,
        },
    }


class Books:
    """One operation on one company's books. The caller holds `company.lock`."""

    def __init__(self, company: Company, now: float) -> None:
        self.company = company
        self.now = now

    # --- Lookups ---

    def entities(self, name: str) -> dict[str, dict]:
        return self.company.entities[name]

    def get(self, name: str, entity_id: object) -> dict | None:
        return self.entities(name).get(_text(entity_id))

    def _referenced(self, name: str, ref: object, field: str, label: str, *, required: bool) -> dict | None:
        ref_id = _ref_value(ref)
        if ref_id is None:
            if required:
                raise faults.required_param_missing(field)
            return None
        entity = self.get(name, ref_id)
        if entity is None:
            raise faults.invalid_reference(label, ref_id)
        return entity

    def _holder(self, name: str, value: str) -> str | None:
        """The id of the entity whose unique field (UNIQUE_FIELD) equals `value`, ignoring case."""
        return self.company.unique.get(name, {}).get(value.casefold())

    def _unique(self, name: str, value: str, own_id: str | None) -> None:
        holder = self._holder(name, value)
        if holder is not None and holder != own_id:
            raise faults.duplicate_name(holder)

    # --- The company's settings (read from its Preferences, so a test that edits them changes the rules) ---

    def _profile(self) -> profiles.CompanyProfile:
        return profiles.get_profile(self.company.profile)

    def _prefs(self) -> dict:
        prefs = next(iter(self.entities("Preferences").values()), None)
        if prefs is None:  # a company kept in a data file from before profiles existed
            prefs = _preferences(self._profile(), None, None)
        return prefs

    def _country(self) -> str:
        info = next(iter(self.entities("CompanyInfo").values()), {})
        return info.get("Country") or self._profile().country

    def _home_currency(self) -> str:
        return self._prefs()["CurrencyPrefs"]["HomeCurrency"]["value"]

    def _multicurrency(self) -> bool:
        return bool(self._prefs()["CurrencyPrefs"].get("MultiCurrencyEnabled"))

    def _custom_txn_numbers(self) -> bool:
        return bool(self._prefs()["SalesFormsPrefs"].get("CustomTxnNumbers"))

    def _using_sales_tax(self) -> bool:
        return bool(self._prefs()["TaxPrefs"].get("UsingSalesTax"))

    def _automated_sales_tax(self) -> bool:
        return bool(self._prefs()["TaxPrefs"].get("PartnerTaxEnabled"))

    # --- Operations (each returns the answer body without "time") ---

    def read(self, name: str, entity_id: str) -> dict:
        entity = self.get(name, entity_id)
        if name == "CompanyInfo" and entity_id == self.company.realm_id:
            # QBO reads CompanyInfo by realm id (GET /companyinfo/{realmId}); its Id is "1".
            entity = next(iter(self.entities(name).values()))
        if entity is None:
            raise faults.object_not_found(name, entity_id)
        return {name: entity}

    def preferences(self) -> dict:
        """GET /v3/company/{realmId}/preferences: the company's one Preferences object."""
        return {"Preferences": self._prefs()}

    def create(self, name: str, body: dict) -> dict:
        body = normalize(body)
        if name in NOT_CREATABLE:
            # CompanyInfo and Preferences exist once per company; tax codes and rates are made by QuickBooks'
            # TaxService / AST, not by a create on these endpoints (Intuit, "Manage sales tax for US locales").
            raise faults.unsupported_operation(f"Create for {name}")
        fields = self._writable(name, body)
        fields = self._prepare(name, fields, None)
        written = self._write(name, fields, None)
        self.company.events.append((name, written["Id"], "Create", self.now))
        return {name: written}

    def update(self, name: str, body: dict) -> dict:
        body = normalize(body)
        existing = self._current(name, body)
        fields = self._writable(name, body)
        if body.get("sparse") in (True, "true"):
            merged = self._writable(name, existing)
            if name == "Invoice" and "TxnTaxDetail" not in body:
                # The tax kept from the last save is QuickBooks' own figure, not one sent now: it is computed
                # again from the (possibly changed) lines, keeping only the chosen tax code.
                kept = {k: v for k, v in merged.get("TxnTaxDetail", {}).items() if k == "TxnTaxCodeRef"}
                merged["TxnTaxDetail"] = kept
            if name == "Preferences":
                # Intuit's Preferences update example sends only the settings it changes, inside their groups
                # (*unconfirmed* for every group): nested groups are merged, not replaced.
                fields = _deep_merge(merged, fields)
            else:
                merged.update(fields)
                fields = merged
        if name == "Payment" and (
            fields.get("TotalAmt") != existing["TotalAmt"] or _applications(fields) != _applications(existing)
        ):
            deposits.refuse_change_of_deposited(self, existing, what="its amount and lines cannot change.")
        fields = self._prepare(name, fields, existing)
        written = self._write(name, fields, existing)
        self.company.events.append((name, written["Id"], "Update", self.now))
        return {name: written}

    def delete(self, name: str, body: dict) -> dict:
        if name not in DELETABLE:
            raise faults.unsupported_operation(f"Delete for {name}")
        existing = self._current(name, body)
        if name == "Payment":
            deposits.refuse_change_of_deposited(self, existing, what="remove it from the deposit before deleting it.")
        if name == "Invoice" and self.company.applications.get(existing["Id"]):
            # Intuit: "You must unlink any linked transactions associated with the invoice object before
            # deleting it." The code is *unconfirmed*; 6000 is QBO's generic business validation error.
            raise faults.business_validation(
                f"Invoice {existing['Id']} has payments applied; delete or change those payments first."
            )
        del self.entities(name)[existing["Id"]]
        self.company.deleted.setdefault(name, {})[existing["Id"]] = self.now  # for Change Data Capture
        self.company.events.append((name, existing["Id"], "Delete", self.now))
        _index_unique(self.company, name, existing, None)
        self._after_write(name, existing, None)
        return {name: {"status": "Deleted", "domain": "QBO", "Id": existing["Id"]}}

    def void(self, name: str, body: dict) -> dict:
        if name not in DELETABLE:
            raise faults.unsupported_operation(f"Void for {name}")
        existing = self._current(name, body)
        if name == "Payment":
            deposits.refuse_change_of_deposited(self, existing, what="remove it from the deposit before voiding it.")
        fields = self._writable(name, existing)
        note = fields.get("PrivateNote")
        # Intuit: amounts are zeroed and "Voided" is injected into PrivateNote, prepended to existing text.
        fields["PrivateNote"] = f"Voided - {note}" if note and not note.startswith("Voided") else note or "Voided"
        if name == "Payment":
            fields["TotalAmt"] = ZERO
            fields["Line"] = []
        else:
            if self.company.applications.get(existing["Id"]):
                # *unconfirmed*: QBO's answer for voiding an invoice with payments applied.
                raise faults.business_validation(
                    f"Invoice {existing['Id']} has payments applied; remove them before voiding it."
                )
            for line in fields.get("Line", []):
                line["Amount"] = ZERO
                detail = line.get("SalesItemLineDetail")
                if isinstance(detail, dict) and "Qty" in detail:
                    detail["Qty"] = ZERO
            fields["TxnTaxDetail"] = {"TotalTax": ZERO}
        written = self._write(name, fields, existing)
        self.company.events.append((name, written["Id"], "Void", self.now))
        return {name: written}

    def cdc(self, entities: str, changed_since: str) -> dict:
        """GET /cdc?entities=Payment,Invoice&changedSince=<ISO time> (Intuit, "Change data capture"): every object
        of those entities changed since then, deleted ones as {"Id", "status": "Deleted", "MetaData"}. Intuit:
        changedSince may go back at most 30 days, and one answer holds at most 1,000 objects. Which ones a capped
        answer keeps, and the code of the 30-day refusal, are *unconfirmed*: the sandbox keeps the oldest 1,000 (by
        LastUpdatedTime) and answers 6000."""
        from datetime import datetime, timedelta

        try:
            since = datetime.fromisoformat(changed_since.replace("Z", "+00:00"))
        except ValueError:
            raise faults.invalid_property(f"changedSince {changed_since!r} is not a date and time") from None
        if since.tzinfo is None:
            since = since.replace(tzinfo=qbo_datetime(self.now).tzinfo)
        if since < qbo_datetime(self.now) - timedelta(days=30):
            raise faults.business_validation("changedSince must be within the last 30 days.")
        names = [n for n in ENTITY_NAMES for wanted in entities.split(",") if n.casefold() == wanted.strip().casefold()]
        if not names:
            raise faults.required_param_missing("entities")
        found: list[tuple[datetime, str, dict]] = []
        for name in names:
            for entity in self.entities(name).values():
                updated = datetime.fromisoformat(entity["MetaData"]["LastUpdatedTime"])
                if updated >= since:
                    found.append((updated, name, entity))
            for entity_id, when in self.company.deleted.get(name, {}).items():
                updated = qbo_datetime(when)
                if updated >= since:
                    tombstone = {"Id": entity_id, "status": "Deleted", "domain": "QBO"}
                    tombstone["MetaData"] = {"LastUpdatedTime": qbo_time(when)}
                    found.append((updated, name, tombstone))
        found.sort(key=lambda item: item[0])
        found = found[:MAX_CDC_OBJECTS]
        responses = []
        for name in names:
            rows = [copy.deepcopy(entity) for _, n, entity in found if n == name]
            responses.append({name: rows, "startPosition": 1, "maxResults": len(rows)})
        return {"CDCResponse": [{"QueryResponse": responses}]}

    def query(self, text: str) -> dict:
        parsed = query.parse(text)
        name = next((n for n in ENTITY_NAMES if n.casefold() == parsed.entity.casefold()), None)
        if name is None:
            raise faults.query_validation_error(f"Entity {parsed.entity} is not supported by the sandbox")
        rows = list(self.entities(name).values())
        if name in NAME_LISTS and not any(c.field.casefold() == "active" for c in parsed.conditions):
            # Intuit (data queries): a query returns only active name-list objects unless the WHERE clause
            # asks for Active (e.g. `WHERE Active IN (true, false)` or `WHERE Active = false`).
            rows = [row for row in rows if row.get("Active", True) is not False]
        return {"QueryResponse": query.run(parsed, name, rows)}

    def batch(self, body: dict, requestid: str | None) -> dict:
        items = body.get("BatchItemRequest")
        if not isinstance(items, list) or not items:
            raise faults.required_param_missing("BatchItemRequest")
        if len(items) > MAX_BATCH_ITEMS:
            # The limit is documented; the code of the refusal is *unconfirmed* (6000, as for an over-long id).
            raise faults.business_validation(
                f"A batch can hold at most {MAX_BATCH_ITEMS} items; this one has {len(items)}."
            )
        answers = []
        for item in items:
            bid = _text(item.get("bId")) if isinstance(item, dict) else ""
            try:
                if not bid:
                    raise faults.required_param_missing("bId")
                if requestid and len(bid) > MAX_BATCH_ID_WITH_REQUESTID:
                    raise faults.business_validation(
                        f"bId {bid} is longer than {MAX_BATCH_ID_WITH_REQUESTID} characters, the most allowed "
                        "when the batch has a requestid."
                    )
                answers.append({"bId": bid, **self._batch_item(item)})
            except QboFault as fault:
                # Items are independent: one refusal does not stop the others.
                answers.append({"bId": bid, "Fault": fault.fault()})
        return {"BatchItemResponse": answers}

    def _batch_item(self, item: dict) -> dict:
        if "Query" in item:
            return self.query(_text(item["Query"]))
        name = next((key for key in item if key in ENTITY_NAMES), None)
        if name is None or not isinstance(item[name], dict):
            raise faults.invalid_property("A batch item needs an entity (Customer, Invoice, ...) or a Query")
        operation = item.get("operation")
        body = item[name]
        if name in ("TaxCode", "TaxRate"):
            raise faults.unsupported_operation(f"{operation!r} of {name} in a batch item")  # read-only, as over HTTP
        if operation == "create":
            return self.create(name, body)
        if operation == "update":
            return self.update(name, body)
        if operation == "delete":
            return self.delete(name, body)
        raise faults.unsupported_operation(f"{operation!r} in a batch item")

    # --- Writing ---

    def _current(self, name: str, body: dict) -> dict:
        """The entity an update/delete/void names, after the optimistic-locking check."""
        entity_id = _text(body.get("Id"))
        if not entity_id:
            raise faults.required_param_missing("Id")
        existing = self.entities(name).get(entity_id)
        if existing is None and name == "CompanyInfo" and entity_id == self.company.realm_id:
            existing = next(iter(self.entities(name).values()))
        if existing is None:
            raise faults.object_not_found(name, entity_id)
        if "SyncToken" not in body:
            raise faults.required_param_missing("SyncToken")
        if _text(body["SyncToken"]) != existing["SyncToken"]:
            raise faults.stale_object(name, existing["Id"])
        return existing

    def _writable(self, name: str, body: dict) -> dict:
        excluded = SYSTEM_FIELDS | COMPUTED_FIELDS[name]
        return {key: _copy(value) for key, value in body.items() if key not in excluded}

    def insert(self, name: str, fields: dict, *, entity_id: str | None = None) -> dict:
        """Store an entity with no rules applied (seeding)."""
        return self._write(name, fields, None, entity_id=entity_id)

    def _write(self, name: str, fields: dict, existing: dict | None, *, entity_id: str | None = None) -> dict:
        stamp = qbo_time(self.now)
        if existing is None:
            sequence = "Txn" if name in ("Invoice", "Payment", "RefundReceipt", "Deposit") else name
            entity = {"Id": entity_id or self.company.next_id(sequence), "SyncToken": "0"}
            metadata = {"CreateTime": stamp, "LastUpdatedTime": stamp}
        else:
            entity = {"Id": existing["Id"], "SyncToken": str(int(existing["SyncToken"]) + 1)}
            metadata = {"CreateTime": existing["MetaData"]["CreateTime"], "LastUpdatedTime": stamp}
        entity.update(fields)
        entity.update({"domain": "QBO", "sparse": False, "MetaData": metadata})
        self._compute(name, entity, existing)
        self.entities(name)[entity["Id"]] = entity
        _index_unique(self.company, name, existing, entity)
        self._after_write(name, existing, entity)
        return entity

    def _prepare(self, name: str, fields: dict, existing: dict | None) -> dict:
        """Validate the writable fields of a create or update and fill QBO's defaults."""
        own_id = existing["Id"] if existing else None
        return getattr(self, f"_prepare_{name.lower()}")(fields, existing, own_id)

    def _compute(self, name: str, entity: dict, existing: dict | None) -> None:
        if name == "Customer":
            entity["FullyQualifiedName"] = entity["DisplayName"]
            entity["Balance"] = existing["Balance"] if existing else ZERO
            entity["BalanceWithJobs"] = entity["Balance"]
        elif name == "Item":
            entity["FullyQualifiedName"] = entity["Name"]
        elif name == "Account":
            entity["FullyQualifiedName"] = entity["Name"]
            entity["Classification"] = ACCOUNT_CLASSIFICATION[entity["AccountType"]]
            entity["CurrentBalance"] = existing.get("CurrentBalance", ZERO) if existing else ZERO
            entity["CurrentBalanceWithSubAccounts"] = entity["CurrentBalance"]
        elif name == "Invoice":
            self._compute_invoice(entity)
        elif name == "Payment":
            applied = sum((line["Amount"] for line in entity["Line"]), ZERO)
            entity["UnappliedAmt"] = entity["TotalAmt"] - applied
            entity["LinkedTxn"] = deposits.payment_links(self, entity["Id"])
        elif name == "RefundReceipt":
            refunds.compute_refund_receipt(entity)
        elif name == "Deposit":
            deposits.compute_deposit(entity)

    def _compute_invoice(self, invoice: dict) -> None:
        """TotalAmt = sum of SalesItemLineDetail amounts (net of tax) + the computed TxnTaxDetail.TotalTax;
        Balance = TotalAmt - payments applied.

        Discounts and group lines are not modelled (such lines are refused).
        """
        lines = [line for line in invoice["Line"] if line.get("DetailType") != "SubTotalLineDetail"]
        subtotal = _subtotal(lines)
        invoice["Line"] = [*lines, {"Amount": subtotal, "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}}]
        invoice["TotalAmt"] = _invoice_total(invoice)
        applications = self.company.applications.get(invoice["Id"], {})
        invoice["Balance"] = invoice["TotalAmt"] - sum(applications.values(), ZERO)
        rate = invoice.get("ExchangeRate", Decimal("1"))
        invoice["HomeBalance"] = _money(invoice["Balance"] * rate)
        invoice["HomeTotalAmt"] = _money(invoice["TotalAmt"] * rate)
        invoice["LinkedTxn"] = [{"TxnId": payment_id, "TxnType": "Payment"} for payment_id in applications]

    def _after_write(self, name: str, old: dict | None, new: dict | None) -> None:
        """Keep what depends on invoices and payments true: invoice balances and links, customer balances, the
        deposit links of payments."""
        if name == "Deposit" and new is not None:
            deposits.after_deposit_write(self, new)
        if name not in ("Invoice", "Payment"):
            return
        # A customer's Balance is what it owes: open invoice balances minus unapplied payment credit.
        for entity, sign in ((old, -1), (new, 1)):
            if entity is not None:
                contribution = entity["Balance"] if name == "Invoice" else -entity["UnappliedAmt"]
                self._adjust_customer_balance(entity["CustomerRef"]["value"], sign * contribution)
        if name == "Payment":
            payment_id = (new or old)["Id"]
            before = _applications(old) if old else {}
            after = _applications(new) if new else {}
            for invoice_id in before:
                self.company.applications.get(invoice_id, {}).pop(payment_id, None)
            for invoice_id, amount in after.items():
                self.company.applications.setdefault(invoice_id, {})[payment_id] = amount
            for invoice_id in sorted(set(before) | set(after), key=int):
                self._refresh_invoice(invoice_id, before.get(invoice_id), after.get(invoice_id))
        elif new is None:
            self.company.applications.pop(old["Id"], None)

    def _refresh_invoice(self, invoice_id: str, before: Decimal | None, after: Decimal | None) -> None:
        invoice = self.get("Invoice", invoice_id)
        if invoice is None or before == after:
            return
        # *unconfirmed*: applying, changing or removing a payment counts as a change of the invoice (its Balance
        # and LinkedTxn change), so its SyncToken and LastUpdatedTime move like any other update.
        self._write("Invoice", self._writable("Invoice", invoice), invoice)

    def _adjust_customer_balance(self, customer_id: str, delta: Decimal) -> None:
        customer = self.get("Customer", customer_id)
        if customer is not None and delta:
            # *unconfirmed*: the customer's Balance moves without a new SyncToken (it is derived, not edited).
            customer["Balance"] += delta
            customer["BalanceWithJobs"] = customer["Balance"]

    # --- Entity rules ---

    def _prepare_customer(self, fields: dict, existing: dict | None, own_id: str | None) -> dict:
        display_name = _text(fields.get("DisplayName"))
        if not display_name:
            # Intuit: without DisplayName, QBO builds it from Title, GivenName, MiddleName, FamilyName, Suffix.
            parts = (_text(fields.get(key)) for key in ("Title", "GivenName", "MiddleName", "FamilyName", "Suffix"))
            display_name = " ".join(part for part in parts if part)
        if not display_name:
            # *unconfirmed*: the code QBO gives a customer with no name at all.
            raise faults.required_param_missing("DisplayName")
        fields["DisplayName"] = display_name
        _check_length(fields, "DisplayName", 500)
        # Unique across Customers (Vendors and Employees are not modelled), ignoring case.
        self._unique("Customer", display_name, own_id)
        fields.setdefault("PrintOnCheckName", display_name)
        current = existing.get("CurrencyRef") if existing else None
        currency = self._currency(fields, default=_ref_value(current) or self._home_currency())
        if current and _ref_value(current) != currency["value"]:
            # Intuit (Customer reference, CurrencyRef): once set, a customer's currency cannot be changed. The
            # code of the refusal is *unconfirmed*: QBO's generic 6000.
            raise faults.business_validation(
                f"The currency of customer {display_name} is {_ref_value(current)}; it cannot be changed."
            )
        fields["CurrencyRef"] = currency
        fields.setdefault("Active", True)
        fields.setdefault("Taxable", False)
        fields.setdefault("Job", False)
        fields.setdefault("BillWithParent", False)
        fields.setdefault("PreferredDeliveryMethod", "Print")
        return fields

    def _prepare_item(self, fields: dict, existing: dict | None, own_id: str | None) -> dict:
        name = _text(fields.get("Name"))
        if not name:
            raise faults.required_param_missing("Name")
        fields["Name"] = name
        _check_length(fields, "Name", 100)
        self._unique("Item", name, own_id)
        item_type = _text(fields.get("Type"))
        if not item_type:
            raise faults.required_param_missing("Type")
        if item_type not in ITEM_TYPES:
            raise faults.invalid_property(f"Item Type {item_type} is not modelled by the sandbox")
        fields["Type"] = item_type
        fields.setdefault("Active", True)
        if item_type == "Category":
            # A category only groups items (minorversion >= 4): no accounts, no price, never on a line.
            for key in ("IncomeAccountRef", "ExpenseAccountRef", "AssetAccountRef", "UnitPrice", "TrackQtyOnHand"):
                fields.pop(key, None)
            return fields
        fields["IncomeAccountRef"] = self._account_ref(fields, "IncomeAccountRef", required=True)
        if item_type == "Inventory":
            # Intuit (Item reference): an Inventory item needs IncomeAccountRef, ExpenseAccountRef (cost of goods
            # sold), AssetAccountRef, TrackQtyOnHand true, QtyOnHand and InvStartDate.
            fields["ExpenseAccountRef"] = self._account_ref(fields, "ExpenseAccountRef", required=True)
            fields["AssetAccountRef"] = self._account_ref(fields, "AssetAccountRef", required=True)
            if "InvStartDate" not in fields:
                raise faults.required_param_missing("InvStartDate")
            _valid_date(fields, "InvStartDate")
            fields["TrackQtyOnHand"] = True
            fields.setdefault("QtyOnHand", ZERO)
        else:
            expense = self._account_ref(fields, "ExpenseAccountRef", required=False)
            if expense is not None:
                fields["ExpenseAccountRef"] = expense
            fields.setdefault("TrackQtyOnHand", False)
        fields.setdefault("Taxable", False)
        fields.setdefault("UnitPrice", ZERO)
        return fields

    def _account_ref(self, fields: dict, key: str, *, required: bool) -> dict | None:
        account = self._referenced("Account", fields.get(key), key, "Accounts", required=required)
        return None if account is None else {"value": account["Id"], "name": account["Name"]}

    def _prepare_account(self, fields: dict, existing: dict | None, own_id: str | None) -> dict:
        name = _text(fields.get("Name"))
        if not name:
            raise faults.required_param_missing("Name")
        fields["Name"] = name
        _check_length(fields, "Name", 100)
        self._unique("Account", name, own_id)
        account_type = _text(fields.get("AccountType"))
        if not account_type:
            raise faults.required_param_missing("AccountType")
        if account_type not in ACCOUNT_CLASSIFICATION:
            raise faults.invalid_property(f"AccountType {account_type} is not a QBO account type")
        fields.setdefault("Active", True)
        fields.setdefault("SubAccount", False)
        return fields

    def _prepare_paymentmethod(self, fields: dict, existing: dict | None, own_id: str | None) -> dict:
        name = _text(fields.get("Name"))
        if not name:
            raise faults.required_param_missing("Name")
        fields["Name"] = name
        _check_length(fields, "Name", 31)
        # *unconfirmed*: payment method names are unique like other name lists.
        self._unique("PaymentMethod", name, own_id)
        method_type = fields.setdefault("Type", "NON_CREDIT_CARD")
        if method_type not in ("CREDIT_CARD", "NON_CREDIT_CARD"):
            raise faults.invalid_property("PaymentMethod Type must be CREDIT_CARD or NON_CREDIT_CARD")
        fields.setdefault("Active", True)
        return fields

    def _prepare_class(self, fields: dict, existing: dict | None, own_id: str | None) -> dict:
        return self._prepare_category("Class", fields, own_id)

    def _prepare_department(self, fields: dict, existing: dict | None, own_id: str | None) -> dict:
        return self._prepare_category("Department", fields, own_id)

    def _prepare_category(self, name: str, fields: dict, own_id: str | None) -> dict:
        """Class and Department (Intuit API reference): Name required (100 characters), unique in the company,
        Active, FullyQualifiedName computed ("Parent:Child"; the sandbox keeps no sub-classes, so it is the Name)."""
        text = _text(fields.get("Name"))
        if not text:
            raise faults.required_param_missing("Name")
        if ":" in text:
            raise faults.invalid_property(f"{name} Name cannot contain ':'")  # *unconfirmed*: as for other names
        fields["Name"] = text
        _check_length(fields, "Name", 100)
        self._unique(name, text, own_id)
        fields.setdefault("Active", True)
        fields.setdefault("SubClass" if name == "Class" else "SubDepartment", False)
        fields["FullyQualifiedName"] = text
        return fields

    def _prepare_companyinfo(self, fields: dict, existing: dict | None, own_id: str | None) -> dict:
        if not _text(fields.get("CompanyName")):
            raise faults.required_param_missing("CompanyName")
        return fields

    def _prepare_preferences(self, fields: dict, existing: dict | None, own_id: str | None) -> dict:
        return fields

    def _prepare_taxcode(self, fields: dict, existing: dict | None, own_id: str | None) -> dict:
        return fields  # only SandboxServer.edit_entity reaches here (the API refuses writes to tax codes)

    def _prepare_taxrate(self, fields: dict, existing: dict | None, own_id: str | None) -> dict:
        return fields

    def _customer_ref(self, fields: dict) -> dict:
        customer = self._referenced("Customer", fields.get("CustomerRef"), "CustomerRef", "Names", required=True)
        if customer.get("Active") is False:
            # Intuit ("Top QuickBooks Online API errors", 2017; .NET SDK issue #353, 2025): using an inactive
            # name answers 610 "Object Not Found : Something you're trying to use has been made inactive...".
            raise faults.object_not_found("Customer", customer["Id"])
        fields["CustomerRef"] = {"value": customer["Id"], "name": customer["DisplayName"]}
        return customer

    def _currency(self, fields: dict, *, default: str) -> dict:
        """The CurrencyRef a customer or transaction gets: what was sent, or `default`."""
        code = (_ref_value(fields.get("CurrencyRef")) or default).upper()
        home = self._home_currency()
        if code != home and not self._multicurrency():
            # *unconfirmed*: the code QBO gives for a foreign currency in a company without multicurrency.
            raise faults.business_validation(
                f"Multicurrency is off in this company: everything is in {home}, so {code} cannot be used."
            )
        return {"value": code, "name": CURRENCY_NAMES.get(code, code)}

    def _transaction_currency(self, fields: dict, customer: dict) -> None:
        """A transaction is in its customer's currency (Intuit, "Manage multiple currencies")."""
        customer_currency = _ref_value(customer.get("CurrencyRef")) or self._home_currency()
        currency = self._currency(fields, default=customer_currency)
        if currency["value"] != customer_currency:
            # *unconfirmed*: the code of this refusal.
            raise faults.business_validation(
                f"Customer {customer['DisplayName']} uses {customer_currency}; a transaction for them cannot be in "
                f"{currency['value']}."
            )
        fields["CurrencyRef"] = currency
        if currency["value"] == self._home_currency():
            fields["ExchangeRate"] = Decimal("1")
        else:
            # *unconfirmed*: QBO fills today's rate when none is sent; the sandbox has no rate feed and uses 1.
            fields.setdefault("ExchangeRate", Decimal("1"))

    def _dates(self, fields: dict, existing: dict | None) -> None:
        _valid_date(fields, "TxnDate")
        # A full update that leaves out TxnDate keeps the old date (QBO never stores a transaction without one).
        fields.setdefault("TxnDate", existing["TxnDate"] if existing else _today(self.now))

    def _prepare_invoice(self, fields: dict, existing: dict | None, own_id: str | None) -> dict:
        customer = self._customer_ref(fields)
        self._transaction_currency(fields, customer)
        lines = fields.get("Line")
        if not isinstance(lines, list) or not lines:
            raise faults.required_param_missing("Line")
        kept = []
        for line in lines:
            if not isinstance(line, dict):
                raise faults.invalid_property("Each Line must be an object")
            detail_type = line.get("DetailType")
            if detail_type == "SubTotalLineDetail":
                continue  # QBO computes the subtotal line; one sent back from a read is ignored
            if detail_type == "SalesItemLineDetail":
                self._check_sales_line(line)
            elif detail_type == "DescriptionOnly":
                line.setdefault("Amount", ZERO)
            else:
                raise faults.invalid_property(f"Line DetailType {detail_type!r} is not modelled by the sandbox")
            kept.append(line)
        if not kept:
            raise faults.required_param_missing("Line")
        for number, line in enumerate(kept, start=1):
            line["Id"] = str(number)
            line["LineNum"] = number
        fields["Line"] = kept
        self._class_and_department(fields, kept)
        self._invoice_doc_number(fields, existing, own_id)
        _check_length(fields, "PrivateNote", 4000)
        self._dates(fields, existing)
        _valid_date(fields, "DueDate")
        fields.setdefault("DueDate", fields["TxnDate"])
        fields["TxnTaxDetail"] = self._invoice_tax(fields, customer, kept)
        fields.setdefault("PrintStatus", "NotSet")
        fields.setdefault("EmailStatus", "NotSet")

        applications = self.company.applications.get(own_id or "", {})
        if applications:
            # *unconfirmed*: QBO's answers when an edit would break the payments applied to an invoice.
            if existing["CustomerRef"]["value"] != customer["Id"]:
                raise faults.business_validation("The customer of an invoice with payments applied cannot change.")
            applied = sum(applications.values(), ZERO)
            if _invoice_total(fields) < applied:
                raise faults.business_validation(
                    f"The invoice total cannot be less than the {applied} already paid on it."
                )
        return fields

    def _class_and_department(self, fields: dict, lines: list[dict]) -> None:
        """ClassRef (the invoice's, or each SalesItemLineDetail's) and DepartmentRef must name an existing, active
        Class / Department: unknown is 2500 "Invalid Reference Id", inactive is 610 "Object Not Found ... made
        inactive", as for customers and items (Intuit, "Top QuickBooks Online API errors", 2017; *unconfirmed* for
        classes and departments specifically). Where the company does not track them, QuickBooks keeps none: a header
        ClassRef only counts with Preferences.AccountingInfoPrefs.ClassTrackingPerTxn, a line's only with
        ClassTrackingPerTxnLine, DepartmentRef only with TrackDepartments; a ClassRef at the level not in use is
        dropped without an error (*unconfirmed*: Rutter and Breadwinner describe it so, Intuit does not say)."""
        prefs = self._prefs().get("AccountingInfoPrefs", {})
        header_class, line_class = bool(prefs.get("ClassTrackingPerTxn")), bool(prefs.get("ClassTrackingPerTxnLine"))
        self._category_ref(fields, "ClassRef", "Class", "Classes", keep=header_class)
        for line in lines:
            if isinstance(detail := line.get("SalesItemLineDetail"), dict):
                self._category_ref(detail, "ClassRef", "Class", "Classes", keep=line_class)
        self._category_ref(
            fields, "DepartmentRef", "Department", "Departments", keep=bool(prefs.get("TrackDepartments"))
        )

    def _category_ref(self, holder: dict, field: str, name: str, label: str, *, keep: bool) -> None:
        if field not in holder:
            return
        if not keep:
            del holder[field]
            return
        entity = self._referenced(name, holder[field], field, label, required=False)
        if entity is None:
            del holder[field]
            return
        if entity.get("Active") is False:
            raise faults.object_not_found(name, entity["Id"])
        holder[field] = {"value": entity["Id"], "name": entity["FullyQualifiedName"]}

    def _check_sales_line(self, line: dict) -> None:
        detail = line.get("SalesItemLineDetail")
        if not isinstance(detail, dict):
            raise faults.required_param_missing("SalesItemLineDetail")
        item = self._referenced("Item", detail.get("ItemRef"), "ItemRef", "Item", required=True)
        if item.get("Active") is False:
            raise faults.object_not_found("Item", item["Id"])  # "...has been made inactive", as for customers
        if item.get("Type") == "Category":
            # *unconfirmed*: a category only groups items; QBO offers none on a sales form. Code 6000 is ours.
            raise faults.business_validation(
                f"{item['Name']} is a category, not a product or service; choose an item to sell."
            )
        detail["ItemRef"] = {"value": item["Id"], "name": item["Name"]}
        if "Amount" not in line:
            raise faults.required_param_missing("Amount")
        quantity, price = detail.get("Qty"), detail.get("UnitPrice")
        given = isinstance(quantity, Decimal) and isinstance(price, Decimal) and quantity and price
        if given and line["Amount"] != _money(quantity * price):
            # Intuit's error list: 6070 "Amount calculation incorrect in the request" / "Amount is not equal to
            # Qty * UnitPrice. Supplied value:XXX". *unconfirmed*: that QBO rounds Qty * UnitPrice half up to
            # the cent before comparing (so 3 x 33.335 = 100.005 matches 100.01), and that a zero Qty or UnitPrice
            # counts as not given (python-quickbooks sends Qty 0 and UnitPrice 0 unless set, and such lines with
            # any Amount are what its users create every day).
            raise faults.amount_calculation_incorrect(line["Amount"])

    def _invoice_doc_number(self, fields: dict, existing: dict | None, own_id: str | None) -> None:
        """Intuit (Invoice reference, DocNumber): with Preferences.SalesFormsPrefs.CustomTxnNumbers on, a sent
        number is kept (a duplicate is 6140) and none sent stays empty; with it off, QBO numbers the invoice by
        incrementing the last number, and a number sent anyway is kept ("do not send a value as it can lead to
        unwanted duplicates": no duplicate check). "AUTO_GENERATE" asks for the next number (Intuit .NET SDK docs)."""
        doc_number = _text(fields.get("DocNumber"))
        custom = self._custom_txn_numbers()
        if doc_number.upper() == "AUTO_GENERATE":
            fields["DocNumber"] = self._next_doc_number()
        elif doc_number:
            fields["DocNumber"] = doc_number
            _check_length(fields, "DocNumber", 21)
            holder = self._holder("Invoice", doc_number)
            if custom and holder is not None and holder != own_id:
                raise faults.duplicate_doc_number(doc_number, holder)
        elif existing is not None and existing.get("DocNumber"):
            fields["DocNumber"] = existing["DocNumber"]
        elif custom:
            fields.pop("DocNumber", None)
        else:
            fields["DocNumber"] = self._next_doc_number()

    def _next_doc_number(self) -> str:
        while self._holder("Invoice", str(self.company.next_doc_number)) is not None:
            self.company.next_doc_number += 1
        number = str(self.company.next_doc_number)
        self.company.next_doc_number += 1
        return number

    def _prepare_refundreceipt(self, fields: dict, existing: dict | None, own_id: str | None) -> dict:
        return refunds.prepare_refund_receipt(self, fields, existing, own_id)

    def _prepare_deposit(self, fields: dict, existing: dict | None, own_id: str | None) -> dict:
        return deposits.prepare_deposit(self, fields, existing, own_id)

    # --- Sales tax (docs/quickbooks_sales_tax.md) ---

    def _invoice_tax(self, fields: dict, customer: dict, lines: list[dict]) -> dict:
        """QuickBooks' TxnTaxDetail for an invoice: computed from tax codes, never the TotalTax sent on its own."""
        sent = fields.get("TxnTaxDetail") if isinstance(fields.get("TxnTaxDetail"), dict) else {}
        sales = [line for line in lines if line.get("DetailType") == "SalesItemLineDetail"]
        if self._country() == "US":
            fields.pop("GlobalTaxCalculation", None)  # US companies express tax per transaction, not per line
            return self._us_tax(sent, fields, customer, sales)
        return self._non_us_tax(fields, sales)

    def _tax_code(self, ref: object, field: str) -> dict:
        code = self._referenced("TaxCode", ref, field, "TaxCode", required=True)
        if code.get("Active") is False:
            raise faults.object_not_found("TaxCode", code["Id"])
        return code

    def _us_tax(self, sent: dict, fields: dict, customer: dict, sales: list[dict]) -> dict:
        taxable: list[Decimal] = []  # the amounts of the lines marked TAX
        for line in sales:
            detail = line["SalesItemLineDetail"]
            code = _ref_value(detail.get("TaxCodeRef"))
            if code is None:
                # *unconfirmed*: a US line without TaxCodeRef takes its item's Taxable flag.
                item = self.get("Item", detail["ItemRef"]["value"])
                code = "TAX" if item.get("Taxable") else "NON"
            code = code.upper()
            if code not in US_LINE_TAX_CODES:
                raise faults.invalid_line_tax_code(code)  # Intuit's error list: 6100, only TAX or NON on US lines
            detail["TaxCodeRef"] = {"value": code}
            if code == "TAX":
                taxable.append(line["Amount"])
        if not self._using_sales_tax():
            return {"TotalTax": ZERO}
        sent_code = None
        if _ref_value(sent.get("TxnTaxCodeRef")) is not None:
            sent_code = self._tax_code(sent["TxnTaxCodeRef"], "TxnTaxCodeRef")
            if sent_code["Id"] in US_LINE_TAX_CODES:
                raise faults.invalid_reference("TaxCode", sent_code["Id"])  # *unconfirmed*: TAX/NON are line codes
        # Intuit (hlu2 on QuickBooks-V3-PHP-SDK #199, 2019): a tax override is TxnTaxCodeRef together with
        # TotalTax; a TotalTax sent without a code is ignored. A TotalTax of 0 counts as not sent (*unconfirmed*:
        # python-quickbooks' TxnTaxDetail always sends TotalTax 0, and its users setting only TxnTaxCodeRef get
        # the code's tax computed: python-quickbooks issue #172, 2019).
        total_tax = sent.get("TotalTax")
        override = sent_code is not None and isinstance(total_tax, Decimal) and total_tax != 0
        if self._automated_sales_tax():
            # Intuit ("Manage sales tax for US locales"; blog "Using QuickBooks Online API for automated sales
            # tax", 2017-12-11): AST picks the code from the destination address and computes the tax; an explicit
            # amount sent with the request is honoured and prorated across the rates of the AST-assigned code.
            code = self._ast_code(fields, customer) or (sent_code if override else None)
        else:
            code = sent_code  # manual sales tax: the rate or group named on the transaction
        if code is None:
            return {"TotalTax": ZERO}
        return self._tax_detail(code, taxable, total=_money(sent["TotalTax"]) if override else None)

    def _ast_code(self, fields: dict, customer: dict) -> dict | None:
        """Our stand-in for Intuit's AST engine (docs/qbo_sandbox.md): destination = the invoice's ShipAddr, else
        the customer's ShipAddr (*unconfirmed*: QBO copies it onto the invoice), else the company's address
        (Intuit: "If a shipping address is not provided, the company address is considered as the destination").
        The profile's jurisdiction table maps (state, postal-code prefix) to a tax code; elsewhere: no tax."""
        info = next(iter(self.entities("CompanyInfo").values()), {})
        for address in (fields.get("ShipAddr"), customer.get("ShipAddr"), info.get("CompanyAddr")):
            if isinstance(address, dict) and (address.get("CountrySubDivisionCode") or address.get("PostalCode")):
                break
        else:
            return None
        state = _text(address.get("CountrySubDivisionCode")).upper()
        postal = _text(address.get("PostalCode"))
        for jurisdiction in self._profile().jurisdictions:
            if jurisdiction.state == state and postal.startswith(jurisdiction.postal_prefix):
                return next(
                    (c for c in self.entities("TaxCode").values() if c["Name"] == jurisdiction.code and c["Active"]),
                    None,
                )
        return None

    def _rates(self, code: dict) -> list[dict]:
        details = code.get("SalesTaxRateList", {}).get("TaxRateDetail", [])
        return [rate for rate in (self.get("TaxRate", d["TaxRateRef"]["value"]) for d in details) if rate]

    def _tax_detail(self, code: dict, taxable: list[Decimal], *, total: Decimal | None = None) -> dict:
        """One TaxLine per rate of `code`: the tax of each taxable line, rounded to the cent, summed (see
        _line_tax). With `total` (an honoured override) the amount is shared across the rates in proportion to
        their percentages, the last rate taking the remainder (*unconfirmed*)."""
        rates = self._rates(code)
        if total is None:
            amounts = [sum((_line_tax(amount, rate) for amount in taxable), ZERO) for rate in rates]
        else:
            percent = sum((rate["RateValue"] for rate in rates), ZERO)
            amounts = [_money(total * rate["RateValue"] / percent) if percent else ZERO for rate in rates[:-1]]
            amounts.append(total - sum(amounts, ZERO))
        net = sum(taxable, ZERO)
        tax_lines = [_tax_line(rate, amount, net) for rate, amount in zip(rates, amounts, strict=True)]
        total_tax = sum(amounts, ZERO) if total is None else total
        return {"TxnTaxCodeRef": {"value": code["Id"]}, "TotalTax": total_tax, "TaxLine": tax_lines}

    def _non_us_tax(self, fields: dict, sales: list[dict]) -> dict:
        """Intuit ("Manage sales tax for non-US locales"): each line's TaxCode names its rates and QBO computes
        TotalTax (the TotalTax sent is not used: python-quickbooks issue #301). GlobalTaxCalculation: TaxExcluded
        (default), TaxInclusive (amounts shown with tax; the line Amount stays net), NotApplicable (no tax)."""
        mode = _text(fields.get("GlobalTaxCalculation")) or "TaxExcluded"
        if mode not in ("TaxExcluded", "TaxInclusive", "NotApplicable"):
            raise faults.invalid_property(
                f"GlobalTaxCalculation {mode} is not TaxExcluded, TaxInclusive or NotApplicable"
            )
        fields["GlobalTaxCalculation"] = mode
        using = self._using_sales_tax() and mode != "NotApplicable"
        amounts_by_code: dict[str, list[Decimal]] = {}  # the (net) line amounts per tax code
        for line in sales:
            detail = line["SalesItemLineDetail"]
            if _ref_value(detail.get("TaxCodeRef")) is None:
                if using:
                    raise faults.business_validation(self._profile().missing_tax_code_detail)
                continue
            code = self._tax_code(detail["TaxCodeRef"], "TaxCodeRef")
            detail["TaxCodeRef"] = {"value": code["Id"]}
            amounts_by_code.setdefault(code["Id"], []).append(line["Amount"])
        if not using:
            return {"TotalTax": ZERO}
        per_rate: dict[str, list] = {}  # rate id -> [rate, net, amount]
        for code_id, amounts in amounts_by_code.items():
            for rate in self._rates(self.get("TaxCode", code_id)):
                entry = per_rate.setdefault(rate["Id"], [rate, ZERO, ZERO])
                entry[1] += sum(amounts, ZERO)
                entry[2] += sum((_line_tax(amount, rate) for amount in amounts), ZERO)
        if mode == "TaxInclusive":
            # Line amounts stay net of tax (quickbooks-ruby #346: "By default QuickBooks assumes all prices exclude
            # tax"; TaxInclusive changes how the form shows them). Each line answers TaxInclusiveAmt, its amount
            # with its code's rates added (*unconfirmed*: rounded half up per line; a TaxInclusiveAmt sent is not
            # used to derive the net amount).
            for line in sales:
                detail = line["SalesItemLineDetail"]
                if "TaxCodeRef" in detail:
                    rates = self._rates(self.get("TaxCode", detail["TaxCodeRef"]["value"]))
                    percent = sum((rate["RateValue"] for rate in rates), ZERO)
                    detail["TaxInclusiveAmt"] = _money(line["Amount"] * (100 + percent) / 100)
        tax_lines = [_tax_line(rate, amount, net) for rate, net, amount in per_rate.values()]
        return {"TotalTax": sum((line["Amount"] for line in tax_lines), ZERO), "TaxLine": tax_lines}

    def _prepare_payment(self, fields: dict, existing: dict | None, own_id: str | None) -> dict:
        customer = self._customer_ref(fields)
        self._transaction_currency(fields, customer)
        if "TotalAmt" not in fields:
            raise faults.required_param_missing("TotalAmt")
        total = fields["TotalAmt"]
        if not isinstance(total, Decimal):
            raise faults.invalid_property("TotalAmt must be a number")
        lines = fields.get("Line", [])
        if not isinstance(lines, list):
            raise faults.invalid_property("Line must be a list")
        applied_per_invoice: dict[str, Decimal] = {}
        kept = []
        for line in lines:
            if not isinstance(line, dict) or "Amount" not in line:
                raise faults.required_param_missing("Amount")
            amount = line["Amount"]
            linked = line.get("LinkedTxn")
            if not isinstance(linked, list) or not linked:
                raise faults.required_param_missing("LinkedTxn")
            if len(linked) != 1:
                raise faults.invalid_property("A payment line links exactly one transaction in the sandbox")
            txn_type = _text(linked[0].get("TxnType"))
            if txn_type != "Invoice":
                raise faults.invalid_property(f"LinkedTxn TxnType {txn_type!r} is not modelled (only Invoice)")
            invoice = self.get("Invoice", linked[0].get("TxnId"))
            if invoice is None:
                raise faults.invalid_reference("Invoice", _text(linked[0].get("TxnId")))
            # *unconfirmed* (QBO.md): no documented code for these three; QBO's generic 6000 is used.
            if amount < 0:
                raise faults.business_validation("A payment line amount cannot be negative.")
            if invoice["CustomerRef"]["value"] != customer["Id"]:
                raise faults.business_validation(
                    f"Invoice {invoice['Id']} belongs to another customer; a payment can only be applied to "
                    "its own customer's invoices."
                )
            applied_per_invoice[invoice["Id"]] = applied_per_invoice.get(invoice["Id"], ZERO) + amount
            kept.append({"Amount": amount, "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]})
        for invoice_id, amount in applied_per_invoice.items():
            invoice = self.get("Invoice", invoice_id)
            others = sum(
                (
                    paid
                    for payment_id, paid in self.company.applications.get(invoice_id, {}).items()
                    if payment_id != own_id
                ),
                ZERO,
            )
            open_balance = invoice["TotalAmt"] - others
            if amount > open_balance:
                raise faults.business_validation(
                    f"The amount applied to invoice {invoice_id} ({amount}) is more than its open balance "
                    f"({open_balance})."
                )
        if sum(applied_per_invoice.values(), ZERO) > total:
            raise faults.business_validation(
                "The amounts applied to invoices are more than the payment's TotalAmt (UnappliedAmt would be negative)."
            )
        fields["Line"] = kept

        deposit = self._referenced(
            "Account", fields.get("DepositToAccountRef"), "DepositToAccountRef", "Accounts", required=False
        )
        if deposit is None:
            deposit = next(
                (a for a in self.entities("Account").values() if a.get("AccountSubType") == "UndepositedFunds"),
                None,
            )
        if deposit is not None:
            if deposit["AccountType"] not in DEPOSIT_ACCOUNT_TYPES:
                # *unconfirmed*: the code QBO gives for a deposit account of the wrong type.
                raise faults.business_validation(
                    f"Invalid account type: {deposit['Name']} is a {deposit['AccountType']} account; a payment "
                    "is deposited to a Bank or Other Current Asset account."
                )
            fields["DepositToAccountRef"] = {"value": deposit["Id"], "name": deposit["Name"]}
        method = self._referenced(
            "PaymentMethod", fields.get("PaymentMethodRef"), "PaymentMethodRef", "PaymentMethod", required=False
        )
        if method is not None:
            fields["PaymentMethodRef"] = {"value": method["Id"], "name": method["Name"]}
        if "PaymentRefNum" in fields:
            fields["PaymentRefNum"] = _text(fields["PaymentRefNum"])
        _check_length(fields, "PrivateNote", 4000)
        self._dates(fields, existing)
        fields.setdefault("ProcessPayment", False)
        return fields
