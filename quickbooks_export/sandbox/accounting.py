"""QuickBooks Online's accounting rules for the entities FieldSync uses.

`Books(company, now)` performs one operation on one company; the caller holds `company.lock`. Every operation
validates completely before it changes anything, so a refused request (or batch item) leaves no trace.

Behaviour follows Intuit's API reference and QBO.md; choices without a documented source say *unconfirmed*.
"""

from __future__ import annotations

import copy
from datetime import date
from decimal import Decimal, InvalidOperation

from . import faults, query, refunds
from .faults import QboFault
from .store import ENTITY_NAMES, Company, qbo_datetime, qbo_time

MAX_BATCH_ITEMS = 30
MAX_BATCH_ID_WITH_REQUESTID = 10  # Intuit: "For each batch ID, only 10 characters are allowed when RequestID is..."
SYSTEM_FIELDS = frozenset({"Id", "SyncToken", "MetaData", "domain", "sparse", "status", "time"})
DECIMAL_KEYS = frozenset({
    "Amount", "TotalAmt", "UnitPrice", "Qty", "TotalTax", "Balance", "UnappliedAmt", "Deposit", "ExchangeRate",
    "HomeBalance", "HomeTotalAmt", "BalanceWithJobs", "CurrentBalance", "CurrentBalanceWithSubAccounts",
    "TaxPercent", "NetAmountTaxable", "PurchaseCost", "QtyOnHand",
})  # fmt: skip
ENTITY_BY_PATH = {name.lower(): name for name in ENTITY_NAMES}
ZERO = Decimal("0")

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
    "CompanyInfo": frozenset(),
    # Invoice.LinkedTxn lists the payments applied to it: QBO maintains it (links to payments are read-only).
    "Invoice": frozenset({"TotalAmt", "Balance", "HomeBalance", "HomeTotalAmt", "LinkedTxn"}),
    "Payment": frozenset({"UnappliedAmt", "LinkedTxn"}),
    "RefundReceipt": refunds.COMPUTED,
}
DELETABLE = frozenset({"Invoice", "Payment"})
# The field each entity keeps unique (case-insensitively) within a company.
UNIQUE_FIELD = {
    "Customer": "DisplayName",
    "Item": "Name",
    "Account": "Name",
    "PaymentMethod": "Name",
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


def seed_company(company: Company, now: float) -> None:
    """What a new sandbox company holds before anyone writes to it: CompanyInfo, accounts, payment methods."""
    books = Books(company, now)
    books.insert(
        "CompanyInfo",
        {
            "CompanyName": company.name,
            "LegalName": company.name,
            "Country": "US",
            "CompanyStartDate": _today(now),
            "FiscalYearStartMonth": "January",
            "SupportedLanguages": "en",
            "DefaultTimeZone": "America/Los_Angeles",
        },
    )
    for name, account_type, sub_type in SEED_ACCOUNTS:
        books.create("Account", {"Name": name, "AccountType": account_type, "AccountSubType": sub_type})
    for name, method_type in SEED_PAYMENT_METHODS:
        books.create("PaymentMethod", {"Name": name, "Type": method_type})


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

    # --- Operations (each returns the answer body without "time") ---

    def read(self, name: str, entity_id: str) -> dict:
        entity = self.get(name, entity_id)
        if name == "CompanyInfo" and entity_id == self.company.realm_id:
            # QBO reads CompanyInfo by realm id (GET /companyinfo/{realmId}); its Id is "1".
            entity = next(iter(self.entities(name).values()))
        if entity is None:
            raise faults.object_not_found(name, entity_id)
        return {name: entity}

    def create(self, name: str, body: dict) -> dict:
        body = normalize(body)
        if name == "CompanyInfo":
            raise faults.unsupported_operation("Create")
        fields = self._writable(name, body)
        fields = self._prepare(name, fields, None)
        return {name: self._write(name, fields, None)}

    def update(self, name: str, body: dict) -> dict:
        body = normalize(body)
        existing = self._current(name, body)
        fields = self._writable(name, body)
        if body.get("sparse") in (True, "true"):
            merged = self._writable(name, existing)
            merged.update(fields)
            fields = merged
        fields = self._prepare(name, fields, existing)
        return {name: self._write(name, fields, existing)}

    def delete(self, name: str, body: dict) -> dict:
        if name not in DELETABLE:
            raise faults.unsupported_operation(f"Delete for {name}")
        existing = self._current(name, body)
        if name == "Invoice" and self.company.applications.get(existing["Id"]):
            # Intuit: "You must unlink any linked transactions associated with the invoice object before
            # deleting it." The code is *unconfirmed*; 6000 is QBO's generic business validation error.
            raise faults.business_validation(
                f"Invoice {existing['Id']} has payments applied; delete or change those payments first."
            )
        del self.entities(name)[existing["Id"]]
        _index_unique(self.company, name, existing, None)
        self._after_write(name, existing, None)
        return {name: {"status": "Deleted", "domain": "QBO", "Id": existing["Id"]}}

    def void(self, name: str, body: dict) -> dict:
        if name not in DELETABLE:
            raise faults.unsupported_operation(f"Void for {name}")
        existing = self._current(name, body)
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
        return {name: self._write(name, fields, existing)}

    def query(self, text: str) -> dict:
        parsed = query.parse(text)
        name = next((n for n in ENTITY_NAMES if n.casefold() == parsed.entity.casefold()), None)
        if name is None:
            raise faults.query_validation_error(f"Entity {parsed.entity} is not supported by the sandbox")
        return {"QueryResponse": query.run(parsed, name, list(self.entities(name).values()))}

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
        return copy.deepcopy({key: value for key, value in body.items() if key not in excluded})

    def insert(self, name: str, fields: dict) -> dict:
        """Store an entity with no rules applied (seeding)."""
        return self._write(name, fields, None)

    def _write(self, name: str, fields: dict, existing: dict | None) -> dict:
        stamp = qbo_time(self.now)
        if existing is None:
            sequence = "Txn" if name in ("Invoice", "Payment", "RefundReceipt") else name
            entity = {"Id": self.company.next_id(sequence), "SyncToken": "0"}
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
        elif name == "RefundReceipt":
            refunds.compute_refund_receipt(entity)

    def _compute_invoice(self, invoice: dict) -> None:
        """TotalAmt = sum of SalesItemLineDetail amounts + TxnTaxDetail.TotalTax; Balance = TotalAmt - payments.

        Discounts, groups and tax rates are not modelled (such lines are refused), so this is QBO's arithmetic
        for the invoices FieldSync sends.
        """
        lines = [line for line in invoice["Line"] if line.get("DetailType") != "SubTotalLineDetail"]
        subtotal = sum((line["Amount"] for line in lines if line.get("DetailType") == "SalesItemLineDetail"), ZERO)
        invoice["Line"] = [*lines, {"Amount": subtotal, "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}}]
        total_tax = invoice.get("TxnTaxDetail", {}).get("TotalTax", ZERO)
        invoice["TotalAmt"] = subtotal + total_tax
        applications = self.company.applications.get(invoice["Id"], {})
        invoice["Balance"] = invoice["TotalAmt"] - sum(applications.values(), ZERO)
        invoice["HomeBalance"] = invoice["Balance"]
        invoice["HomeTotalAmt"] = invoice["TotalAmt"]
        invoice["LinkedTxn"] = [{"TxnId": payment_id, "TxnType": "Payment"} for payment_id in applications]

    def _after_write(self, name: str, old: dict | None, new: dict | None) -> None:
        """Keep what depends on invoices and payments true: invoice balances and links, customer balances."""
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
        if item_type not in ("Service", "NonInventory"):
            raise faults.invalid_property(f"Item Type {item_type} is not modelled by the sandbox")
        account = self._referenced(
            "Account", fields.get("IncomeAccountRef"), "IncomeAccountRef", "Accounts", required=True
        )
        fields["IncomeAccountRef"] = {"value": account["Id"], "name": account["Name"]}
        expense = self._referenced(
            "Account", fields.get("ExpenseAccountRef"), "ExpenseAccountRef", "Accounts", required=False
        )
        if expense is not None:
            fields["ExpenseAccountRef"] = {"value": expense["Id"], "name": expense["Name"]}
        fields.setdefault("Active", True)
        fields.setdefault("Taxable", False)
        fields.setdefault("UnitPrice", ZERO)
        fields.setdefault("TrackQtyOnHand", False)
        return fields

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

    def _prepare_companyinfo(self, fields: dict, existing: dict | None, own_id: str | None) -> dict:
        if not _text(fields.get("CompanyName")):
            raise faults.required_param_missing("CompanyName")
        return fields

    def _customer_ref(self, fields: dict) -> dict:
        customer = self._referenced("Customer", fields.get("CustomerRef"), "CustomerRef", "Names", required=True)
        fields["CustomerRef"] = {"value": customer["Id"], "name": customer["DisplayName"]}
        return customer

    def _dates(self, fields: dict, existing: dict | None) -> None:
        _valid_date(fields, "TxnDate")
        # A full update that leaves out TxnDate keeps the old date (QBO never stores a transaction without one).
        fields.setdefault("TxnDate", existing["TxnDate"] if existing else _today(self.now))

    def _prepare_invoice(self, fields: dict, existing: dict | None, own_id: str | None) -> dict:
        customer = self._customer_ref(fields)
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
                detail = line.get("SalesItemLineDetail")
                if not isinstance(detail, dict):
                    raise faults.required_param_missing("SalesItemLineDetail")
                item = self._referenced("Item", detail.get("ItemRef"), "ItemRef", "Item", required=True)
                detail["ItemRef"] = {"value": item["Id"], "name": item["Name"]}
                if "Amount" not in line:
                    raise faults.required_param_missing("Amount")
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

        doc_number = _text(fields.get("DocNumber"))
        if doc_number:
            fields["DocNumber"] = doc_number
            _check_length(fields, "DocNumber", 21)
            # Custom transaction numbers are on in FieldSync's companies, so QBO refuses a duplicate (QBO.md).
            holder = self._holder("Invoice", doc_number)
            if holder is not None and holder != own_id:
                raise faults.duplicate_doc_number(doc_number, holder)
        elif existing is not None and existing.get("DocNumber"):
            fields["DocNumber"] = existing["DocNumber"]
        else:
            fields["DocNumber"] = self._next_doc_number()
        _check_length(fields, "PrivateNote", 4000)
        self._dates(fields, existing)
        _valid_date(fields, "DueDate")
        fields.setdefault("DueDate", fields["TxnDate"])
        tax = fields.get("TxnTaxDetail")
        if not isinstance(tax, dict):
            tax = {}
        tax.setdefault("TotalTax", ZERO)
        fields["TxnTaxDetail"] = tax
        fields.setdefault("PrintStatus", "NotSet")
        fields.setdefault("EmailStatus", "NotSet")

        applications = self.company.applications.get(own_id or "", {})
        if applications:
            # *unconfirmed*: QBO's answers when an edit would break the payments applied to an invoice.
            if existing["CustomerRef"]["value"] != customer["Id"]:
                raise faults.business_validation("The customer of an invoice with payments applied cannot change.")
            applied = sum(applications.values(), ZERO)
            total = sum((ln["Amount"] for ln in kept if ln.get("DetailType") == "SalesItemLineDetail"), ZERO)
            if total + tax["TotalTax"] < applied:
                raise faults.business_validation(
                    f"The invoice total cannot be less than the {applied} already paid on it."
                )
        return fields

    def _next_doc_number(self) -> str:
        while self._holder("Invoice", str(self.company.next_doc_number)) is not None:
            self.company.next_doc_number += 1
        number = str(self.company.next_doc_number)
        self.company.next_doc_number += 1
        return number

    def _prepare_refundreceipt(self, fields: dict, existing: dict | None, own_id: str | None) -> dict:
        return refunds.prepare_refund_receipt(self, fields, existing, own_id)

    def _prepare_payment(self, fields: dict, existing: dict | None, own_id: str | None) -> dict:
        customer = self._customer_ref(fields)
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
