"""The query endpoint through python-quickbooks: operators, escapes, nested fields, ordering, paging, count."""

from decimal import Decimal

import pytest
from quickbooks.exceptions import ValidationException
from quickbooks.objects.customer import Customer
from quickbooks.objects.invoice import Invoice

from quickbooks_export.sandbox import ManualClock
from quickbooks_export.sandbox.store import qbo_time

from .clients import connect, make_customer, make_invoice, make_item


@pytest.fixture
def customers(qbo):
    names = ["O'Brien Plumbing", "Acme HVAC", "Zed Electric", "acme roofing", "Bolt Locksmiths"]
    created = {name: make_customer(qbo.qb, name, email=f"{i}@example.com") for i, name in enumerate(names)}
    return qbo, created


def _names(rows) -> list[str]:
    return [row.DisplayName for row in rows]


def test_equality_with_an_escaped_apostrophe(customers):
    qbo, _ = customers

    found = Customer.filter(DisplayName="O'Brien Plumbing", qb=qbo.qb)  # sends DisplayName = 'O\\'Brien Plumbing'

    assert _names(found) == ["O'Brien Plumbing"]


def test_primary_email_address_compares_the_address(customers):
    qbo, _ = customers

    found = Customer.where("PrimaryEmailAddr = '2@example.com'", qb=qbo.qb)

    assert _names(found) == ["Zed Electric"]


def test_in_operator_on_ids(customers):
    qbo, created = customers
    wanted = [created["Zed Electric"].Id, created["Acme HVAC"].Id]

    found = Customer.choose(wanted, field="Id", qb=qbo.qb)

    assert _names(found) == ["Acme HVAC", "Zed Electric"]


def test_ids_found_by_id_answer_what_a_scan_would_with_every_condition_applied(customers):
    qbo, created = customers
    zed, acme = created["Zed Electric"].Id, created["Acme HVAC"].Id

    found = Customer.where(f"Id IN ('0{zed}', '{acme}', '{acme}', '99999') AND DisplayName LIKE 'acme%'", qb=qbo.qb)
    one = Customer.where(f"Id = '{zed}'", qb=qbo.qb)

    assert _names(found) == ["Acme HVAC"] and _names(one) == ["Zed Electric"]


def test_like_operator_ignores_case(customers):
    qbo, _ = customers

    found = Customer.where("DisplayName LIKE 'acme%'", qb=qbo.qb)

    assert _names(found) == ["Acme HVAC", "acme roofing"]


def test_like_in_the_middle_and_and_conditions(customers):
    qbo, _ = customers

    found = Customer.where("DisplayName LIKE '%o%' AND Active = true", qb=qbo.qb)

    assert _names(found) == ["O'Brien Plumbing", "acme roofing", "Bolt Locksmiths"]


def test_comparison_operators_on_amounts(qbo):
    customer, item = make_customer(qbo.qb, "Amounts Co"), make_item(qbo.qb)
    for amount in ("50", "100", "150.50"):
        make_invoice(qbo.qb, customer, item, amount)

    above = Invoice.where("TotalAmt > '100'", qb=qbo.qb)
    at_most = Invoice.where("TotalAmt <= 100", qb=qbo.qb)

    assert [invoice.TotalAmt for invoice in above] == [Decimal("150.5")]
    assert [invoice.TotalAmt for invoice in at_most] == [Decimal("50"), Decimal("100")]


def test_reference_fields_compare_their_value(qbo):
    item = make_item(qbo.qb)
    first, second = make_customer(qbo.qb, "First Co"), make_customer(qbo.qb, "Second Co")
    make_invoice(qbo.qb, first, item, "10")
    make_invoice(qbo.qb, second, item, "20")

    found = Invoice.where(f"CustomerRef = '{second.Id}'", qb=qbo.qb)

    assert [invoice.TotalAmt for invoice in found] == [Decimal("20")]


def test_nested_metadata_last_updated_time(qbo_sandbox_factory):
    clock = ManualClock()
    qbo = connect(qbo_sandbox_factory(clock=clock))
    make_customer(qbo.qb, "Old Co")
    clock.advance(1800)
    cutoff = qbo_time(clock() - 60)
    make_customer(qbo.qb, "New Co")

    found = Customer.where(f"MetaData.LastUpdatedTime > '{cutoff}'", qb=qbo.qb)

    assert _names(found) == ["New Co"]


def test_order_by_descending_with_paging(customers):
    qbo, _ = customers

    page = Customer.where("", order_by="DisplayName DESC", start_position=2, max_results=2, qb=qbo.qb)

    assert _names(page) == ["O'Brien Plumbing", "Bolt Locksmiths"]


def test_all_with_order_by_spelled_in_two_words(customers):
    qbo, _ = customers

    found = Customer.all(order_by="DisplayName", qb=qbo.qb)  # python-quickbooks sends "ORDER BY"

    assert _names(found) == ["Acme HVAC", "acme roofing", "Bolt Locksmiths", "O'Brien Plumbing", "Zed Electric"]


