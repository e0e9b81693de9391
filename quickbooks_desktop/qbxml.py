"""qbXML for QuickBooks Desktop: request builders and response parsing, pure functions (no I/O, no database).

QuickBooks Desktop validates every request against the qbXML schema, and the schema is a sequence: child elements
must come in the schema's order or the whole message set is refused with a parse error (Intuit, "QuickBooks Desktop
SDK: qbXML Onscreen Reference" (OSR), and the SDK's "Making your application robust" page). The orders below follow
the OSR for qbXML 13.0 (QuickBooks 2014 and later, US editions):

- CustomerAdd: Name, IsActive, ClassRef, ParentRef, CompanyName, Salutation, FirstName, MiddleName, LastName,
  JobTitle, BillAddress(Addr1..Addr5, City, State, PostalCode, Country, Note), ShipAddress, ..., Phone, Mobile,
  Pager, AltPhone, Fax, Email, ...
- ItemServiceAdd: Name, BarCode, IsActive, ClassRef, ParentRef, UnitOfMeasureSetRef, SalesTaxCodeRef,
  (SalesOrPurchase(Desc, Price | PricePercent, AccountRef) | SalesAndPurchase(...)), ...
- InvoiceAdd: CustomerRef, ClassRef, ARAccountRef, TemplateRef, TxnDate, RefNumber, BillAddress, ShipAddress,
  IsPending, PONumber, TermsRef, DueDate, SalesRepRef, FOB, ShipDate, ShipMethodRef, ItemSalesTaxRef, Memo, ...,
  then InvoiceLineAdd*(ItemRef, Desc, Quantity, UnitOfMeasure, Rate | RatePercent | PriceLevelRef, ClassRef,
  Amount, ...).
- ReceivePaymentAdd: CustomerRef, ARAccountRef, TxnDate, RefNumber, TotalAmount, ExchangeRate, PaymentMethodRef,
  Memo, DepositToAccountRef, CreditCardTxnInfo, ExternalGUID, then IsAutoApply | AppliedToTxnAdd+(TxnID,
  PaymentAmount, SetCredit, DiscountAmount, ...). The order of ReceivePaymentRet in a logged real response
  (consolibyte wiki, "receiveResponseXML": CustomerRef, ARAccountRef, TxnDate, RefNumber, TotalAmount, Memo,
  DepositToAccountRef, ..., AppliedToTxnRet) agrees.
- CustomerQueryRq / ItemServiceQueryRq: ListID* | FullName* | filters ...; InvoiceQueryRq / ReceivePaymentQueryRq:
  TxnID* | RefNumber* | RefNumberCaseSensitive* | filters ..., then IncludeLineItems, IncludeRetElement, OwnerID.

Cross-checked against a second reading of the OSR: consolibyte/quickbooks-php's generated schema objects
(QuickBooks/QBXML/Schema/Object/InvoiceAddRq.php and ReceivePaymentAddRq.php list the same element order and the
maximum lengths Invoice RefNumber 11, ReceivePayment RefNumber 20, Memo and Desc 4095, address lines 41, City 31).

Unconfirmed here (no QuickBooks Desktop in this environment, to check against a real company file): the name lengths
(customer Name 41, item Name 31), and that an InvoiceLineAdd with Quantity and Amount but no Rate makes QuickBooks
derive the rate (we send it so the line total is exactly what the customer was billed).
"""

from dataclasses import dataclass, field
from decimal import Decimal
from xml.etree.ElementTree import Element, SubElement, tostring

from defusedxml import ElementTree as SafeET

QBXML_VERSION = "13.0"
QBXML_MAJOR_VERSION = 13

CUSTOMER_NAME_MAX = 41
ITEM_NAME_MAX = 31
INVOICE_REF_MAX = 11
PAYMENT_REF_MAX = 20
MEMO_MAX = 4095
ADDRESS_LINE_MAX = 41

# Status codes QuickBooks answers with (Intuit, qbXML OSR "Error codes" / "Making your application robust").
STATUS_OK = 0
STATUS_NO_MATCH = 1  # "A query request did not find a matching object in QuickBooks" (Info)
STATUS_NAME_NOT_FOUND = 500  # "The query request has not been fully completed. There was a required element..."
STATUS_NAME_IN_USE = 3100  # a name is unique across customers, vendors, employees and other names
STATUS_OBJECT_NOT_FOUND = 3120
STATUS_INVALID_REFERENCE = 3140
STATUS_SAVE_ERROR = 3180
STATUS_EDIT_SEQUENCE_STALE = 3200
NOT_FOUND_CODES = frozenset({STATUS_NO_MATCH, STATUS_NAME_NOT_FOUND})


