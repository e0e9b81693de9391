"""API: tax rates and per-line taxability on invoices; the QuickBooks hold on payments (reason, message, actions)."""

import pytest
from django.test import Client

from billing import services as billing_services
from quickbooks_export.models import InvoiceExportHold, QuickBooksMappingAudit
from tests.factories import CustomerFactory, issued_invoice, pay
from tests.quickbooks_export.export.conftest import connect, export

from .conftest import Api, staff_user

pytestmark = pytest.mark.django_db


def test_an_invoice_with_a_tax_rate_and_a_non_taxable_line_computes_its_tax(api):
    rate = billing_services.tax_rate_create(name="Chicago, IL", percentage="10.25")
    body = {
        "customer": CustomerFactory().pk,
        "number": "INV-A1",
        "tax_rate": rate.pk,
        "lines": [
            {"service_name": "Water heater", "unit_price": "1450.00"},
            {"service_name": "Permit", "unit_price": "75.00", "taxable": False},
        ],
    }
    response = api.post("invoices/", body)
    assert response.status_code == 201, response.json()
    data = response.json()
    assert data["sales_tax"] == "148.63"  # 1450 x 10.25% = 148.625 -> 148.63
    assert data["tax_rate"] == {"id": rate.pk, "name": "Chicago, IL", "percentage": "10.2500"}
    assert [line["taxable"] for line in data["lines"]] == [True, False]
    assert data["total"] == "1673.63"


def test_a_tax_rate_and_an_amount_together_are_refused(api):
    rate = billing_services.tax_rate_create(name="IL", percentage="6.25")
    body = {"customer": CustomerFactory().pk, "number": "INV-A2", "tax_rate": rate.pk, "sales_tax": "5.00"}
    response = api.post("invoices/", body)
    assert response.status_code == 400
    assert response.json()["code"] == "tax_rate_and_amount"


def test_an_unknown_tax_rate_is_refused(api):
    response = api.post("invoices/", {"customer": CustomerFactory().pk, "number": "INV-A3", "tax_rate": 999})
    assert response.status_code == 400


@pytest.fixture
def held_payment(qbo_sandbox, settings):
    settings.EXPORT_MAX_RETRY_AFTER_SECONDS = 0.2
    company = connect(qbo_sandbox, settings)  # automated sales tax: computes its own tax
    invoice = issued_invoice(customer=CustomerFactory(), amount="1000.00", sales_tax="24.63", number="INV-A4")
    payment = pay(invoice, "1024.63")
    export(payment)
    return company, payment


def test_a_payment_on_hold_says_why_in_the_api(api, held_payment):
    _, payment = held_payment
    data = api.get(f"payments/{payment.pk}/").json()
    assert data["export_status"] == "on_hold"
    assert data["export_hold_reason"] == "total_differs"
    assert "FieldSync has $1,024.63" in data["export_hold_message"]
    listed = api.get("payments/", {"export_status": "on_hold"}).json()
    assert [p["id"] for p in listed["results"]] == [payment.pk]


def test_update_quickbooks_through_the_api_releases_the_hold(api, held_payment):
    company, payment = held_payment
    response = api.post(f"payments/{payment.pk}/export-hold/", {"action": "update_quickbooks"})
    assert response.status_code == 200, response.json()
    assert not InvoiceExportHold.objects.filter(state="open").exists()
    [qbo_invoice] = company.entities("Invoice")
    assert str(qbo_invoice["TotalAmt"]) == "1024.63"


def test_the_audit_of_an_api_hold_action_names_the_api_client(api, held_payment):
    _, payment = held_payment
    assert api.post(f"payments/{payment.pk}/export-hold/", {"action": "update_quickbooks"}).status_code == 200
    audit = QuickBooksMappingAudit.objects.get(action="update_invoice")
    assert audit.by is None and audit.note.startswith("By API client field-app.")


def test_a_staff_user_with_only_the_export_permission_can_check_again_but_not_update_or_unlink(held_payment):
    _, payment = held_payment
    client = Client()
    client.force_login(staff_user("quickbooks_export.export_payments"))
    staff = Api(client)
    for action in ("update_quickbooks", "unlink"):
        response = staff.post(f"payments/{payment.pk}/export-hold/", {"action": action})
        assert response.status_code == 403
        assert "quickbooks_export.manage_quickbooks_connection" in response.json()["message"]
    assert InvoiceExportHold.objects.get(state="open")
    response = staff.post(f"payments/{payment.pk}/export-hold/", {"action": "check_again"})
    assert response.status_code == 409 and response.json()["code"] == "hold_still_applies"


def test_the_client_names_the_invoice_whose_hold_to_act_on(api, held_payment):
    _, payment = held_payment
    hold = InvoiceExportHold.objects.get(state="open")
    response = api.post(f"payments/{payment.pk}/export-hold/", {"action": "check_again", "invoice_id": 999999})
    assert response.status_code == 400 and response.json()["code"] == "not_on_hold"
    assert "for invoice #999999" in response.json()["message"]
    response = api.post(f"payments/{payment.pk}/export-hold/", {"action": "check_again", "invoice_id": hold.invoice_id})
    assert response.status_code == 409 and response.json()["code"] == "hold_still_applies"


def test_check_again_through_the_api_when_still_different_is_409_with_the_reason(api, held_payment):
    _, payment = held_payment
    response = api.post(f"payments/{payment.pk}/export-hold/", {"action": "check_again"})
    assert response.status_code == 409
    assert response.json()["code"] == "hold_still_applies"
    assert "QuickBooks computed a different total" in response.json()["message"]


def test_an_action_on_a_payment_not_on_hold_is_refused(api):
    payment = pay(issued_invoice(amount="10.00"), "10.00")
    response = api.post(f"payments/{payment.pk}/export-hold/", {"action": "unlink"})
    assert response.status_code == 400 and response.json()["code"] == "not_on_hold"


def test_the_schema_documents_the_new_statuses_and_reasons(client):
    import yaml

    schema = yaml.safe_load(client.get("/api/schema/").content)
    payment = schema["components"]["schemas"]["Payment"]["properties"]
    text = yaml.safe_dump(schema)
    assert "on_hold" in text and "total_differs" in text and "balance_too_low" in text
    assert "export_hold_reason" in payment and "/api/v1/payments/{payment_id}/export-hold/" in schema["paths"]
    assert "held" in yaml.safe_dump(schema["components"]["schemas"]["ExportCounts"])


def test_create_and_list_tax_rates(api):
    response = api.post("tax-rates/", {"name": "Chicago, IL", "percentage": "10.25"})
    assert response.status_code == 201, response.json()
    assert response.json()["percentage"] == "10.2500"
    listed = api.get("tax-rates/").json()["results"]
    assert [r["name"] for r in listed] == ["Chicago, IL"]


@pytest.mark.parametrize("percentage", ["101", "-1", "abc"])
def test_a_bad_tax_rate_is_refused_with_its_code(api, percentage):
    response = api.post("tax-rates/", {"name": "Bad", "percentage": percentage})
    assert response.status_code == 400 and response.json()["code"] == "invalid_tax_rate"
