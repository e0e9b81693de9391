"""Deposit: payments moved from Undeposited Funds into a bank account, as QuickBooks records a bank deposit.

Only what FieldSync needs to meet: a deposited payment that must not be voided or changed. Rules, with their sources:
- Intuit API reference, Deposit: `DepositToAccountRef` and `Line` are required; a line that deposits a payment is
  `{"Amount", "LinkedTxn": [{"TxnId", "TxnType": "Payment", "TxnLineId": "0"}]}` with no DetailType (QBO.md,
  "Deposits"); other lines (a processor fee) carry a `DepositLineDetail` with an AccountRef. `TotalAmt` is the sum
  of the lines (read-only).
- Intuit API reference, Payment: "If funds for the payment have been deposited, you must delete the associated
  deposit object before voiding the payment object"; QuickBooks answers 6540 "Deposited Transaction cannot be
  changed" (QBO.md, "Other codes"). The sandbox refuses a void, a delete, or a change of amounts or lines of a
  deposited payment with that code.
- *unconfirmed*: where QuickBooks shows the link on the payment. The sandbox lists it in the payment's own
  `LinkedTxn` (`{"TxnId": <deposit>, "TxnType": "Deposit"}`), derived (no new SyncToken), as undo.py and
  refund_recording.py read it; a payment deposited twice, or for another amount than its total, is refused with
  6000 (*unconfirmed* code). A deposit's account must be a Bank account (*unconfirmed*: QuickBooks' own form offers
  bank accounts).
"""

from __future__ import annotations

from decimal import Decimal

from . import faults

ZERO = Decimal("0")
COMPUTED = frozenset({"TotalAmt"})


def deposit_holding(books, payment_id: str) -> str | None:
    """The Id of the Deposit a payment is in, or None."""
    for deposit in books.entities("Deposit").values():
        for line in deposit.get("Line", []):
            for link in line.get("LinkedTxn") or []:
                if link.get("TxnType") == "Payment" and str(link.get("TxnId")) == str(payment_id):
                    return deposit["Id"]
    return None


def payment_links(books, payment_id: str) -> list[dict]:
    """The payment's own LinkedTxn: the deposit that holds it, if any."""
    deposit_id = deposit_holding(books, payment_id)
    return [{"TxnId": deposit_id, "TxnType": "Deposit"}] if deposit_id else []


def refuse_change_of_deposited(books, payment: dict, *, what: str) -> None:
    if deposit_id := deposit_holding(books, payment["Id"]):
        raise faults.deposited_transaction(f"Payment {payment['Id']} is in deposit {deposit_id}; {what}")


def prepare_deposit(books, fields: dict, existing: dict | None, own_id: str | None) -> dict:
    account = books._referenced(
        "Account", fields.get("DepositToAccountRef"), "DepositToAccountRef", "Account", required=True
    )
    if account.get("AccountType") != "Bank":
        raise faults.invalid_property(f"DepositToAccountRef must be a Bank account, not {account.get('AccountType')}")
    fields["DepositToAccountRef"] = {"value": account["Id"], "name": account["Name"]}
    lines = [line for line in fields.get("Line") or [] if isinstance(line, dict)]
    if not lines:
        raise faults.required_param_missing("Line")
    for number, line in enumerate(lines, start=1):
        if not isinstance(line.get("Amount"), Decimal):
            raise faults.required_param_missing("Amount")
        links = [link for link in line.get("LinkedTxn") or [] if isinstance(link, dict)]
        if links:
            for link in links:
                _check_payment_link(books, link, line["Amount"], own_id)
        elif not isinstance(line.get("DepositLineDetail"), dict):
            raise faults.invalid_property("A Deposit line links a payment or carries a DepositLineDetail")
        line["Id"], line["LineNum"] = str(number), number
    fields["Line"] = lines
    books._dates(fields, existing)
    return fields


def _check_payment_link(books, link: dict, amount: Decimal, own_id: str | None) -> None:
    if link.get("TxnType") != "Payment":
        raise faults.invalid_property("The sandbox deposits payments only (LinkedTxn TxnType Payment)")
    payment = books.get("Payment", str(link.get("TxnId")))
    if payment is None:
        raise faults.invalid_reference("Payment", link.get("TxnId"))
    holder = deposit_holding(books, payment["Id"])
    if holder is not None and holder != own_id:
        raise faults.business_validation(f"Payment {payment['Id']} is already in deposit {holder}.")
    if amount != payment["TotalAmt"]:
        raise faults.business_validation(
            f"A deposit line of {amount} cannot deposit payment {payment['Id']} of {payment['TotalAmt']}."
        )
    link["TxnId"] = payment["Id"]


def compute_deposit(entity: dict) -> None:
    entity["TotalAmt"] = sum((line["Amount"] for line in entity["Line"]), ZERO)


def after_deposit_write(books, deposit: dict) -> None:
    """Show the link on each deposited payment (derived, like a customer's Balance: no new SyncToken)."""
    for line in deposit["Line"]:
        for link in line.get("LinkedTxn") or []:
            payment = books.get("Payment", str(link["TxnId"]))
            if payment is not None:
                payment["LinkedTxn"] = payment_links(books, payment["Id"])
