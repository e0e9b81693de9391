from decimal import Decimal

import pytest
from django.test import override_settings

from billing.money import InvalidAmountError, check_currency, format_money, parse_amount, quantize
from fieldsync.exceptions import ApplicationError


@pytest.mark.parametrize("value", ["150", "150.5", "150.50", Decimal("150.50"), 150])
def test_parse_amount_accepts_exact_values_and_gives_two_places(value):
    parsed = parse_amount(value)
    assert parsed == Decimal(str(value))
    assert parsed.as_tuple().exponent == -2


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (150.5, "float_not_allowed"),
        ("150.505", "too_many_decimal_places"),
        ("0", "not_positive"),
        ("-5.00", "not_positive"),
        ("abc", "not_a_number"),
        ("NaN", "not_a_number"),
        ("Infinity", "not_a_number"),
        (None, "required"),
        (True, "required"),
    ],
)
def test_parse_amount_refuses_with_a_specific_reason(value, code):
    with pytest.raises(InvalidAmountError) as excinfo:
        parse_amount(value)
    assert excinfo.value.extra == {"amount": code}


def test_parse_amount_allows_zero_only_when_asked():
    assert parse_amount("0", allow_zero=True) == Decimal("0.00")


def test_quantize_rounds_half_up():
    assert quantize(Decimal("2.005")) == Decimal("2.01")
    assert quantize(Decimal("2.0049")) == Decimal("2.00")


def test_format_money_uses_symbol_thousands_and_sign():
    assert format_money(Decimal("1234.5")) == "$1,234.50"
    assert format_money(Decimal("-5")) == "-$5.00"
    assert format_money(Decimal("3"), "GBP") == "£3.00"
    assert format_money(Decimal("3"), "JPY") == "JPY 3.00"


@override_settings(FIELDSYNC_CURRENCY="CAD")
def test_currency_other_than_the_deployments_is_refused():
    assert check_currency(None) == "CAD"
    assert check_currency("cad") == "CAD"
    with pytest.raises(ApplicationError) as excinfo:
        check_currency("USD")
    assert excinfo.value.code == "currency_mismatch"
    assert "works in CAD" in excinfo.value.message
