"""Invoice tax and totals as QuickBooks computes them, per kind of company (docs/quickbooks_sales_tax.md)."""

import json
from decimal import Decimal

import pytest
from quickbooks.exceptions import QuickbooksException
from quickbooks.objects.base import Address
from quickbooks.objects.detailline import SalesItemLine, SalesItemLineDetail
from quickbooks.objects.invoice import Invoice
from quickbooks.objects.tax import TxnTaxDetail

from .clients import connect_company, make_customer, make_item, make_payment, ref

D = Decimal


def _line(item_id: str, amount: str, *, code: str | None = None, qty: str | None = None, price: str | None = None):
    line = SalesItemLine()
    line.Amount = D(amount)
    line.SalesItemLineDetail = SalesItemLineDetail()
    line.SalesItemLineDetail.ItemRef = ref(item_id)
    line.SalesItemLineDetail.Qty = D(qty) if qty else None
    line.SalesItemLineDetail.UnitPrice = D(price) if price else None
    if code:
        line.SalesItemLineDetail.TaxCodeRef = ref(code)
    return line


def _invoice(qbo, customer, lines, *, txn_code=None, total_tax=None, ship=None, mode=None) -> Invoice:
    invoice = Invoice()
    invoice.CustomerRef = ref(customer.Id)
    invoice.Line = lines
    if txn_code or total_tax is not None:
        invoice.TxnTaxDetail = TxnTaxDetail()
        invoice.TxnTaxDetail.TxnTaxCodeRef = ref(txn_code) if txn_code else None
        invoice.TxnTaxDetail.TotalTax = D(total_tax) if total_tax is not None else None
    if ship:
        invoice.ShipAddr = Address()
        invoice.ShipAddr.CountrySubDivisionCode, invoice.ShipAddr.PostalCode = ship
    if mode:
        invoice.GlobalTaxCalculation = mode
    return invoice.save(qb=qbo.qb)


@pytest.fixture
def company(qbo_sandbox):
    """connect(profile) -> (connection, customer, item)."""

    def make(profile: str, **options):
        qbo = connect_company(qbo_sandbox, profile, **options)
        return qbo, make_customer(qbo.qb, "Tax Co"), make_item(qbo.qb, "Labor")

    return make


# --- US with automated sales tax ---


def test_ast_taxes_the_taxable_lines_at_the_destinations_rates(company):
    qbo, customer, item = company("us-ast")

    invoice = _invoice(
        qbo,
        customer,
        [_line(item.Id, "1450.00", code="TAX"), _line(item.Id, "75.00", code="NON")],
        ship=("IL", "60614"),
    )

    # 1450.00 x (6.25 + 1.75 + 1.25 + 1.00)% = 90.625 + 25.375 + 18.125 + 14.50, each rounded half up
    assert [line.Amount for line in invoice.TxnTaxDetail.TaxLine] == [D("90.63"), D("25.38"), D("18.13"), D("14.50")]
    assert invoice.TxnTaxDetail.TotalTax == D("148.64")
    assert invoice.TxnTaxDetail.TxnTaxCodeRef.value == "1"  # Chicago, IL
    assert invoice.TotalAmt == D("1673.64") and invoice.Balance == D("1673.64")
    assert [line.SalesItemLineDetail.TaxCodeRef.value for line in invoice.Line[:2]] == ["TAX", "NON"]


def test_ast_uses_the_state_rate_outside_chicago_and_none_outside_illinois(company):
    qbo, customer, item = company("us-ast")

    springfield = _invoice(qbo, customer, [_line(item.Id, "100.00", code="TAX")], ship=("IL", "62701"))
    austin = _invoice(qbo, customer, [_line(item.Id, "100.00", code="TAX")], ship=("TX", "73301"))

    assert (springfield.TxnTaxDetail.TotalTax, springfield.TxnTaxDetail.TxnTaxCodeRef.value) == (D("6.25"), "2")
    assert austin.TxnTaxDetail.TotalTax == D("0") and austin.TotalAmt == D("100.00")


def test_ast_without_a_ship_to_address_taxes_at_the_company_address(company):
    qbo, customer, item = company("us-ast")

    invoice = _invoice(qbo, customer, [_line(item.Id, "200.00", code="TAX")])

    assert invoice.TxnTaxDetail.TotalTax == D("20.50")  # Chicago 10.25%: the company is at 60602


def test_ast_ignores_a_bare_total_tax(company):
    qbo, customer, item = company("us-ast")

    invoice = _invoice(qbo, customer, [_line(item.Id, "1905.00", code="TAX")], total_tax="119.63", ship=("IL", "60601"))

    assert invoice.TxnTaxDetail.TotalTax == D("195.26")  # 1905.00 x 10.25%, not the 119.63 sent
    assert invoice.TotalAmt == D("2100.26")


