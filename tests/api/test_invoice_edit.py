"""PATCH /api/v1/invoices/{number}/: change an invoice's lines, tax or dates — the same service as the page."""

from decimal import Decimal

import pytest

from tests.factories import issued_invoice, pay

pytestmark = pytest.mark.django_db
QUERIES = 22  # whatever the number of lines: the lines are written in bulk


def test_patch_changes_a_line_adds_one_and_answers_the_invoice(api, django_assert_max_num_queries):
    invoice = issued_invoice(amount="100.00", number="INV-7001")
    pay(invoice, "100.00")
    [line] = invoice.lines.all()
    body = {
        "lines": [
            {"id": line.pk, "service_name": "Labor", "quantity": "2", "unit_price": "60.00"},
            {"service_name": "Permit", "unit_price": "15.00", "taxable": False},
        ],
        "due_on": "2026-12-20",
    }

    with django_assert_max_num_queries(QUERIES):
        response = api.patch("invoices/INV-7001/", body)

    assert response.status_code == 200, response.json()
    answer = response.json()
    assert [(row["service_name"], row["amount"], row["taxable"]) for row in answer["lines"]] == [
        ("Labor", "120.00", True),
        ("Permit", "15.00", False),
    ]
    assert answer["lines"][0]["id"] == line.pk
    assert (answer["total"], answer["open_balance"], answer["status"]) == ("135.00", "35.00", "open")
    assert answer["due_on"] == "2026-12-20" and answer["changed_at"]


def test_patch_below_the_payments_is_refused_with_the_reason_and_changes_nothing(api):
    invoice = issued_invoice(amount="100.00", number="INV-7002")
    pay(invoice, "100.00")
    [line] = invoice.lines.all()

    response = api.patch(
        "invoices/INV-7002/", {"lines": [{"id": line.pk, "service_name": "Labor", "unit_price": "50.00"}]}
    )

    assert response.status_code == 400
    assert response.json()["code"] == "below_paid"
    assert "less than the $100.00 paid on it" in response.json()["message"]
    assert invoice.lines.get().amount == Decimal("100.00")


def test_patch_refuses_a_float_amount_and_a_read_only_client(api, read_only_api):
    issued_invoice(amount="100.00", number="INV-7003")
    response = api.patch("invoices/INV-7003/", {"sales_tax": 8.5})
    assert response.status_code == 400

    assert read_only_api.patch("invoices/INV-7003/", {"due_on": "2026-12-20"}).status_code == 403
    assert api.patch("invoices/NOPE/", {"due_on": "2026-12-20"}).status_code == 404


def test_patch_with_many_lines_reads_and_writes_a_constant_number_of_queries(api, django_assert_max_num_queries):
    invoice = issued_invoice(amount="100.00", number="INV-7004")
    [line] = invoice.lines.all()
    lines = [{"id": line.pk, "service_name": "Labor", "unit_price": "100.00"}]
    lines += [{"service_name": f"Part {n}", "unit_price": "5.00"} for n in range(20)]

    with django_assert_max_num_queries(QUERIES):
        response = api.patch("invoices/INV-7004/", {"lines": lines})

    assert response.status_code == 200 and response.json()["total"] == "200.00"
