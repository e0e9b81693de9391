"""Money: Decimal with two places, never float. Parsing refuses anything a person did not mean exactly."""

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django.conf import settings

from fieldsync.exceptions import ApplicationError

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
# The largest amount a money column holds (DecimalField max_digits=12, decimal_places=2): every amount, line and
# invoice total is refused above it at input, so nothing is attempted that the database or a response cannot hold.
MAX_AMOUNT = Decimal("9999999999.99")
MAX_AMOUNT_INTEGER_DIGITS = 10
# InvoiceLine.quantity: max_digits=10, decimal_places=2.
MAX_QUANTITY = Decimal("99999999.99")
MAX_QUANTITY_INTEGER_DIGITS = 8

_SYMBOLS = {"USD": "$", "CAD": "$", "AUD": "$", "NZD": "$", "EUR": "€", "GBP": "£"}


class InvalidAmountError(ApplicationError):
    code = "invalid_amount"


def parse_amount(value, *, field: str = "amount", allow_zero: bool = False, maximum: Decimal = MAX_AMOUNT) -> Decimal:
    """Turn user or API input into a two-place Decimal, refusing floats, extra places, non-positive values and
    values above `maximum` (what the column holds: MAX_AMOUNT for money, MAX_QUANTITY for quantities).

    Floats are refused rather than converted: 0.1 + 0.2 is not money. Strings and Decimals are accepted.
    """
    if isinstance(value, float):
        raise InvalidAmountError(
            f'{field} must be given as a string such as "150.00", not a floating-point number.',
            extra={field: "float_not_allowed"},
        )
    if isinstance(value, bool) or value is None:
        raise InvalidAmountError(f"{field} is required.", extra={field: "required"})
    try:
        amount = Decimal(str(value).strip()) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise InvalidAmountError(f'{field} "{value}" is not an amount.', extra={field: "not_a_number"}) from None
    if not amount.is_finite():
        raise InvalidAmountError(f'{field} "{value}" is not an amount.', extra={field: "not_a_number"})
    if amount != amount.quantize(CENT):
        raise InvalidAmountError(
            f"{field} {value} has more than two decimal places.", extra={field: "too_many_decimal_places"}
        )
    if amount < 0 or (amount == 0 and not allow_zero):
        raise InvalidAmountError(f"{field} must be greater than zero (got {value}).", extra={field: "not_positive"})
    if amount > maximum:
        raise InvalidAmountError(
            f"{field} {value} is more than {maximum:,}, the most FieldSync can hold.", extra={field: "too_large"}
        )
    return amount.quantize(CENT)


# What a person types for an amount: digits, an optional point and up to two more digits, an optional leading minus
# (refused below as "not positive", which says more than "not an amount"). No exponents ("1e3"), no NaN or Infinity,
# no thousands separators: the same grammar as the API's MoneyField (fieldsync/api/fields.py).
_TYPED_AMOUNT = re.compile(r"-?[0-9]{1,10}(\.[0-9]+)?")


def parse_typed_amount(text: str, *, field: str = "amount") -> Decimal:
    """Parse an amount typed into a staff form exactly as the API parses one, with the same messages."""
    text = (text or "").strip()
    if not _TYPED_AMOUNT.fullmatch(text):
        raise InvalidAmountError(
            f'{field} "{text[:40]}" is not an amount; write it like "150.00".', extra={field: "not_a_number"}
        )
    return parse_amount(text, field=field)


def quantize(amount: Decimal) -> Decimal:
    """Round a computed amount (quantity × unit price) to cents, half up, as invoices do."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def currency_symbol(currency: str | None = None) -> str:
    code = currency or settings.FIELDSYNC_CURRENCY
    return _SYMBOLS.get(code, f"{code} ")


def format_money(amount: Decimal | None, currency: str | None = None) -> str:
    """$1,234.50 — the way staff read amounts, negative as -$5.00."""
    amount = ZERO if amount is None else quantize(Decimal(amount))
    sign = "-" if amount < 0 else ""
    return f"{sign}{currency_symbol(currency)}{abs(amount):,.2f}"


def check_currency(currency: str | None) -> str:
    """One currency per deployment: anything else is refused, never converted."""
    expected = settings.FIELDSYNC_CURRENCY
    if currency in (None, ""):
        return expected
    if str(currency).upper() != expected:
        raise ApplicationError(
            f"Currency {currency} is not accepted: this FieldSync company works in {expected}.",
            code="currency_mismatch",
            extra={"currency": f"expected {expected}"},
        )
    return expected
