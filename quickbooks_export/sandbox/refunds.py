"""RefundReceipt: money given back on a sale, as QuickBooks records it (the entity FieldSync's manual-handling items
ask for when money is returned and no longer owed).

Rules, with their sources:
- Intuit API reference, RefundReceipt: `Line` is required (SalesItemLineDetail lines with an ItemRef; QBO adds a
  SubTotalLineDetail line, as on invoices); `DepositToAccountRef` is required ("Account from which payment money is
  refunded"); `TotalAmt` and `Balance` are read-only: TotalAmt is the sum of the lines plus TxnTaxDetail.TotalTax,
  and Intuit's sample objects show `Balance: 0` (a refund receipt is settled the moment it is written).
- Intuit help, "Refund your customer for a paid invoice" / "Record a customer refund": a refund receipt refunds items
  or services directly (bank and income go down); it is not linked to an invoice or a payment, so it changes no
  invoice balance, no payment and the customer's Accounts Receivable balance not at all.
- *unconfirmed*: the refund-from account must be a Bank or Other Current Asset account (as for deposits); CustomerRef
  is optional in Intuit's reference, required here because FieldSync always names the customer.
"""

from __future__ import annotations

from decimal import Decimal

from . import faults

ZERO = Decimal("0")
REFUND_FROM_ACCOUNT_TYPES = ("Bank", "Other Current Asset")
COMPUTED = frozenset({"TotalAmt", "Balance", "HomeTotalAmt"})


def prepare_refund_receipt(books, fields: dict, existing: dict | None, own_id: str | None) -> dict:
    """Validate a RefundReceipt create or update (`books` is the company's accounting.Books)."""
    books._customer_ref(fields)
    account = books._referenced(
        "Account", fields.get("DepositToAccountRef"), "DepositToAccountRef", "Account", required=True
    )
    if account.get("AccountType") not in REFUND_FROM_ACCOUNT_TYPES:
        raise faults.invalid_property(
            f"DepositToAccountRef must be a Bank or Other Current Asset account, not {account.get('AccountType')}"
        )
    fields["DepositToAccountRef"] = {"value": account["Id"], "name": account["Name"]}
    lines = [line for line in fields.get("Line") or [] if isinstance(line, dict)]
    kept = []
    for line in lines:
        if line.get("DetailType") == "SubTotalLineDetail":
            continue  # computed by QuickBooks
        if line.get("DetailType") != "SalesItemLineDetail" or not isinstance(line.get("SalesItemLineDetail"), dict):
            raise faults.invalid_property("A RefundReceipt line must be a SalesItemLineDetail line in the sandbox")
        detail = line["SalesItemLineDetail"]
        item = books._referenced("Item", detail.get("ItemRef"), "ItemRef", "Item", required=True)
        detail["ItemRef"] = {"value": item["Id"], "name": item["Name"]}
        if not isinstance(line.get("Amount"), Decimal):
            raise faults.required_param_missing("Amount")
        kept.append(line)
    if not kept:
        raise faults.required_param_missing("Line")
    for number, line in enumerate(kept, start=1):
        line["Id"], line["LineNum"] = str(number), number
    fields["Line"] = kept
    books._dates(fields, existing)
    tax = fields.get("TxnTaxDetail") if isinstance(fields.get("TxnTaxDetail"), dict) else {}
    tax.setdefault("TotalTax", ZERO)
    fields["TxnTaxDetail"] = tax
    return fields


def compute_refund_receipt(entity: dict) -> None:
    lines = [line for line in entity["Line"] if line.get("DetailType") != "SubTotalLineDetail"]
    subtotal = sum((line["Amount"] for line in lines), ZERO)
    entity["Line"] = [*lines, {"Amount": subtotal, "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}}]
    entity["TotalAmt"] = subtotal + entity["TxnTaxDetail"]["TotalTax"]
    entity["HomeTotalAmt"] = entity["TotalAmt"]
    entity["Balance"] = ZERO
