"""An in-memory QuickBooks Desktop company file that answers qbXML the way QuickBooks Desktop does.

What it computes itself and never echoes from the request: ListIDs, TxnIDs, EditSequences, line amounts (Quantity ×
Rate when a rate is given), invoice subtotals, balances remaining and paid status, a received payment's unused
amount (what is left on the customer as a credit), and customers' balances. Rules, with their source:

- Names are unique across customers, vendors, employees and other names ("the name list"), case-insensitive:
  adding a name in use answers 3100 (Intuit, qbXML OSR error codes; QBO.md "QuickBooks Desktop").
- A reference to an object that does not exist answers 3120; a Mod with an out-of-date EditSequence 3200; a failure
  to save 3180 (OSR error codes). An account or payment method named in a reference that does not exist: 3140.
- A query by FullName that matches nothing answers statusCode 500 (Warn); a query by RefNumber that matches nothing
  answers 1 (Info, "did not find a matching object") (OSR; the 500 text as logged by qbXML users on the consolibyte
  wiki). Unconfirmed: the exact wording of statusMessage, which we never parse.
- Children of an Add must come in the schema's order, or the whole message set is refused with the request
  processor's parse error 0x80040400 (OSR; "Making your application robust"). The orders are the OSR's as summarized
  in quickbooks_desktop/qbxml.py; only the elements FieldSync can send are listed, anything else is refused.
- An applied amount larger than the invoice's balance is refused (3180 here; the real code is unconfirmed).
"""

import itertools
import threading
from dataclasses import dataclass, field
from decimal import Decimal
from xml.etree.ElementTree import Element, SubElement, tostring

from defusedxml import ElementTree as SafeET

PARSE_ERROR = ("0x80040400", "QuickBooks found an error when parsing the provided XML text stream.")

ORDER = {
    "CustomerAdd": ["Name", "IsActive", "ClassRef", "ParentRef", "CompanyName", "Salutation", "FirstName",
                    "MiddleName", "LastName", "JobTitle", "BillAddress", "ShipAddress", "PrintAs", "Phone", "Mobile",
                    "Pager", "AltPhone", "Fax", "Email"],
    "CustomerMod": ["ListID", "EditSequence", "Name", "IsActive", "CompanyName", "Phone", "Email"],
    "ItemServiceAdd": ["Name", "BarCode", "IsActive", "ClassRef", "ParentRef", "UnitOfMeasureSetRef",
                       "SalesTaxCodeRef", "SalesOrPurchase", "SalesAndPurchase"],
    "SalesOrPurchase": ["Desc", "Price", "PricePercent", "AccountRef"],
    "BillAddress": ["Addr1", "Addr2", "Addr3", "Addr4", "Addr5", "City", "State", "PostalCode", "Country", "Note"],
    "InvoiceAdd": ["CustomerRef", "ClassRef", "ARAccountRef", "TemplateRef", "TxnDate", "RefNumber", "BillAddress",
                   "ShipAddress", "IsPending", "PONumber", "TermsRef", "DueDate", "SalesRepRef", "FOB", "ShipDate",
                   "ShipMethodRef", "ItemSalesTaxRef", "Memo", "CustomerMsgRef", "IsToBePrinted", "IsToBeEmailed",
                   "IsTaxIncluded", "CustomerSalesTaxCodeRef", "Other", "ExchangeRate", "ExternalGUID",
                   "LinkToTxnID", "SetCredit", "InvoiceLineAdd"],
    "InvoiceLineAdd": ["ItemRef", "Desc", "Quantity", "UnitOfMeasure", "Rate", "RatePercent", "ClassRef", "Amount"],
    "ReceivePaymentAdd": ["CustomerRef", "ARAccountRef", "TxnDate", "RefNumber", "TotalAmount", "ExchangeRate",
                          "PaymentMethodRef", "Memo", "DepositToAccountRef", "CreditCardTxnInfo", "ExternalGUID",
                          "IsAutoApply", "AppliedToTxnAdd"],
    "AppliedToTxnAdd": ["TxnID", "PaymentAmount", "SetCredit", "DiscountAmount"],
}  # fmt: skip
MAX_LENGTH = {("CustomerAdd", "Name"): 41, ("ItemServiceAdd", "Name"): 31, ("InvoiceAdd", "RefNumber"): 11,
              ("ReceivePaymentAdd", "RefNumber"): 20}  # fmt: skip
ZERO = Decimal("0.00")


