"""Our objects -> QuickBooks Online JSON. Pure functions: no I/O, no database, no clock.

The shapes follow Intuit's Accounting API v3 (see ../shared/QBO.md): amounts are Decimals (python-quickbooks sends
them as JSON strings), references are {"value": Id}, dates are ISO dates.
"""

import hashlib
import json
import uuid
from collections.abc import Iterable
from decimal import Decimal

from billing.models import Customer, Invoice, Payment, Refund
from billing.money import ZERO

from .models import ClassTracking

# QuickBooks field limits (Intuit API reference).
DISPLAY_NAME_MAX = 500
DOC_NUMBER_MAX = 21
PAYMENT_REF_NUM_MAX = 21
ITEM_NAME_MAX = 100
PRIVATE_NOTE_MAX = 4000

# uuid5 namespace for request ids: the same object, operation and generation always gives the same request id.
_REQUEST_ID_NAMESPACE = uuid.UUID("5b0f6a53-2c1e-4d0a-9a51-6f3c2e1f5d10")


def request_id_for(*parts: object) -> str:
    """A deterministic 36-character QuickBooks requestid (fits the batch limit of 36).

    The engine passes this installation's random id, the object, the generation and a digest of the payload, so two
    installations, or one restored from a backup whose outbox forgot what it sent, never send one id with different
    content (QuickBooks would answer with the other content's object)."""
    return str(uuid.uuid5(_REQUEST_ID_NAMESPACE, "|".join(str(part) for part in parts)))


