import pytest

from billing.models import Invoice, InvoiceLine
from tests.factories import CustomerFactory, JobFactory, issued_invoice, pay

pytestmark = pytest.mark.django_db


def invoice_body(customer, **extra):
    return {
        "customer": customer.pk,
        "number": "INV-1042",
        "sales_tax": "8.00",
        "lines": [
            {"service_name": "Water heater", "unit_price": "650.00"},
            {"service_name": "Labor", "quantity": "2.5", "unit_price": "95.00", "description": "Install"},
        ],
        **extra,
    }


def test_create_a_draft_invoice_with_lines(api):
    customer = CustomerFactory()
    job = JobFactory(customer=customer, number="JOB-7")
    response = api.post("invoices/", invoice_body(customer, job="JOB-7"))
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "draft" and body["job"] == job.number and body["number"] == "INV-1042"
    assert [line["amount"] for line in body["lines"]] == ["650.00", "237.50"]
    assert body["total"] == "895.50" and body["open_balance"] == "895.50" and body["amount_paid"] == "0.00"


def test_issue_then_void_an_invoice(api):
    api.post("invoices/", invoice_body(CustomerFactory()))
    issued = api.post("invoices/INV-1042/issue/", {"issued_on": "2026-11-01", "due_on": "2026-12-01"})
    assert issued.status_code == 200
    assert issued.json()["status"] == "open" and issued.json()["issued_on"] == "2026-11-01"

    voided = api.post("invoices/INV-1042/void/")
    assert voided.status_code == 200
    assert voided.json()["status"] == "void" and voided.json()["voided_at"]


def test_issuing_twice_is_a_conflict(api):
    api.post("invoices/", invoice_body(CustomerFactory()))
    api.post("invoices/INV-1042/issue/")
    response = api.post("invoices/INV-1042/issue/")
    assert response.status_code == 409
    assert response.json()["code"] == "invoice_not_draft"


def test_an_invoice_without_lines_cannot_be_issued(api):
    api.post("invoices/", {"customer": CustomerFactory().pk, "number": "INV-1"})
    response = api.post("invoices/INV-1/issue/")
    assert response.status_code == 400 and response.json()["code"] == "invoice_empty"
    assert Invoice.objects.get().status == Invoice.Status.DRAFT


def test_a_paid_invoice_cannot_be_voided(api):
    invoice = issued_invoice(amount="100.00")
    pay(invoice, "40.00")
    response = api.post(f"invoices/{invoice.number}/void/")
    assert response.status_code == 400 and response.json()["code"] == "invoice_has_payments"


def test_another_customers_job_is_refused_and_nothing_is_written(api):
    JobFactory(number="JOB-9")
    response = api.post("invoices/", invoice_body(CustomerFactory(), job="JOB-9"))
    assert response.status_code == 400 and response.json()["code"] == "wrong_customer"
    assert not Invoice.objects.exists() and not InvoiceLine.objects.exists()


@pytest.mark.parametrize(
    ("line", "field", "code"),
    [
        ({"service_name": "Labor", "unit_price": 95.5}, "unit_price", "float_not_allowed"),
        ({"service_name": "Labor", "unit_price": "95.505"}, "unit_price", "too_many_decimal_places"),
        ({"service_name": "Labor", "unit_price": "-5.00"}, "unit_price", "not_positive"),
        ({"service_name": "Labor", "unit_price": "5", "quantity": "0"}, "quantity", "not_positive"),
    ],
)
def test_bad_line_amounts_are_refused_with_a_field_error(api, line, field, code):
    response = api.post("invoices/", {"customer": CustomerFactory().pk, "number": "INV-1", "lines": [line]})
    assert response.status_code == 400
    assert response.json()["details"]["lines"][0][field][0]["code"] == code
    assert response.json()["message"].startswith(f"lines.0.{field}")
    assert not Invoice.objects.exists()


def test_a_wrong_currency_is_refused(api):
    response = api.post("invoices/", invoice_body(CustomerFactory(), currency="EUR"))
    assert response.status_code == 400
    assert response.json()["details"]["currency"][0]["code"] == "currency_mismatch"


def test_read_and_list_invoices(api):
    invoice = issued_invoice(amount="100.00", number="INV-7")
    pay(invoice, "30.00")
    issued_invoice(amount="50.00")
    body = api.get("invoices/INV-7/").json()
    assert body["amount_paid"] == "30.00" and body["open_balance"] == "70.00"
    assert api.get("invoices/INV-404/").status_code == 404
    listed = api.get("invoices/", {"customer": invoice.customer_id, "status": "open"}).json()["results"]
    assert [i["number"] for i in listed] == ["INV-7"]
    assert api.get("invoices/", {"status": "nonsense"}).status_code == 400