def test_ast_honours_total_tax_sent_with_a_tax_code_and_shares_it_across_the_rates(company):
    qbo, customer, item = company("us-ast")

    invoice = _invoice(
        qbo, customer, [_line(item.Id, "1905.00", code="TAX")], txn_code="1", total_tax="119.63", ship=("IL", "60601")
    )

    assert invoice.TxnTaxDetail.TotalTax == D("119.63")
    assert invoice.TotalAmt == D("2024.63") and invoice.Balance == D("2024.63")
    assert sum(line.Amount for line in invoice.TxnTaxDetail.TaxLine) == D("119.63")
    assert invoice.TxnTaxDetail.TaxLine[0].Amount == D("72.95")  # 119.63 x 6.25 / 10.25 = 72.945


def test_lines_without_a_tax_code_follow_the_items_taxable_flag(company):
    qbo, customer, item = company("us-ast")
    taxable = make_item(qbo.qb, "Parts")
    taxable.Taxable = True
    taxable = taxable.save(qb=qbo.qb)

    invoice = _invoice(qbo, customer, [_line(item.Id, "100.00"), _line(taxable.Id, "100.00")], ship=("IL", "62701"))

    assert [line.SalesItemLineDetail.TaxCodeRef.value for line in invoice.Line[:2]] == ["NON", "TAX"]
    assert invoice.TxnTaxDetail.TotalTax == D("6.25")


def test_us_lines_take_only_tax_or_non_6100(company):
    qbo, customer, item = company("us-ast")

    with pytest.raises(QuickbooksException) as error:
        _invoice(qbo, customer, [_line(item.Id, "100.00", code="1")])

    assert error.value.error_code == 6100
    assert "Supplied value:1" in error.value.detail


# --- US with manual sales tax ---


def test_manual_tax_uses_the_rate_or_group_named_on_the_invoice(company):
    qbo, customer, item = company("us-manual-tax")

    invoice = _invoice(
        qbo, customer, [_line(item.Id, "100.00", code="TAX"), _line(item.Id, "50.00", code="NON")], txn_code="2"
    )

    # Tucson = AZ State tax 7.1% + Tucson City 2% of the taxable 100.00
    assert [(t.TaxLineDetail.TaxPercent, t.Amount) for t in invoice.TxnTaxDetail.TaxLine] == [
        (D("7.1"), D("7.10")),
        (D("2"), D("2.00")),
    ]
    assert invoice.TotalAmt == D("159.10")


def test_manual_tax_without_a_tax_code_charges_none_even_with_total_tax(company):
    qbo, customer, item = company("us-manual-tax")

    invoice = _invoice(qbo, customer, [_line(item.Id, "100.00", code="TAX")], total_tax="8.00")

    assert invoice.TxnTaxDetail.TotalTax == D("0") and invoice.TotalAmt == D("100.00")


def test_manual_tax_honours_total_tax_sent_with_its_code(company):
    qbo, customer, item = company("us-manual-tax")

    invoice = _invoice(qbo, customer, [_line(item.Id, "100.00", code="TAX")], txn_code="1", total_tax="7.99")

    assert invoice.TxnTaxDetail.TotalTax == D("7.99") and invoice.TotalAmt == D("107.99")


def test_an_unknown_transaction_tax_code_is_2500(company):
    qbo, customer, item = company("us-manual-tax")

    with pytest.raises(QuickbooksException) as error:
        _invoice(qbo, customer, [_line(item.Id, "100.00", code="TAX")], txn_code="99")

    assert error.value.error_code == 2500


# --- Canada, UK, Australia ---


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        ("ca", "Make sure all your transactions have a GST/HST rate before you save."),
        ("uk", "Make sure all your transactions have a VAT rate before you save."),
        ("au", "Make sure all your transactions have a GST rate before you save."),
    ],
)
def test_non_us_lines_need_a_tax_code_6000(company, profile, message):
    qbo, customer, item = company(profile)

    with pytest.raises(QuickbooksException) as error:
        _invoice(qbo, customer, [_line(item.Id, "100.00")])

    assert error.value.error_code == 6000
    assert message in error.value.detail


