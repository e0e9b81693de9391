"""Requesting QuickBooks exports through the API and following them."""

import pytest

from billing.models import Payment
from quickbooks_export.models import ExportBatch
from tests.factories import issued_invoice, pay
from tests.quickbooks_export.export.conftest import connect, drain

pytestmark = pytest.mark.django_db


@pytest.fixture
def qbo_company(qbo_sandbox, settings, db):
    settings.EXPORT_MAX_RETRY_AFTER_SECONDS = 0.2
    return connect(qbo_sandbox, settings)


def test_request_the_export_of_payments_and_read_the_batch(api, quickbooks_connected):
    ready = pay(issued_invoice(amount="100.00"), "100.00")
    held = pay(issued_invoice(amount="100.00", number="INV-55"), "40.00")

    response = api.post("exports/", {"payment_ids": [ready.pk, held.pk]})

    assert response.status_code == 202
    batch = response.json()
    assert batch["source"] == "api" and batch["status"] == "queued"
    assert batch["requested_by"] == "API client field-app"
    assert batch["selection"] == "2 payments selected through the API"
    assert (batch["counts"]["total"], batch["counts"]["pending"], batch["counts"]["skipped"]) == (2, 1, 1)
    ready.refresh_from_db()
    assert ready.export_status == Payment.ExportStatus.QUEUED

    assert api.get(f"exports/{batch['id']}/").json()["counts"] == batch["counts"]
    skipped = api.get(f"exports/{batch['id']}/items/", {"outcome": "skipped"}).json()["results"]
    assert [(i["payment"], i["message"]) for i in skipped] == [(held.pk, "Held: INV-55 still has $60.00 open.")]
    assert len(api.get(f"exports/{batch['id']}/items/").json()["results"]) == 2
    assert api.get(f"exports/{batch['id']}/items/", {"outcome": "bogus"}).status_code == 400
    assert [b["id"] for b in api.get("exports/").json()["results"]] == [batch["id"]]


def test_export_one_payment(api, quickbooks_connected):
    payment = pay(issued_invoice(amount="100.00"), "100.00")
    response = api.post(f"payments/{payment.pk}/export/")
    assert response.status_code == 202
    assert response.json()["selection"] == f"payment #{payment.pk}"
    assert api.post("payments/999999/export/").status_code == 404


def test_export_everything_exportable(api, quickbooks_connected):
    pay(issued_invoice(amount="100.00"), "100.00")
    response = api.post("exports/", {"all_exportable": True})
    assert response.status_code == 202
    assert response.json()["counts"]["pending"] == 1


def test_an_export_request_retried_with_its_key_starts_one_batch(api, quickbooks_connected):
    payment = pay(issued_invoice(amount="100.00"), "100.00")
    first = api.post("exports/", {"payment_ids": [payment.pk]}, key="export-1")
    retry = api.post("exports/", {"payment_ids": [payment.pk]}, key="export-1")
    assert retry.status_code == 202 and retry["Idempotent-Replayed"] == "true"
    assert retry.content == first.content
    assert ExportBatch.objects.count() == 1


@pytest.mark.parametrize("data", [{}, {"payment_ids": [1], "all_exportable": True}, {"payment_ids": []}])
def test_an_export_needs_exactly_one_selection(api, quickbooks_connected, data):
    response = api.post("exports/", data)
    assert response.status_code == 400
    assert not ExportBatch.objects.exists()


def test_an_unknown_payment_is_refused(api, quickbooks_connected):
    response = api.post("exports/", {"payment_ids": [424242]})
    assert response.status_code == 400 and response.json()["code"] == "unknown_payment"
    assert not ExportBatch.objects.exists()


def test_exporting_without_a_quickbooks_connection_is_a_conflict(api):
    payment = pay(issued_invoice(amount="100.00"), "100.00")
    response = api.post("exports/", {"payment_ids": [payment.pk]})
    assert response.status_code == 409 and response.json()["code"] == "quickbooks_not_connected"
    assert Payment.objects.get().export_status == Payment.ExportStatus.NOT_EXPORTED


def test_an_unknown_batch_is_404(api):
    assert api.get("exports/999999/").status_code == 404
    assert api.get("exports/999999/items/").status_code == 404


def test_post_payments_export_them_and_follow_the_batch_to_quickbooks(api, qbo_company):
    """End to end: the API -> the export engine -> python-quickbooks -> the local QuickBooks sandbox."""
    customer = api.post("customers/", {"display_name": "Maria Gonzalez", "email": "maria@example.com"}).json()
    api.post(
        "invoices/",
        {"customer": customer["id"], "number": "INV-1042", "lines": [{"service_name": "Labor", "unit_price": "150"}]},
    )
    api.post("invoices/INV-1042/issue/")
    deposit = api.post(
        "payments/", {"invoice": "INV-1042", "amount": "50.00", "method": "card", "received_on": "2026-11-03"}
    )
    final = api.post(
        "payments/", {"invoice": "INV-1042", "amount": "100.00", "method": "check", "received_on": "2026-11-10"}
    )
    ids = [deposit.json()["id"], final.json()["id"]]

    batch = api.post("exports/", {"payment_ids": ids}).json()
    drain(qbo_company.realm_id)  # what the worker does

    followed = api.get(f"exports/{batch['id']}/").json()
    assert followed["status"] == "finished"
    assert followed["counts"]["created"] == 2 and followed["counts"]["failed"] == 0
    items = api.get(f"exports/{batch['id']}/items/").json()["results"]
    in_quickbooks = {p["Id"] for p in qbo_company.entities("Payment")}
    assert {i["qbo_id"] for i in items} == in_quickbooks
    for payment_id in ids:
        payment = api.get(f"payments/{payment_id}/").json()
        assert payment["export_status"] == "exported" and payment["export_reference"] in in_quickbooks
