"""The invoice page's "Change invoice": lines, tax and dates of an issued invoice, through billing.invoice_edit."""

import datetime
from decimal import Decimal

import pytest
from django.urls import reverse

from billing import services
from tests.factories import issued_invoice, pay

from .conftest import make_user

pytestmark = pytest.mark.django_db


def edit_data(invoice, *lines: dict, **overrides) -> dict:
    data = {
        "issued_on": "2026-11-01",
        "due_on": "",
        "tax_rate": "",
        "sales_tax": "",
        "lines-TOTAL_FORMS": str(len(lines)),
        "lines-INITIAL_FORMS": "0",
        "lines-MIN_NUM_FORMS": "1",
        "lines-MAX_NUM_FORMS": "50",
    }
    for i, line in enumerate(lines):
        data.update({f"lines-{i}-{name}": value for name, value in line.items()})
    data.update(overrides)
    return data


def test_the_edit_page_shows_the_lines_in_a_constant_number_of_queries(clerk_client, django_assert_max_num_queries):
    invoice = issued_invoice(amount="100.00")
    [line] = invoice.lines.all()
    services.invoice_edit(
        invoice=invoice,
        lines=[
            services.LineEdit(line_id=line.pk, service_name="Labor", unit_price="100.00"),
            *(services.LineEdit(service_name=f"Part {n}", unit_price="5.00") for n in range(9)),
        ],
    )
    with django_assert_max_num_queries(8):
        response = clerk_client.get(reverse("records:invoice_edit", args=[invoice.pk]))
    assert response.status_code == 200
    assert b'value="100.00"' in response.content and b"Change " + invoice.number.encode() in response.content


def test_a_line_changed_and_one_added_on_an_issued_invoice_are_saved(clerk_client):
    invoice = issued_invoice(amount="100.00")
    pay(invoice, "100.00")
    [line] = invoice.lines.all()
    data = edit_data(
        invoice,
        {"line_id": line.pk, "service_name": "Labor", "quantity": "1", "unit_price": "110", "taxable": "on"},
        {"line_id": "", "service_name": "Permit", "quantity": "1", "unit_price": "25.00"},
        due_on="2026-12-15",
    )

    response = clerk_client.post(reverse("records:invoice_edit", args=[invoice.pk]), data)

    assert response.status_code == 302
    assert response["Location"] == reverse("records:invoice_detail", args=[invoice.pk])
    invoice.refresh_from_db()
    assert list(invoice.lines.values_list("service_name", "amount", "taxable")) == [
        ("Labor", Decimal("110.00"), True),
        ("Permit", Decimal("25.00"), False),
    ]
    assert (invoice.status, invoice.due_on) == ("open", datetime.date(2026, 12, 15))
    page = clerk_client.get(response["Location"]).content.decode()
    assert "changed after issue" in page and "Change invoice" in page


def test_a_change_below_the_payments_is_refused_in_the_form_and_changes_nothing(clerk_client):
    invoice = issued_invoice(amount="100.00")
    pay(invoice, "100.00")
    [line] = invoice.lines.all()
    data = edit_data(invoice, {"line_id": line.pk, "service_name": "Labor", "quantity": "1", "unit_price": "60"})

    response = clerk_client.post(reverse("records:invoice_edit", args=[invoice.pk]), data)

    assert response.status_code == 400
    assert "would total $60.00, less than the $100.00 paid on it; nothing was changed" in response.content.decode()
    assert invoice.lines.get().amount == Decimal("100.00")


def test_removing_a_line_by_ticking_remove(clerk_client):
    invoice = issued_invoice(amount="100.00")
    [line] = invoice.lines.all()
    data = edit_data(
        invoice,
        {"line_id": line.pk, "service_name": "Labor", "quantity": "1", "unit_price": "100", "DELETE": "on"},
        {"line_id": "", "service_name": "Labor", "quantity": "2", "unit_price": "40"},
    )

    assert clerk_client.post(reverse("records:invoice_edit", args=[invoice.pk]), data).status_code == 302

    assert list(invoice.lines.values_list("quantity", "amount")) == [(Decimal("2.00"), Decimal("80.00"))]


def test_without_the_change_permission_the_page_is_403_and_the_button_hidden(client):
    invoice = issued_invoice(amount="100.00")
    client.force_login(make_user("viewer", "view_invoice"))
    url = reverse("records:invoice_edit", args=[invoice.pk])
    [line] = invoice.lines.all()

    assert client.get(url).status_code == 403
    data = edit_data(invoice, {"line_id": line.pk, "service_name": "Labor", "quantity": "1", "unit_price": "999"})
    assert client.post(url, data).status_code == 403
    assert invoice.lines.get().amount == Decimal("100.00")
    assert "Change invoice" not in client.get(reverse("records:invoice_detail", args=[invoice.pk])).content.decode()


def test_a_void_invoice_cannot_be_changed(clerk_client):
    invoice = services.invoice_void(invoice=issued_invoice())
    response = clerk_client.get(reverse("records:invoice_edit", args=[invoice.pk]))
    assert response.status_code == 302
    assert "Change invoice" not in clerk_client.get(response["Location"]).content.decode()