def test_canadian_tax_is_computed_per_code_and_listed_per_rate(company):
    qbo, customer, item = company("ca")

    invoice = _invoice(
        qbo,
        customer,
        [_line(item.Id, "100.00", code="1"), _line(item.Id, "33.33", code="1"), _line(item.Id, "40.00", code="2")],
        total_tax="1.00",  # never used outside the US
    )

    by_rate = {
        t.TaxLineDetail.TaxRateRef.value: (t.TaxLineDetail.NetAmountTaxable, t.Amount)
        for t in invoice.TxnTaxDetail.TaxLine
    }
    assert by_rate == {"1": (D("133.33"), D("17.33")), "2": (D("40.00"), D("2.00"))}
    assert invoice.TxnTaxDetail.TotalTax == D("19.33")
    assert invoice.TotalAmt == D("192.66")
    assert invoice.GlobalTaxCalculation == "TaxExcluded"


def test_uk_tax_inclusive_shows_amounts_with_vat_but_line_amounts_stay_net(company):
    qbo, customer, item = company("uk")

    invoice = _invoice(
        qbo, customer, [_line(item.Id, "100.00", code="1"), _line(item.Id, "10.00", code="3")], mode="TaxInclusive"
    )

    assert invoice.GlobalTaxCalculation == "TaxInclusive"
    assert invoice.TxnTaxDetail.TotalTax == D("20.00") and invoice.TotalAmt == D("130.00")
    assert [line.SalesItemLineDetail.TaxInclusiveAmt for line in invoice.Line[:2]] == [D("120.00"), D("10.00")]


def test_australian_gst_free_lines_carry_no_tax(company):
    qbo, customer, item = company("au")

    invoice = _invoice(qbo, customer, [_line(item.Id, "99.99", code="1"), _line(item.Id, "50.00", code="2")])

    assert invoice.TxnTaxDetail.TotalTax == D("10.00")
    assert invoice.TotalAmt == D("159.99")


def test_not_applicable_needs_no_codes_and_charges_no_tax(company):
    qbo, customer, item = company("uk")

    invoice = _invoice(qbo, customer, [_line(item.Id, "80.00")], mode="NotApplicable")

    assert invoice.TotalAmt == D("80.00") and invoice.TxnTaxDetail.TotalTax == D("0")


def test_an_unknown_line_tax_code_is_2500(company):
    qbo, customer, item = company("ca")

    with pytest.raises(QuickbooksException) as error:
        _invoice(qbo, customer, [_line(item.Id, "100.00", code="42")])

    assert error.value.error_code == 2500


# --- Qty x UnitPrice (6070), balances, updates ---


@pytest.mark.parametrize(
    ("qty", "price", "amount"),
    [("3", "33.335", "100.01"), ("1.5", "10.33", "15.50"), ("4", "95.00", "380.00"), ("2", "0.005", "0.01")],
)
def test_amount_equal_to_qty_times_price_rounded_half_up_is_accepted(company, qty, price, amount):
    qbo, customer, item = company("us-ast")

    invoice = _invoice(qbo, customer, [_line(item.Id, amount, code="NON", qty=qty, price=price)])

    assert invoice.Line[0].Amount == D(amount) and invoice.TotalAmt == D(amount)


@pytest.mark.parametrize(("qty", "price", "amount"), [("3", "33.335", "100.00"), ("4", "95.00", "379.99")])
def test_amount_not_equal_to_qty_times_price_is_6070(company, qty, price, amount):
    qbo, customer, item = company("us-ast")

    with pytest.raises(QuickbooksException) as error:
        _invoice(qbo, customer, [_line(item.Id, amount, code="NON", qty=qty, price=price)])

    assert error.value.error_code == 6070
    assert f"Supplied value:{D(amount)}" in error.value.detail
    assert qbo.server.entities(qbo.realm_id, "Invoice") == []


def test_balance_is_total_with_tax_minus_payments_and_over_application_is_6000(company):
    qbo, customer, item = company("us-ast")
    invoice = _invoice(qbo, customer, [_line(item.Id, "1905.00", code="TAX")], ship=("IL", "62701"))  # 6.25%

    make_payment(qbo.qb, customer, "500.00", {invoice.Id: "500.00"})
    make_payment(qbo.qb, customer, "1000.00", {invoice.Id: "1000.00"})
    with pytest.raises(QuickbooksException) as error:
        make_payment(qbo.qb, customer, "524.63", {invoice.Id: "524.63"})

    assert error.value.error_code == 6000
    assert Invoice.get(invoice.Id, qb=qbo.qb).Balance == D("2024.06") - D("1500.00")


