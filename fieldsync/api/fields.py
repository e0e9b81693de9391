"""Serializer fields for money, currency and references by number, refusing with a specific code per problem."""

import re

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from billing.money import (
    MAX_AMOUNT,
    MAX_AMOUNT_INTEGER_DIGITS,
    MAX_QUANTITY,
    MAX_QUANTITY_INTEGER_DIGITS,
    InvalidAmountError,
    check_currency,
    parse_amount,
)
from fieldsync.exceptions import ApplicationError

_DECIMAL = re.compile(r"-?([0-9]+)(\.[0-9]+)?")


def money_schema(*, integer_digits: int = MAX_AMOUNT_INTEGER_DIGITS, example: str = "150.00") -> dict:
    return {
        "type": "string",
        "format": "decimal",
        "pattern": rf"^[0-9]{{1,{integer_digits}}}(\.[0-9]{{1,2}})?$",
        "example": example,
    }


@extend_schema_field(money_schema())
class MoneyField(serializers.Field):
    """An amount as a string such as "150.00"; becomes a two-place Decimal (billing.money.parse_amount).

    Refusals, each with its own code: a JSON number (float_not_allowed / number_not_allowed), not a decimal
    (not_a_number), more than two places (too_many_decimal_places), zero or negative (not_positive),
    more digits than the column holds (too_large).
    """

    def __init__(
        self,
        *,
        allow_zero: bool = False,
        integer_digits: int = MAX_AMOUNT_INTEGER_DIGITS,
        maximum=MAX_AMOUNT,
        **kwargs,
    ):
        self.allow_zero = allow_zero
        self.integer_digits = integer_digits
        self.maximum = maximum
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        name = self.field_name or "amount"
        if isinstance(data, float):
            raise serializers.ValidationError(
                f'{name} must be a string such as "150.00", not a JSON number: floating point is not money.',
                code="float_not_allowed",
            )
        if isinstance(data, int) and not isinstance(data, bool):
            raise serializers.ValidationError(
                f'{name} must be a string such as "150.00", not a JSON number.', code="number_not_allowed"
            )
        if not isinstance(data, str):
            raise serializers.ValidationError(f'{name} must be a string such as "150.00".', code="not_a_number")
        match = _DECIMAL.fullmatch(data)
        if match is None:
            raise serializers.ValidationError(
                f'{name} "{data[:40]}" is not an amount; write it like "150.00".', code="not_a_number"
            )
        if len(match.group(1).lstrip("0")) > self.integer_digits:
            if data.startswith("-"):
                raise serializers.ValidationError(f"{name} must be greater than zero.", code="not_positive")
            raise serializers.ValidationError(
                f"{name} has more than {self.integer_digits} digits before the decimal point.", code="too_large"
            )
        try:
            return parse_amount(data, field=name, allow_zero=self.allow_zero, maximum=self.maximum)
        except InvalidAmountError as exc:
            raise serializers.ValidationError(exc.message, code=exc.extra.get(name, exc.code)) from None

    def to_representation(self, value):
        return f"{value:.2f}"


@extend_schema_field(money_schema(integer_digits=MAX_QUANTITY_INTEGER_DIGITS, example="1.00"))
class QuantityField(MoneyField):
    """A quantity as a string ("1", "2.5"): two places at most, above zero."""

    def __init__(self, **kwargs):
        super().__init__(integer_digits=MAX_QUANTITY_INTEGER_DIGITS, maximum=MAX_QUANTITY, **kwargs)


@extend_schema_field({"type": "string", "pattern": "^[A-Za-z]{3}$", "example": "USD"})
class CurrencyField(serializers.CharField):
    """ISO 4217 code; only the deployment's currency is accepted (code currency_mismatch)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 3)
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        try:
            return check_currency(value)
        except ApplicationError as exc:
            raise serializers.ValidationError(exc.message, code=exc.code) from None


def money_out(**kwargs) -> serializers.DecimalField:
    """Money in a response: a string with two decimals ("150.00"). Inputs are capped at MAX_AMOUNT (12 digits) per
    amount, line and invoice total, so every stored or derived amount fits these 14 digits."""
    return serializers.DecimalField(max_digits=14, decimal_places=2, coerce_to_string=True, read_only=True, **kwargs)