def payload_digest(payload: object) -> str:
    """A short, stable fingerprint of what a request sends (amounts as their exact text)."""
    text = json.dumps(payload, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def quote(value: str) -> str:
    """A QuickBooks query string literal: single quotes, apostrophes escaped with a backslash."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def item_key(service_name: str) -> str:
    """Items are matched by the name they get in QuickBooks, case-insensitively, as QuickBooks' unique names are:
    two service names that become the same item name are one item."""
    return item_name(service_name).lower()


def item_name(service_name: str) -> str:
    # QuickBooks refuses ':' in names (it separates sub-items).
    return " ".join(service_name.split()).replace(":", "-")[:ITEM_NAME_MAX]


# --- Customers ----------------------------------------------------------------------------------------------------


def customer_display_names(customer: Customer) -> list[str]:
    """Names to try, in order. The first is the customer's own; the others tell apart two parties with one name
    (two different "John Smith"s): the city, then our customer number, which is unique."""
    base = " ".join(customer.display_name.split()).replace(":", "-")
    names = [base]
    if customer.billing_city:
        names.append(f"{base} ({customer.billing_city})")
    names.append(f"{base} (FieldSync #{customer.pk})")
    return [name[:DISPLAY_NAME_MAX] for name in names]


def customer_payload(customer: Customer, *, display_name: str) -> dict:
    payload: dict = {"DisplayName": display_name}
    if customer.company_name:
        payload["CompanyName"] = customer.company_name
    if customer.email:
        payload["PrimaryEmailAddr"] = {"Address": customer.email}
    if customer.phone:
        payload["PrimaryPhone"] = {"FreeFormNumber": customer.phone}
    if address := customer_address(customer):
        payload["BillAddr"] = address
        payload["ShipAddr"] = address  # where the work was done, as far as we know: what QuickBooks' AST taxes
    return payload


def customer_address(customer: Customer) -> dict | None:
    address = {
        "Line1": customer.billing_line1,
        "Line2": customer.billing_line2,
        "City": customer.billing_city,
        "CountrySubDivisionCode": customer.billing_region,
        "PostalCode": customer.billing_postal_code,
        "Country": customer.billing_country,
    }
    address = {key: value for key, value in address.items() if value}
    return address if address.keys() - {"Country"} else None


def qbo_email(qbo_customer: dict) -> str:
    return ((qbo_customer.get("PrimaryEmailAddr") or {}).get("Address") or "").strip().lower()


def is_same_party(customer: Customer, qbo_customer: dict) -> bool:
    """Whether a QuickBooks customer found by name is this customer, not another party with the same name.

    A matching e-mail says yes; two different e-mails say no. With no e-mail on one side we accept the match only
    when the other side has none either (an unknown party would otherwise be merged silently).
    """
    ours, theirs = customer.email.strip().lower(), qbo_email(qbo_customer)
    return ours == theirs


# --- Items --------------------------------------------------------------------------------------------------------


def item_names(service_name: str) -> list[str]:
    """Names to try for a service's item, in order: its own, then one no Inventory/Category item of QuickBooks is
    likely to hold ("Drain cleaning (service)")."""
    base = item_name(service_name)
    return [base, f"{base[: ITEM_NAME_MAX - 10]} (service)"]


def item_payload(*, service_name: str, income_account_ref: dict | None, name: str | None = None) -> dict:
    payload: dict = {"Name": name or item_name(service_name), "Type": "Service"}
    if income_account_ref:
        payload["IncomeAccountRef"] = income_account_ref
    return payload


# --- Invoices -----------------------------------------------------------------------------------------------------


def line_quantity_and_price(line) -> tuple[Decimal, Decimal, str]:
    """(Qty, UnitPrice, description prefix) that keep QuickBooks' rule Amount = Qty × UnitPrice (error 6070) with the
    amount the customer was billed. Our amount is quantity × unit price rounded half up to cents; when that product
    is not exact (1.5 × $10.01 = $15.015 billed $15.02) we send Qty 1 and UnitPrice = the amount, and keep the
    quantity and price in the description so nobody loses them."""
    if line.quantity * line.unit_price == line.amount:
        return line.quantity, line.unit_price, ""
    return Decimal("1"), line.amount, f"{line.quantity.normalize():f} × {line.unit_price} — "


def invoice_payload(
    invoice: Invoice,
    *,
    customer_id: str,
    item_ids: dict[str, str],
    profile=None,
    sales_tax_code_id: str = "",
    no_tax_code_id: str = "",
    customer: Customer | None = None,
    class_id: str = "",
    department_id: str = "",
) -> dict:
    """`invoice` carries `lines` and the annotated `total` (billing.selectors.invoice_with_balances).

    `profile` (models.QuickBooksCompanyProfile, None when unknown) decides how tax and numbering are expressed:
    - US company: each line TaxCodeRef TAX (the invoice has tax) or NON; with a mapped tax code, TxnTaxDetail names it
      and carries our TotalTax (QuickBooks honours an amount only together with a TxnTaxCodeRef); with automated sales
      tax and no mapped code, the customer's address as ShipAddr so QuickBooks computes its own tax.
    - Other countries: every line carries the mapped TaxCode (the taxed one, or the no-tax one); QuickBooks computes
      the tax from the codes.
    - Custom transaction numbers off: no DocNumber (QuickBooks assigns its own); our number stays in PrivateNote.
    - `class_id` / `department_id` (the unit's QuickBooksUnitTracking): a ClassRef on the invoice when the company
      keeps one class per transaction, on each line when it keeps one per line, none when class tracking is off; a
      DepartmentRef only when it tracks locations (Intuit, "Categorize income and expenses"; Invoice reference).
    Whatever QuickBooks computes is compared with our total before any payment is posted (services.py).
    """
    class_tracking = profile.class_tracking if profile is not None and class_id else ClassTracking.OFF
    taxed = invoice.sales_tax > 0
    us = profile is None or profile.is_us
    lines = []
    for line in invoice.lines.all():
        qty, price, prefix = line_quantity_and_price(line)
        detail: dict = {"ItemRef": {"value": item_ids[item_key(line.service_name)]}, "Qty": qty, "UnitPrice": price}
        line_taxed = taxed and line.taxable
        if profile is not None and profile.using_sales_tax:
            if us:
                detail["TaxCodeRef"] = {"value": "TAX" if line_taxed else "NON"}
            elif code := (sales_tax_code_id if line_taxed else no_tax_code_id):
                detail["TaxCodeRef"] = {"value": code}
        if class_tracking == ClassTracking.PER_LINE:
            detail["ClassRef"] = {"value": class_id}
        lines.append(
            {
                "DetailType": "SalesItemLineDetail",
                "Amount": line.amount,
                "Description": (prefix + (line.description or line.service_name))[:4000],
                "SalesItemLineDetail": detail,
            }
        )
    payload: dict = {
        "CustomerRef": {"value": customer_id},
        "Line": lines,
        "PrivateNote": f"FieldSync invoice {invoice.number}",
    }
    if profile is None or profile.custom_txn_numbers:
        payload["DocNumber"] = invoice.number[:DOC_NUMBER_MAX]
    if class_tracking == ClassTracking.PER_TRANSACTION:
        payload["ClassRef"] = {"value": class_id}
    if department_id and profile is not None and profile.track_departments:
        payload["DepartmentRef"] = {"value": department_id}
    if invoice.issued_on:
        payload["TxnDate"] = invoice.issued_on.isoformat()
    if invoice.due_on:
        payload["DueDate"] = invoice.due_on.isoformat()
    if profile is None:
        if taxed:  # company not read yet: our amount, checked against QuickBooks' total before any payment
            payload["TxnTaxDetail"] = {"TotalTax": invoice.sales_tax}
    elif us and profile.using_sales_tax and taxed:
        if sales_tax_code_id:
            payload["TxnTaxDetail"] = {"TxnTaxCodeRef": {"value": sales_tax_code_id}, "TotalTax": invoice.sales_tax}
        if profile.automated_sales_tax and customer is not None and (address := customer_address(customer)):
            payload["ShipAddr"] = address
    return payload


# --- Payments -----------------------------------------------------------------------------------------------------


def _netted(refund: Refund) -> bool:
    """Whether the export takes this refund out of what it posts (billing.models.Refund explains the kinds): only
    refunds recorded while the payment was not in QuickBooks, and never money no longer owed (that one always goes
    to QuickBooks as a Refund Receipt, so the payment goes there as received and the invoice stays paid)."""
    return refund.handling == Refund.Handling.NETTED and refund.kind != Refund.Kind.NO_LONGER_OWED


def payment_net_applications(payment: Payment) -> list[tuple[Invoice, Decimal]]:
    """(invoice, amount still applied after the netted refunds), for each invoice the payment pays; zero amounts
    dropped (an application reversed in full does not go to QuickBooks). The same rule as
    billing.selectors._live_applications."""
    result = []
    for application in payment.applications.all():
        refunded = sum((refund.amount for refund in application.refunds.all() if _netted(refund)), ZERO)
        net = application.amount - refunded
        if net > 0:
            result.append((application.invoice, net))
    return result


def payment_total(payment: Payment) -> Decimal:
    """What QuickBooks receives: the amount less the refunds the export nets out (`amount_netted`, annotated by
    billing.selectors.payment_with_amounts). Refunds handed to QuickBooks as their own transaction are not taken
    out here: a refund is never both netted and entered by hand."""
    return payment.amount - payment.amount_netted


def payment_marker(payment_id: int | str) -> str:
    """FieldSync's mark on a payment in QuickBooks (its PrivateNote starts with it): how a create whose answer was
    lost, and whose request id QuickBooks may have forgotten, is found again instead of being sent twice."""
    return f"FieldSync payment #{payment_id}"


def has_payment_marker(qbo_payment: dict, payment_id: int | str) -> bool:
    note = qbo_payment.get("PrivateNote") or ""
    marker = payment_marker(payment_id)
    return note == marker or note.startswith(f"{marker} - ")


def is_fieldsync_payment(qbo_payment: dict) -> bool:
    """Whether a QuickBooks payment carries FieldSync's marker (any FieldSync payment's): such a payment is
    FieldSync's own, even without a mapping (a create whose answer was lost, adopted by the export), so it is never
    brought in as a payment recorded in QuickBooks. (deploy/prod_check.py counts ours by the same prefix.)"""
    note = qbo_payment.get("PrivateNote") or ""
    prefix = payment_marker("")
    if not note.startswith(prefix):
        return False
    number = note[len(prefix) :].split(" - ", 1)[0]
    return number.isdigit()


def payment_payload(
    payment: Payment,
    *,
    customer_id: str,
    invoice_ids: dict[int, str],
    deposit_account_ref: dict | None,
    payment_method_ref: dict | None,
) -> dict:
    """One Line per invoice paid, linked to it; what is not applied arrives as UnappliedAmt (QuickBooks computes it as
    TotalAmt minus the lines)."""
    lines = [
        {"Amount": amount, "LinkedTxn": [{"TxnId": invoice_ids[invoice.pk], "TxnType": "Invoice"}]}
        for invoice, amount in payment_net_applications(payment)
    ]
    payload: dict = {
        "CustomerRef": {"value": customer_id},
        "TotalAmt": payment_total(payment),
        "TxnDate": payment.received_on.isoformat(),
        "Line": lines,
        "PrivateNote": payment_marker(payment.pk) + (f" - {payment.memo}" if payment.memo else ""),
    }
    payload["PrivateNote"] = payload["PrivateNote"][:PRIVATE_NOTE_MAX]
    if payment.reference:
        payload["PaymentRefNum"] = payment.reference[:PAYMENT_REF_NUM_MAX]
    if deposit_account_ref:
        payload["DepositToAccountRef"] = deposit_account_ref
    if payment_method_ref:
        payload["PaymentMethodRef"] = payment_method_ref
    return payload


def invoice_ids_needed(payments: Iterable[Payment]) -> set[int]:
    return {invoice.pk for payment in payments for invoice, _ in payment_net_applications(payment)}