def test_sparse_update_recomputes_totals_and_a_stale_sync_token_is_5010(company):
    qbo, customer, item = company("us-ast")
    invoice = _invoice(qbo, customer, [_line(item.Id, "100.00", code="TAX")], ship=("IL", "62701"))
    body = {
        "Id": invoice.Id,
        "SyncToken": invoice.SyncToken,
        "sparse": True,
        "Line": [
            {
                "DetailType": "SalesItemLineDetail",
                "Amount": "300.00",
                "SalesItemLineDetail": {"ItemRef": {"value": item.Id}, "TaxCodeRef": {"value": "TAX"}},
            }
        ],
    }
    updated = qbo.qb.update_object("Invoice", json.dumps(body))["Invoice"]
    with pytest.raises(QuickbooksException) as error:
        qbo.qb.update_object("Invoice", json.dumps(body))

    assert (D(str(updated["TotalAmt"])), updated["SyncToken"]) == (D("318.75"), "1")
    assert error.value.error_code == 5010


def test_a_hand_edit_in_quickbooks_recomputes_and_bumps_the_sync_token(company):
    qbo, customer, item = company("uk")
    invoice = _invoice(qbo, customer, [_line(item.Id, "100.00", code="1")])

    edited = qbo.server.edit_entity(
        qbo.realm_id,
        "Invoice",
        invoice.Id,
        {
            "Line": [
                {
                    "DetailType": "SalesItemLineDetail",
                    "Amount": 100,
                    "SalesItemLineDetail": {"ItemRef": {"value": item.Id}, "TaxCodeRef": {"value": "2"}},
                }
            ]
        },
    )
    read = Invoice.get(invoice.Id, qb=qbo.qb)

    assert edited["SyncToken"] == "1"
    assert (read.TotalAmt, read.TxnTaxDetail.TotalTax) == (D("105.00"), D("5.00"))


def test_a_full_update_that_echoes_the_read_tax_keeps_it_as_an_explicit_amount(company):
    # [C]/[D] in docs/quickbooks_sales_tax.md: TxnTaxCodeRef + TotalTax sent is honoured, also when it is only the
    # figure a read returned. A sparse update without TxnTaxDetail recomputes instead.
    qbo, customer, item = company("us-ast")
    invoice = _invoice(qbo, customer, [_line(item.Id, "100.00", code="TAX")], ship=("IL", "62701"))
    read = Invoice.get(invoice.Id, qb=qbo.qb)
    read.Line = [_line(item.Id, "200.00", code="TAX")]

    echoed = read.save(qb=qbo.qb)
    recomputed = qbo.server.edit_entity(
        qbo.realm_id,
        "Invoice",
        invoice.Id,
        {
            "Line": [
                {
                    "DetailType": "SalesItemLineDetail",
                    "Amount": 200,
                    "SalesItemLineDetail": {"ItemRef": {"value": item.Id}, "TaxCodeRef": {"value": "TAX"}},
                }
            ]
        },
    )

    assert (echoed.TxnTaxDetail.TotalTax, echoed.TotalAmt) == (D("6.25"), D("206.25"))
    assert (recomputed["TxnTaxDetail"]["TotalTax"], recomputed["TotalAmt"]) == (12.5, 212.5)


def test_a_tax_code_with_python_quickbooks_default_total_tax_of_zero_is_computed_not_overridden(company):
    qbo, customer, item = company("us-manual-tax")
    invoice = Invoice()
    invoice.CustomerRef = ref(customer.Id)
    invoice.Line = [_line(item.Id, "100.00", code="TAX")]
    invoice.TxnTaxDetail = TxnTaxDetail()  # TotalTax defaults to 0 in python-quickbooks
    invoice.TxnTaxDetail.TxnTaxCodeRef = ref("1")

    saved = invoice.save(qb=qbo.qb)

    assert saved.TxnTaxDetail.TotalTax == D("8.00") and saved.TotalAmt == D("108.00")


def test_tax_is_rounded_line_by_line_then_added_up(company):
    # QuickBooks Community (Intuit staff): tax is computed per line, each rounded, then summed.
    qbo, customer, item = company("ca")

    invoice = _invoice(qbo, customer, [_line(item.Id, "1.59", code="1") for _ in range(31)])

    assert invoice.TxnTaxDetail.TotalTax == D("6.51")  # 31 x 0.21, not 13% of 49.29 = 6.41
    assert invoice.TxnTaxDetail.TaxLine[0].TaxLineDetail.NetAmountTaxable == D("49.29")
    assert invoice.TotalAmt == D("55.80")


def test_us_manual_tax_is_rounded_line_by_line_too(company):
    qbo, customer, item = company("us-manual-tax")

    invoice = _invoice(qbo, customer, [_line(item.Id, "0.10", code="TAX") for _ in range(3)], txn_code="1")

    assert invoice.TxnTaxDetail.TotalTax == D("0.03")  # 3 x round(0.008), not round(8% of 0.30) = 0.02
