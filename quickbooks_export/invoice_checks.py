"""Whether QuickBooks' copy of an invoice can take the payments FieldSync is about to post. Pure: no I/O.

The rule the export engine keeps (docs/quickbooks_books_match.md): a payment goes to QuickBooks only when every
invoice it applies to is known — from the create answer or one read made just before — to have QuickBooks' TotalAmt
equal to ours and a Balance at least what is about to be posted against it. Anything else holds all of the invoice's
payments, so a retry can never leave QuickBooks with part of an invoice's payments against a different total.
"""

from dataclasses import dataclass
from decimal import Decimal

from billing.models import Invoice
from billing.money import format_money

from .models import InvoiceExportHold

Reason = InvoiceExportHold.Reason


@dataclass(frozen=True)
class InvoiceProblem:
    reason: str
    message: str
    qbo_total: Decimal | None = None
    qbo_tax: Decimal | None = None
    qbo_balance: Decimal | None = None
    tax_detail: dict | None = None

    @property
    def code(self) -> str:
        return f"invoice_{self.reason}"


def _decimal(value) -> Decimal | None:
    if value in (None, ""):
        return None
    return Decimal(str(value)).quantize(Decimal("0.01"))


def qbo_figures(row: dict) -> tuple[Decimal, Decimal | None, Decimal]:
    """(TotalAmt, TxnTaxDetail.TotalTax or None, Balance) of a QuickBooks invoice."""
    total = _decimal(row.get("TotalAmt")) or Decimal("0.00")
    tax = _decimal((row.get("TxnTaxDetail") or {}).get("TotalTax"))
    balance = _decimal(row.get("Balance"))
    return total, tax, total if balance is None else balance


def invoice_problem(invoice: Invoice, row: dict | None, *, amount_to_post: Decimal) -> InvoiceProblem | None:
    """None when QuickBooks' invoice `row` can take `amount_to_post` of our payments; else what is wrong, in words.

    `invoice` carries the annotated `total` (billing.selectors.invoice_with_balances). `row` None means QuickBooks
    answered that it has no such invoice (deleted, or voided and gone from queries)."""
    money = lambda amount: format_money(amount, invoice.currency)  # noqa: E731
    if row is None:
        return InvoiceProblem(
            Reason.NOT_FOUND,
            f"QuickBooks no longer has the invoice FieldSync linked {invoice.number} to. Unlink it on the payment "
            "page (the next export creates or links it afresh), or link it to the right QuickBooks invoice.",
        )
    total, tax, balance = qbo_figures(row)
    detail = row.get("TxnTaxDetail") or None
    qbo_id = row.get("Id", "")
    if total != invoice.total:
        tax_words = f" (of which {money(tax)} tax)" if tax is not None else ""
        ours_tax = f" (of which {money(invoice.sales_tax)} tax)" if invoice.sales_tax else ""
        return InvoiceProblem(
            Reason.TOTAL_DIFFERS,
            f"QuickBooks computed a different total for {invoice.number}: QuickBooks has {money(total)}{tax_words}, "
            f"FieldSync has {money(invoice.total)}{ours_tax} (QuickBooks invoice {qbo_id}). No payment of it was "
            "posted. Update the QuickBooks invoice to match FieldSync, fix it in QuickBooks and check again, "
            "or void it in QuickBooks and then unlink it (the next export creates it afresh).",
            total,
            tax,
            balance,
            detail,
        )
    if balance < amount_to_post:
        return InvoiceProblem(
            Reason.BALANCE_TOO_LOW,
            f"QuickBooks invoice {qbo_id} ({invoice.number}) has {money(balance)} open, but FieldSync would post "
            f"{money(amount_to_post)} against it: payments were recorded there already. No payment of it was "
            "posted. Remove the extra payments in QuickBooks and check again, or mark these payments as exported "
            "by hand.",
            total,
            tax,
            balance,
            detail,
        )
    return None