def _money(value: Decimal) -> str:
    return f"{Decimal(value).quantize(Decimal('0.01')):.2f}"


def _text(parent: Element, tag: str, value, max_length: int | None = None) -> None:
    if value in (None, ""):
        return
    value = str(value)
    SubElement(parent, tag).text = value[:max_length] if max_length else value


def _ref(parent: Element, tag: str, *, list_id: str = "", full_name: str = "") -> None:
    ref = SubElement(parent, tag)
    if list_id:
        SubElement(ref, "ListID").text = list_id
    else:
        SubElement(ref, "FullName").text = full_name


def clean_name(value: str, max_length: int) -> str:
    """A list name QuickBooks accepts: no colon (it separates a parent from a sub-item in FullName), no surrounding
    spaces, within the field's length."""
    return " ".join(value.replace(":", "-").split())[:max_length].strip()


def message_set(requests: list[Element], *, on_error: str = "continueOnError") -> str:
    """A full qbXML request document: the processing instruction names the version, then one message set."""
    root = Element("QBXML")
    msgs = SubElement(root, "QBXMLMsgsRq", onError=on_error)
    msgs.extend(requests)
    body = tostring(root, encoding="unicode")
    return f'<?xml version="1.0" encoding="utf-8"?>\n<?qbxml version="{QBXML_VERSION}"?>\n{body}'


# --- Queries ------------------------------------------------------------------------------------------------------


def list_query(entity: str, request_id: str, *, full_name: str) -> Element:
    """CustomerQueryRq / ItemServiceQueryRq by FullName (our marker for names)."""
    rq = Element(f"{entity}QueryRq", requestID=request_id)
    _text(rq, "FullName", full_name)
    return rq


def txn_query(entity: str, request_id: str, *, ref_number: str) -> Element:
    """InvoiceQueryRq / ReceivePaymentQueryRq by RefNumber (our marker for transactions)."""
    rq = Element(f"{entity}QueryRq", requestID=request_id)
    _text(rq, "RefNumber", ref_number)
    return rq


# --- Adds ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerData:
    name: str
    company_name: str = ""
    address: tuple[str, str, str, str, str, str] = ("", "", "", "", "", "")  # line1, line2, city, state, zip, country
    phone: str = ""
    email: str = ""


def customer_add(request_id: str, data: CustomerData) -> Element:
    rq = Element("CustomerAddRq", requestID=request_id)
    add = SubElement(rq, "CustomerAdd")
    _text(add, "Name", data.name, CUSTOMER_NAME_MAX)
    _text(add, "CompanyName", data.company_name, 41)
    if any(data.address):
        line1, line2, city, state, postal_code, country = data.address
        address = SubElement(add, "BillAddress")
        _text(address, "Addr1", line1, ADDRESS_LINE_MAX)
        _text(address, "Addr2", line2, ADDRESS_LINE_MAX)
        _text(address, "City", city, 31)
        _text(address, "State", state, 21)
        _text(address, "PostalCode", postal_code, 13)
        _text(address, "Country", country, 31)
    _text(add, "Phone", data.phone, 21)
    _text(add, "Email", data.email, 1023)
    return rq


def item_service_add(request_id: str, *, name: str, income_account: str) -> Element:
    rq = Element("ItemServiceAddRq", requestID=request_id)
    add = SubElement(rq, "ItemServiceAdd")
    _text(add, "Name", name, ITEM_NAME_MAX)
    sales = SubElement(add, "SalesOrPurchase")
    _ref(sales, "AccountRef", full_name=income_account)
    return rq


@dataclass(frozen=True)
class InvoiceLineData:
    item_list_id: str
    description: str
    quantity: Decimal
    amount: Decimal


@dataclass(frozen=True)
class InvoiceData:
    customer_list_id: str
    txn_date: str
    ref_number: str
    due_date: str = ""
    memo: str = ""
    lines: list[InvoiceLineData] = field(default_factory=list)


def invoice_add(request_id: str, data: InvoiceData) -> Element:
    rq = Element("InvoiceAddRq", requestID=request_id)
    add = SubElement(rq, "InvoiceAdd")
    _ref(add, "CustomerRef", list_id=data.customer_list_id)
    _text(add, "TxnDate", data.txn_date)
    _text(add, "RefNumber", data.ref_number)
    _text(add, "DueDate", data.due_date)
    _text(add, "Memo", data.memo, MEMO_MAX)
    for line in data.lines:
        line_add = SubElement(add, "InvoiceLineAdd")
        _ref(line_add, "ItemRef", list_id=line.item_list_id)
        _text(line_add, "Desc", line.description, MEMO_MAX)
        _text(line_add, "Quantity", f"{line.quantity.normalize():f}")
        _text(line_add, "Amount", _money(line.amount))
    return rq


