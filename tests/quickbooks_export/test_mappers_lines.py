"""Line amounts obey QuickBooks' Amount = Qty × UnitPrice (error 6070), to the cent, x.xx5 cases included."""

from decimal import Decimal

import pytest

from billing.models import InvoiceLine
from quickbooks_export.mappers import line_quantity_and_price

D = Decimal


@pytest.mark.parametrize(
    ("quantity", "unit_price", "amount", "sent"),
    [
        ("3.00", "135.00", "405.00", ("3.00", "135.00", "")),  # exact: sent as it is
        ("1.50", "10.01", "15.02", ("1", "15.02", "1.5 × 10.01 — ")),  # 15.015 billed 15.02 (half up)
        ("0.50", "24.99", "12.50", ("1", "12.50", "0.5 × 24.99 — ")),  # 12.495 billed 12.50
        ("2.50", "0.33", "0.83", ("1", "0.83", "2.5 × 0.33 — ")),  # 0.825 billed 0.83
        ("0.25", "10.00", "2.50", ("0.25", "10.00", "")),
    ],
)
def test_quantity_and_price_keep_the_billed_amount(quantity, unit_price, amount, sent):
    line = InvoiceLine(quantity=D(quantity), unit_price=D(unit_price), amount=D(amount))
    qty, price, prefix = line_quantity_and_price(line)
    assert (qty, price, prefix) == (D(sent[0]), D(sent[1]), sent[2])
    assert qty * price == D(amount)  # what QuickBooks checks