def test_count(customers):
    qbo, _ = customers

    assert Customer.count(qb=qbo.qb) == 5
    assert Customer.count(where_clause="DisplayName LIKE 'acme%'", qb=qbo.qb) == 2


def test_answer_shape_has_start_position_and_max_results(customers):
    qbo, _ = customers

    answer = qbo.qb.query("SELECT * FROM Customer STARTPOSITION 3 MAXRESULTS 10")

    response = answer["QueryResponse"]
    assert (response["startPosition"], response["maxResults"], len(response["Customer"])) == (3, 3, 3)
    assert answer["time"]


def test_empty_result_is_an_empty_query_response(customers):
    qbo, _ = customers

    answer = qbo.qb.query("SELECT * FROM Customer WHERE DisplayName = 'Nobody'")

    assert answer["QueryResponse"] == {}


def test_query_by_get_with_query_parameter_and_lowercase_keywords(customers):
    qbo, _ = customers
    url = f"{qbo.server.api_url}/company/{qbo.realm_id}/query"

    answer = qbo.qb.get(url, params={"query": "select * from customer where displayname = 'zed electric'"})

    assert [row["DisplayName"] for row in answer["QueryResponse"]["Customer"]] == ["Zed Electric"]


def test_selected_fields_only(customers):
    qbo, _ = customers

    answer = qbo.qb.query("SELECT DisplayName FROM Customer WHERE DisplayName = 'Zed Electric'")

    row = answer["QueryResponse"]["Customer"][0]
    assert row["DisplayName"] == "Zed Electric"
    assert "PrimaryEmailAddr" not in row


@pytest.mark.parametrize(
    "text",
    [
        "SELECT FROM Customer",
        "SELECT * FROM Customer WHERE DisplayName = 'a' OR DisplayName = 'b'",
        "SELECT * FROM Customer WHERE",
        "SELECT * FROM Customer WHERE DisplayName = 'unterminated",
        "SELECT * FROM Customer MAXRESULTS ten",
        "DELETE FROM Customer",
    ],
)
def test_malformed_query_is_a_query_parser_error(qbo, text):
    with pytest.raises(ValidationException) as error:
        qbo.qb.query(text)

    assert error.value.error_code == 4000
    assert error.value.detail.startswith("QueryParserError")


def test_maxresults_over_1000_is_refused(qbo):
    with pytest.raises(ValidationException) as error:
        qbo.qb.query("SELECT * FROM Customer MAXRESULTS 1001")

    assert error.value.error_code == 4001


def test_unknown_entity_is_refused(qbo):
    with pytest.raises(ValidationException) as error:
        qbo.qb.query("SELECT * FROM Spaceship")

    assert error.value.error_code == 4001


STORED = [
    "1001", "0042", "42", "Acme HVAC", "acme hvac", "a@example.com", "A@Example.COM", "2026-01-05",
    "2026-01-05T10:00:00-08:00", "2026-01-05T18:00:00+00:00", "10.50", "-5", "", "Straße", "STRASSE",
]  # fmt: skip
LITERALS = [
    "1001", "42", "042", "ACME HVAC", "a@example.com", "2026-01-05", "2026-01-05T10:00:00-08:00",
    "2026-01-05T13:00:00-05:00", "10.50", "strasse", "", "-5", Decimal("42"), Decimal("10.50"), Decimal("-5"),
]  # fmt: skip


@pytest.mark.parametrize("stored", STORED)
def test_equality_and_in_with_prepared_literals_answer_as_comparing_each_literal(stored):
    """The set look-up used for `=` and `IN` (one per row instead of one comparison per literal) matches exactly
    the rows the general comparison does: digits as integers, dates as moments, other text ignoring case."""
    from quickbooks_export.sandbox import query

    for literal in LITERALS:
        single = query._EqualityMatcher.for_condition(query.Condition("DocNumber", "=", (literal,)))
        assert single.matches(stored) == query._compare(stored, "=", literal), (stored, literal)
    for size in (2, 5, len(LITERALS)):
        for start in range(len(LITERALS) - size + 1):
            literals = tuple(LITERALS[start : start + size])
            matcher = query._EqualityMatcher.for_condition(query.Condition("DocNumber", "IN", literals))
            expected = any(query._compare(stored, "=", literal) for literal in literals)
            assert matcher.matches(stored) == expected, (stored, literals)


def test_in_on_a_text_field_matches_case_insensitively_and_digits_as_numbers(qbo):
    item = make_item(qbo.qb)
    first = make_customer(qbo.qb, "First Co")
    make_invoice(qbo.qb, first, item, "10", doc_number="0042")
    make_invoice(qbo.qb, first, item, "20", doc_number="INV-7")
    make_invoice(qbo.qb, first, item, "30", doc_number="other")

    found = Invoice.where("DocNumber IN ('42', 'inv-7', 'nothing')", qb=qbo.qb)
    customers = Customer.where("DisplayName IN ('FIRST co', true)", qb=qbo.qb)  # a true literal: compared one by one

    assert sorted(row.DocNumber for row in found) == ["0042", "INV-7"]
    assert [row.DisplayName for row in customers] == ["First Co"]