@dataclass(frozen=True)
class PaymentData:
    customer_list_id: str
    txn_date: str
    ref_number: str
    total: Decimal
    applied: list[tuple[str, Decimal]]  # (invoice TxnID, amount)
    payment_method: str = ""
    memo: str = ""
    deposit_account: str = ""


def receive_payment_add(request_id: str, data: PaymentData) -> Element:
    """What is not applied stays on the customer as a credit (QuickBooks' UnusedPayment)."""
    rq = Element("ReceivePaymentAddRq", requestID=request_id)
    add = SubElement(rq, "ReceivePaymentAdd")
    _ref(add, "CustomerRef", list_id=data.customer_list_id)
    _text(add, "TxnDate", data.txn_date)
    _text(add, "RefNumber", data.ref_number, PAYMENT_REF_MAX)
    _text(add, "TotalAmount", _money(data.total))
    if data.payment_method:
        _ref(add, "PaymentMethodRef", full_name=data.payment_method)
    _text(add, "Memo", data.memo, MEMO_MAX)
    if data.deposit_account:
        _ref(add, "DepositToAccountRef", full_name=data.deposit_account)
    for txn_id, amount in data.applied:
        applied = SubElement(add, "AppliedToTxnAdd")
        _text(applied, "TxnID", txn_id)
        _text(applied, "PaymentAmount", _money(amount))
    return rq


# --- Responses ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Found:
    """One object a query or an add returned."""

    qb_id: str  # ListID or TxnID
    edit_sequence: str
    name: str  # FullName or RefNumber
    customer_list_id: str = ""
    total: Decimal | None = None


@dataclass(frozen=True)
class Result:
    request_id: str
    request: str  # e.g. "CustomerAddRs"
    status_code: int
    severity: str
    message: str
    found: list[Found]

    @property
    def ok(self) -> bool:
        return self.status_code == STATUS_OK

    @property
    def not_found(self) -> bool:
        return self.status_code in NOT_FOUND_CODES


class QbxmlParseError(ValueError):
    pass


def _child_text(element, tag: str) -> str:
    child = element.find(tag)
    return (child.text or "").strip() if child is not None else ""


def _found(ret) -> Found:
    qb_id = _child_text(ret, "ListID") or _child_text(ret, "TxnID")
    customer = ret.find("CustomerRef")
    total = None
    if ret.tag == "InvoiceRet":
        subtotal = _child_text(ret, "Subtotal") or "0"
        tax = _child_text(ret, "SalesTaxTotal") or "0"
        total = Decimal(subtotal) + Decimal(tax)
    elif ret.tag == "ReceivePaymentRet":
        total = Decimal(_child_text(ret, "TotalAmount") or "0")
    return Found(
        qb_id=qb_id,
        edit_sequence=_child_text(ret, "EditSequence"),
        name=_child_text(ret, "FullName") or _child_text(ret, "Name") or _child_text(ret, "RefNumber"),
        customer_list_id=_child_text(customer, "ListID") if customer is not None else "",
        total=total,
    )


def parse_response(text: str) -> dict[str, Result]:
    """The results of a qbXML response, by requestID. Parsed with defusedxml: no DTDs, no entity expansion."""
    try:
        root = SafeET.fromstring(text.encode("utf-8") if isinstance(text, str) else text)
    except Exception as exc:  # defusedxml raises its own errors besides ParseError
        raise QbxmlParseError(f"QuickBooks' answer is not readable qbXML ({exc}).") from None
    msgs = root.find("QBXMLMsgsRs")
    if root.tag != "QBXML" or msgs is None:
        raise QbxmlParseError("QuickBooks' answer has no QBXMLMsgsRs.")
    results: dict[str, Result] = {}
    for rs in msgs:
        try:
            code = int(rs.get("statusCode", "-1"))
        except ValueError:
            code = -1
        results[rs.get("requestID", "")] = Result(
            request_id=rs.get("requestID", ""),
            request=rs.tag,
            status_code=code,
            severity=rs.get("statusSeverity", ""),
            message=rs.get("statusMessage", ""),
            found=[_found(ret) for ret in rs if ret.tag.endswith("Ret")],
        )
    return results
