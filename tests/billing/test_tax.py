"""Sales tax from a rate and per-line taxability: line by line, half up, to the cent, then added up (as QuickBooks
Online computes it); old amount-only invoices stay valid."""

from decimal import Decimal

import pytest

from billing import services
from billing.selectors import invoice_get_with_balances
from fieldsync.exceptions import ApplicationError
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db
D = Decimal
L = services.LineInput


def test_tax_is_each_taxable_line_times_the_rate_rounded_half_up_then_added():
    rate = services.tax_rate_create(name="Chicago, IL", percentage="10.25")
    invoice = services.invoice_create(
        customer=CustomerFactory(),
        number="INV-T1",
        tax_rate=rate,
        lines=[
            L("Water heater", "1450.00"),
            L("Labor", "95.00", quantity="4"),
            L("Permit", "75.00", taxable=False),
        ],
    )
    # 1450 x 10.25% = 148.625 -> 148.63; 380 x 10.25% = 38.95; the permit is not taxed
    assert invoice.sales_tax == D("187.58")
    assert invoice_get_with_balances(invoice_id=invoice.pk).total == D("2092.58")
    assert [line.taxable for line in invoice.lines.all()] == [True, True, False]


def test_line_by_line_differs_from_the_subtotal_as_in_quickbooks():
    """Intuit staff's example: 31 lines of $1.59 at 12% give 31 x 0.19 = $5.89, not 12% of $49.29 = $5.91."""
    rate = services.tax_rate_create(name="HST 12%", percentage="12")
    invoice = services.invoice_create(
        customer=CustomerFactory(), number="INV-31", tax_rate=rate, lines=[L("Part", "1.59") for _ in range(31)]
    )
    assert invoice.sales_tax == D("5.89")


@pytest.mark.parametrize(
    ("amount", "percent", "tax"),
    [("10.00", "0.05", "0.01"), ("1.00", "12.5", "0.13"), ("3.30", "7.5", "0.25"), ("0.10", "4.9", "0.00")],
)
def test_x_xx5_rounds_half_up(amount, percent, tax):
    rate = services.tax_rate_create(name=f"Rate {percent}", percentage=percent)
    invoice = services.invoice_create(
        customer=CustomerFactory(), number=f"INV-{percent}", tax_rate=rate, lines=[L("Work", amount)]
    )
    assert invoice.sales_tax == D(tax)


def test_an_old_invoice_with_an_amount_only_stays_valid():
    invoice = services.invoice_create(
        customer=CustomerFactory(), number="INV-OLD", sales_tax="8.25", lines=[L("Work", "100.00")]
    )
    assert invoice.tax_rate is None and invoice.sales_tax == D("8.25")
    assert invoice_get_with_balances(invoice_id=invoice.pk).total == D("108.25")


def test_a_rate_and_an_amount_together_are_refused_and_nothing_is_created():
    rate = services.tax_rate_create(name="IL", percentage="6.25")
    with pytest.raises(ApplicationError) as excinfo:
        services.invoice_create(customer=CustomerFactory(), number="INV-X", tax_rate=rate, sales_tax="5.00")
    assert excinfo.value.code == "tax_rate_and_amount"
    assert "Give either a tax rate or a sales tax amount" in excinfo.value.message


@pytest.mark.parametrize("percentage", [10.25, "-1", "100.5", "ten", "NaN"])
def test_a_bad_percentage_is_refused(percentage):
    with pytest.raises(ApplicationError) as excinfo:
        services.tax_rate_create(name="Bad", percentage=percentage)
    assert excinfo.value.code == "invalid_tax_rate"


def test_an_inactive_rate_is_refused():
    rate = services.tax_rate_create(name="Old", percentage="5")
    rate.active = False
    rate.save()
    with pytest.raises(ApplicationError) as excinfo:
        services.invoice_create(customer=CustomerFactory(), number="INV-Y", tax_rate=rate)
    assert excinfo.value.code == "tax_rate_inactive"
