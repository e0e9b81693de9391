"""POST /api/v1/invoices/{number}/export/: an invoice with nothing to pay goes to QuickBooks on its own."""

from decimal import Decimal

import pytest

from quickbooks_export.models import ExportBatchItem
from tests.api.conftest import make_api
from tests.factories import issued_invoice
from tests.quickbooks_export.export.conftest import connect, drain
from tests.quickbooks_export.export.test_invoice_only import qbo_invoices, warranty_invoice

pytestmark = pytest.mark.django_db


@pytest.fixture
def qbo_company(qbo_sandbox, settings, db):
    settings.EXPORT_MAX_RETRY_AFTER_SECONDS = 0.2
    return connect(qbo_sandbox, settings)


def test_export_a_zero_invoice_and_follow_it_to_quickbooks(api, qbo_company):
    warranty_invoice("INV-A1")

    response = api.post("invoices/INV-A1/export/")

    assert response.status_code == 202
    batch = response.json()
    assert batch["source"] == "api" and batch["selection"] == "invoice INV-A1 (nothing to pay)"
    drain(qbo_company.realm_id)
    [row] = qbo_invoices(qbo_company, "INV-A1")
    assert Decimal(str(row["TotalAmt"])) == 0 and Decimal(str(row["Balance"])) == 0
    [item] = api.get(f"exports/{batch['id']}/items/").json()["results"]
    assert (item["payment"], item["invoice"], item["outcome"], item["qbo_id"]) == (None, "INV-A1", "created", row["Id"])


def test_an_invoice_with_something_to_pay_is_refused_and_nothing_is_queued(api, quickbooks_connected):
    issued_invoice(amount="75.00", number="INV-A2")

    response = api.post("invoices/INV-A2/export/")

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invoice_has_something_to_pay"
    assert "INV-A2 totals $75.00" in body["message"]
    assert not ExportBatchItem.objects.exists()
    assert api.post("invoices/NOPE-1/export/").status_code == 404


def test_exporting_an_invoice_needs_the_export_scope(quickbooks_connected):
    warranty_invoice("INV-A3")
    read_only = make_api("reporting", can_write=False, can_export=False)[0]
    assert read_only.post("invoices/INV-A3/export/").status_code == 403
    assert not ExportBatchItem.objects.exists()