class ParseFailure(Exception):
    """The whole message set is refused (QuickBooks' request processor cannot parse it)."""


def _money(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01')):.2f}"


@dataclass
class Record:
    kind: str  # Customer, Vendor, Employee, OtherName, ItemService, ItemNonInventory, Account, PaymentMethod
    list_id: str
    name: str
    edit_sequence: str
    fields: dict = field(default_factory=dict)


@dataclass
class Txn:
    kind: str  # Invoice, ReceivePayment
    txn_id: str
    edit_sequence: str
    customer_id: str
    txn_date: str
    ref_number: str
    lines: list = field(default_factory=list)  # Invoice: (item list id, desc, qty, amount)
    total: Decimal = ZERO
    applied: list = field(default_factory=list)  # ReceivePayment: (invoice txn id, amount)
    memo: str = ""
    payment_method: str = ""
    deposit_to: str = ""


class DesktopCompany:
    """One company file. Thread-safe: QuickBooks handles one request at a time, and so does this."""

    NAME_LISTS = ("Customer", "Vendor", "Employee", "OtherName")

    def __init__(self, name: str = "Sample Plumbing Co."):
        self.company_name = name
        self.lists: dict[str, Record] = {}
        self.txns: dict[str, Txn] = {}
        self._serial = itertools.count(0x80000001)
        self._clock = itertools.count(1733300000)
        self._lock = threading.Lock()
        self.fail_next: dict[str, str] = {}  # request name -> message: answer it once with 3180
        self.processed_requests = 0
        for account in ("Accounts Receivable", "Undeposited Funds", "Checking", "Services", "Sales"):
            self._add_record("Account", account)
        for method in ("Cash", "Check", "Visa", "MasterCard"):
            self._add_record("PaymentMethod", method)

    # --- state, for tests and the command's report ----------------------------------------------------------------
    def _add_record(self, kind: str, name: str, **fields) -> Record:
        record = Record(kind, f"{next(self._serial):X}-{next(self._clock)}", name, str(next(self._clock)), fields)
        self.lists[record.list_id] = record
        return record

    def add_vendor(self, name: str) -> Record:
        return self._add_record("Vendor", name)

    def records(self, kind: str) -> list[Record]:
        return [r for r in self.lists.values() if r.kind == kind]

    def transactions(self, kind: str) -> list[Txn]:
        return [t for t in self.txns.values() if t.kind == kind]

    def invoice_balance(self, txn_id: str) -> Decimal:
        invoice = self.txns[txn_id]
        paid = sum(
            (amount for p in self.transactions("ReceivePayment") for tid, amount in p.applied if tid == txn_id), ZERO
        )
        return invoice.total - paid

    def unused_payment(self, txn: Txn) -> Decimal:
        return txn.total - sum((amount for _, amount in txn.applied), ZERO)

    def customer_balance(self, list_id: str) -> Decimal:
        """What the customer owes: open invoices less unused payments (credits)."""
        invoices = sum(
            (self.invoice_balance(t.txn_id) for t in self.transactions("Invoice") if t.customer_id == list_id), ZERO
        )
        credits = sum(
            (self.unused_payment(t) for t in self.transactions("ReceivePayment") if t.customer_id == list_id), ZERO
        )
        return invoices - credits

    def _name_in_use(self, name: str) -> bool:
        folded = name.casefold()
        return any(r.kind in self.NAME_LISTS and r.name.casefold() == folded for r in self.lists.values())

    def _by_name(self, kind: str, name: str) -> Record | None:
        folded = name.casefold()
        return next((r for r in self.lists.values() if r.kind == kind and r.name.casefold() == folded), None)

    # --- qbXML ----------------------------------------------------------------------------------------------------
    def process(self, qbxml: str) -> str:
        """Answer one request document; raises ParseFailure when QuickBooks would refuse it whole."""
        with self._lock:
            if '<?qbxml version="' not in qbxml:
                raise ParseFailure("no qbxml version")
            try:
                root = SafeET.fromstring(qbxml.encode("utf-8"))
            except Exception as exc:
                raise ParseFailure(str(exc)) from None
            msgs = root.find("QBXMLMsgsRq")
            if root.tag != "QBXML" or msgs is None:
                raise ParseFailure("no QBXMLMsgsRq")
            for rq in msgs:
                self._check_order(rq)
            out_root = Element("QBXML")
            out = SubElement(out_root, "QBXMLMsgsRs")
            stop = msgs.get("onError") == "stopOnError"
            for rq in msgs:
                rs = self._answer(rq)
                out.append(rs)
                self.processed_requests += 1
                if stop and rs.get("statusSeverity") == "Error":
                    break
            return '<?xml version="1.0" ?>\n' + tostring(out_root, encoding="unicode")

    def _check_order(self, element: Element) -> None:
        order = ORDER.get(element.tag)
        if order is not None:
            positions = []
            for child in element:
                if child.tag not in order:
                    raise ParseFailure(f"unexpected element {child.tag} in {element.tag}")
                positions.append(order.index(child.tag))
            if positions != sorted(positions):
                raise ParseFailure(f"elements of {element.tag} out of schema order")
            for child in element:
                limit = MAX_LENGTH.get((element.tag, child.tag))
                if limit and len(child.text or "") > limit:
                    raise ParseFailure(f"{child.tag} longer than {limit}")
        for child in element:
            self._check_order(child)

    def _status(self, tag: str, request_id: str, code: int, message: str) -> Element:
        severity = "Info" if code in (0, 1) else "Warn" if code == 500 else "Error"
        return Element(tag, requestID=request_id, statusCode=str(code), statusSeverity=severity, statusMessage=message)

    def _answer(self, rq: Element) -> Element:
        tag = rq.tag[:-2]  # "CustomerAddRq" -> "CustomerAdd"
        rs_tag, request_id = f"{tag}Rs", rq.get("requestID", "")
        handler = getattr(self, f"_{tag}", None)
        if handler is None:
            return self._status(rs_tag, request_id, 3250, f"The request {tag} is not supported by this simulator.")
        if tag in self.fail_next:
            message = self.fail_next.pop(tag)
            return self._status(rs_tag, request_id, 3180, f"There was an error when saving a {tag[:-3]}. {message}")
        return handler(rq, rs_tag, request_id)

    def _ok(self, rs_tag: str, request_id: str, rets: list[Element]) -> Element:
        rs = self._status(rs_tag, request_id, 0, "Status OK")
        rs.extend(rets)
        return rs

    def _ref(self, add: Element, tag: str, kinds: tuple[str, ...]) -> Record | None | str:
        ref = add.find(tag)
        if ref is None:
            return None
        list_id, full_name = ref.findtext("ListID"), ref.findtext("FullName")
        if list_id:
            record = self.lists.get(list_id)
            return record if record and record.kind in kinds else f"ListID:{list_id}"
        record = next(
            (self._by_name(kind, full_name or "") for kind in kinds if self._by_name(kind, full_name or "")), None
        )
        return record or f"FullName:{full_name}"

    # Lists
    def _list_ret(self, record: Record) -> Element:
        ret = Element(f"{record.kind}Ret")
        for tag, value in (("ListID", record.list_id), ("EditSequence", record.edit_sequence), ("Name", record.name),
                           ("FullName", record.name)):  # fmt: skip
            SubElement(ret, tag).text = value
        if record.kind == "Customer":
            SubElement(ret, "Balance").text = _money(self.customer_balance(record.list_id))
            SubElement(ret, "TotalBalance").text = _money(self.customer_balance(record.list_id))
        return ret

    def _list_query(self, kind: str, rq: Element, rs_tag: str, request_id: str) -> Element:
        ids, names = [e.text for e in rq.findall("ListID")], [e.text or "" for e in rq.findall("FullName")]
        found = [self.lists[i] for i in ids if i in self.lists and self.lists[i].kind == kind]
        found += [r for n in names if (r := self._by_name(kind, n))]
        if not ids and not names:
            found = self.records(kind)
        if not found:
            missing = (ids or names or [""])[0]
            return self._status(
                rs_tag, request_id, 500,
                f'The query request has not been fully completed. There was a required element ("{missing}") that '
                "could not be found in QuickBooks.",
            )  # fmt: skip
        return self._ok(rs_tag, request_id, [self._list_ret(r) for r in found])

    def _CustomerQuery(self, rq, rs_tag, request_id):
        return self._list_query("Customer", rq, rs_tag, request_id)

    def _ItemServiceQuery(self, rq, rs_tag, request_id):
        return self._list_query("ItemService", rq, rs_tag, request_id)

    def _CustomerAdd(self, rq, rs_tag, request_id):
        add = rq.find("CustomerAdd")
        name = add.findtext("Name") or ""
        if self._name_in_use(name):
            return self._status(rs_tag, request_id, 3100, f'The name "{name}" of the list element is already in use.')
        record = self._add_record("Customer", name, email=add.findtext("Email") or "")
        return self._ok(rs_tag, request_id, [self._list_ret(record)])

    def _CustomerMod(self, rq, rs_tag, request_id):
        mod = rq.find("CustomerMod")
        record = self.lists.get(mod.findtext("ListID") or "")
        if record is None or record.kind != "Customer":
            return self._status(
                rs_tag, request_id, 3120, f'Object "{mod.findtext("ListID")}" specified in the request cannot be found.'
            )
        if mod.findtext("EditSequence") != record.edit_sequence:
            return self._status(
                rs_tag, request_id, 3200, f'The provided edit sequence "{mod.findtext("EditSequence")}" is out-of-date.'
            )
        new_name = mod.findtext("Name")
        if new_name and new_name.casefold() != record.name.casefold() and self._name_in_use(new_name):
            return self._status(
                rs_tag, request_id, 3100, f'The name "{new_name}" of the list element is already in use.'
            )
        record.name = new_name or record.name
        record.edit_sequence = str(next(self._clock))
        return self._ok(rs_tag, request_id, [self._list_ret(record)])

    def _ItemServiceAdd(self, rq, rs_tag, request_id):
        add = rq.find("ItemServiceAdd")
        name = add.findtext("Name") or ""
        if any(r.name.casefold() == name.casefold() for r in self.lists.values() if r.kind.startswith("Item")):
            return self._status(rs_tag, request_id, 3100, f'The name "{name}" of the list element is already in use.')
        account = self._ref(
            add.find("SalesOrPurchase") if add.find("SalesOrPurchase") is not None else add, "AccountRef", ("Account",)
        )
        if not isinstance(account, Record):
            return self._status(
                rs_tag,
                request_id,
                3140,
                f'There is an invalid reference to QuickBooks Account "{account}" in the Item.',
            )
        return self._ok(
            rs_tag, request_id, [self._list_ret(self._add_record("ItemService", name, account=account.name))]
        )

    # Transactions
    def _txn_ret(self, txn: Txn) -> Element:
        ret = Element(f"{txn.kind}Ret")
        SubElement(ret, "TxnID").text = txn.txn_id
        SubElement(ret, "EditSequence").text = txn.edit_sequence
        customer = SubElement(ret, "CustomerRef")
        SubElement(customer, "ListID").text = txn.customer_id
        SubElement(customer, "FullName").text = self.lists[txn.customer_id].name
        SubElement(ret, "TxnDate").text = txn.txn_date
        SubElement(ret, "RefNumber").text = txn.ref_number
        if txn.kind == "Invoice":
            balance = self.invoice_balance(txn.txn_id)
            SubElement(ret, "Subtotal").text = _money(txn.total)
            SubElement(ret, "SalesTaxTotal").text = "0.00"
            SubElement(ret, "AppliedAmount").text = _money(balance - txn.total)
            SubElement(ret, "BalanceRemaining").text = _money(balance)
            SubElement(ret, "IsPaid").text = "true" if balance == 0 else "false"
        else:
            SubElement(ret, "TotalAmount").text = _money(txn.total)
            SubElement(ret, "UnusedPayment").text = _money(self.unused_payment(txn))
            for txn_id, amount in txn.applied:
                applied = SubElement(ret, "AppliedToTxnRet")
                SubElement(applied, "TxnID").text = txn_id
                SubElement(applied, "TxnType").text = "Invoice"
                SubElement(applied, "BalanceRemaining").text = _money(self.invoice_balance(txn_id))
                SubElement(applied, "Amount").text = _money(amount)
        return ret

    def _txn_query(self, kind: str, rq, rs_tag, request_id):
        ids, refs = [e.text for e in rq.findall("TxnID")], [e.text or "" for e in rq.findall("RefNumber")]
        found = [t for t in self.transactions(kind) if t.txn_id in ids or t.ref_number in refs]
        if not ids and not refs:
            found = self.transactions(kind)
        if not found:
            if ids:
                return self._status(
                    rs_tag, request_id, 3120, f'Object "{ids[0]}" specified in the request cannot be found.'
                )
            return self._status(rs_tag, request_id, 1, "A query request did not find a matching object in QuickBooks")
        return self._ok(rs_tag, request_id, [self._txn_ret(t) for t in found])

    def _InvoiceQuery(self, rq, rs_tag, request_id):
        return self._txn_query("Invoice", rq, rs_tag, request_id)

    def _ReceivePaymentQuery(self, rq, rs_tag, request_id):
        return self._txn_query("ReceivePayment", rq, rs_tag, request_id)

    def _new_txn(self, kind: str, **fields) -> Txn:
        txn = Txn(kind, f"{next(self._serial):X}-{next(self._clock)}", str(next(self._clock)), **fields)
        self.txns[txn.txn_id] = txn
        return txn

    def _InvoiceAdd(self, rq, rs_tag, request_id):
        add = rq.find("InvoiceAdd")
        customer = self._ref(add, "CustomerRef", ("Customer",))
        if not isinstance(customer, Record):
            return self._status(
                rs_tag, request_id, 3120, f'Object "{customer}" specified in the request cannot be found.'
            )
        lines = []
        for line in add.findall("InvoiceLineAdd"):
            item = self._ref(line, "ItemRef", ("ItemService", "ItemNonInventory"))
            if not isinstance(item, Record):
                return self._status(
                    rs_tag, request_id, 3120, f'Object "{item}" specified in the request cannot be found.'
                )
            quantity = Decimal(line.findtext("Quantity") or "1")
            rate, amount = line.findtext("Rate"), line.findtext("Amount")
            # QuickBooks computes the amount from quantity and rate; given an amount and no rate it keeps the amount.
            value = (quantity * Decimal(rate)).quantize(Decimal("0.01")) if rate else Decimal(amount or "0")
            lines.append((item.list_id, line.findtext("Desc") or "", quantity, value))
        txn = self._new_txn(
            "Invoice",
            customer_id=customer.list_id,
            txn_date=add.findtext("TxnDate") or "",
            ref_number=add.findtext("RefNumber") or "",
            lines=lines,
            total=sum((value for *_, value in lines), ZERO),
            memo=add.findtext("Memo") or "",
        )
        return self._ok(rs_tag, request_id, [self._txn_ret(txn)])

    def _ReceivePaymentAdd(self, rq, rs_tag, request_id):
        add = rq.find("ReceivePaymentAdd")
        customer = self._ref(add, "CustomerRef", ("Customer",))
        if not isinstance(customer, Record):
            return self._status(
                rs_tag, request_id, 3120, f'Object "{customer}" specified in the request cannot be found.'
            )
        for tag, kinds in (("PaymentMethodRef", ("PaymentMethod",)), ("DepositToAccountRef", ("Account",))):
            ref = self._ref(add, tag, kinds)
            if isinstance(ref, str):
                return self._status(
                    rs_tag,
                    request_id,
                    3140,
                    f'There is an invalid reference to QuickBooks {tag[:-3]} "{ref}" in the ReceivePayment.',
                )
        total = Decimal(add.findtext("TotalAmount") or "0")
        applied = []
        for applied_add in add.findall("AppliedToTxnAdd"):
            txn_id = applied_add.findtext("TxnID") or ""
            invoice = self.txns.get(txn_id)
            if invoice is None or invoice.kind != "Invoice" or invoice.customer_id != customer.list_id:
                return self._status(
                    rs_tag, request_id, 3120, f'Object "{txn_id}" specified in the request cannot be found.'
                )
            amount = Decimal(applied_add.findtext("PaymentAmount") or "0")
            if amount > self.invoice_balance(txn_id):
                return self._status(
                    rs_tag,
                    request_id,
                    3180,
                    f"There was an error when saving a ReceivePayment: {amount} is more than the invoice's balance.",
                )
            applied.append((txn_id, amount))
        if sum((a for _, a in applied), ZERO) > total:
            return self._status(
                rs_tag,
                request_id,
                3180,
                "There was an error when saving a ReceivePayment: the amounts applied exceed the payment.",
            )
        method = self._ref(add, "PaymentMethodRef", ("PaymentMethod",))
        deposit = self._ref(add, "DepositToAccountRef", ("Account",))
        txn = self._new_txn(
            "ReceivePayment",
            customer_id=customer.list_id,
            txn_date=add.findtext("TxnDate") or "",
            ref_number=add.findtext("RefNumber") or "",
            total=total,
            applied=applied,
            memo=add.findtext("Memo") or "",
            payment_method=method.name if isinstance(method, Record) else "",
            deposit_to=deposit.name if isinstance(deposit, Record) else "Undeposited Funds",
        )
        return self._ok(rs_tag, request_id, [self._txn_ret(txn)])

    def _CompanyQuery(self, rq, rs_tag, request_id):
        ret = Element("CompanyRet")
        SubElement(ret, "CompanyName").text = self.company_name
        return self._ok(rs_tag, request_id, [ret])
