"""Office staff export an invoice with nothing to pay from its page, and read what happened in the export log."""

from decimal import Decimal

import pytest
from django.urls import reverse

from quickbooks_export.models import ExportBatch, ExportBatchItem
from tests.factories import issued_invoice
from tests.quickbooks_export.export.test_invoice_only import qbo_invoices, warranty_invoice

from .conftest import OFFICE_PERMISSIONS, drain, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def office_client(client):
    client.force_login(make_user("dana", *OFFICE_PERMISSIONS, "view_invoice", first_name="Dana"))
    return client


def test_export_to_quickbooks_from_the_invoice_page(office_client, qbo_company, django_assert_max_num_queries):
    invoice = warranty_invoice("INV-P1")
    detail = reverse("records:invoice_detail", args=[invoice.pk])
    page = office_client.get(detail).content.decode()
    assert reverse("exports:invoice_export", args=[invoice.pk]) in page and "Export to QuickBooks" in page

    response = office_client.post(reverse("exports:invoice_export", args=[invoice.pk]))

    batch = ExportBatch.objects.get()
    assert response["Location"] == reverse("exports:batch_detail", args=[batch.pk])
    drain(qbo_company.realm_id)
    [row] = qbo_invoices(qbo_company, "INV-P1")
    assert Decimal(str(row["TotalAmt"])) == 0
    with django_assert_max_num_queries(12):
        records = office_client.get(reverse("exports:batch_items", args=[batch.pk, "all"])).content.decode()
    assert "Invoice INV-P1" in records and f"QuickBooks invoice {row['Id']}" in records and "$0.00" in records
    log = office_client.get(reverse("exports:log")).content.decode()
    assert "Failed, waiting for you" not in log


def test_an_invoice_with_something_to_pay_has_no_button_and_is_refused_with_the_reason(office_client, qbo_company):
    invoice = issued_invoice(amount="120.00", number="INV-P2")
    detail = reverse("records:invoice_detail", args=[invoice.pk])
    assert "exports/invoices" not in office_client.get(detail).content.decode()

    response = office_client.post(reverse("exports:invoice_export", args=[invoice.pk]), follow=True)

    assert "INV-P2 totals $120.00" in response.content.decode()
    assert not ExportBatchItem.objects.exists()


def test_a_failed_invoice_shows_in_the_log_with_a_retry(office_client, qbo_company):
    invoice = warranty_invoice("INV-P3")
    office_client.post(reverse("exports:invoice_export", args=[invoice.pk]))
    drain(qbo_company.realm_id)
    [row] = qbo_invoices(qbo_company, "INV-P3")
    # Someone adds a charge to it in QuickBooks: QuickBooks' copy is no longer the invoice with nothing to pay.
    line = {**row["Line"][0], "Amount": "25.00"}
    line["SalesItemLineDetail"] = {**line["SalesItemLineDetail"], "UnitPrice": "25.00", "Qty": "1"}
    qbo_company.server.edit_entity(qbo_company.realm_id, "Invoice", row["Id"], {"Line": [line]})
    office_client.post(reverse("exports:invoice_export", args=[invoice.pk]))
    drain(qbo_company.realm_id)

    log = office_client.get(reverse("exports:log")).content.decode()

    assert "Failed, waiting for you" in log and "Invoice INV-P3" in log and "QuickBooks has $25.00" in log
    assert reverse("exports:invoice_export", args=[invoice.pk]) in log
    [_, second] = ExportBatchItem.objects.order_by("id")
    assert second.outcome == "failed" and second.error_code == "invoice_total_differs"
