"""Undo pages: the confirmation says exactly what will be voided; only people who may export can undo; POST + CSRF."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from billing.models import Payment
from quickbooks_export.models import ExportUndo
from quickbooks_export.undo import export_undo_run
from tests.factories import CustomerFactory, issued_invoice, pay
from tests.quickbooks_export.export.conftest import export

pytestmark = pytest.mark.django_db
S = Payment.ExportStatus


def exported_batch(count: int):
    customer = CustomerFactory(display_name="Rosa Diaz")
    payments = [pay(issued_invoice(customer=customer, amount="50.00"), "50.00") for _ in range(count)]
    return export(*payments), payments


def test_confirmation_lists_what_will_be_voided_and_the_post_undoes_it(office_client, qbo_company):
    batch, payments = exported_batch(2)
    url = reverse("exports:batch_undo", args=[batch.pk])
    assert 'id="undo-link"' in office_client.get(reverse("exports:batch_detail", args=[batch.pk])).content.decode()

    html = office_client.get(url).content.decode()
    assert "Void 2 payments and 2 invoices in QuickBooks" in html
    for payment in payments:
        payment.refresh_from_db()
        assert f"Payment #{payment.pk} from Rosa Diaz, $50.00 — QuickBooks payment {payment.export_reference}" in html
    assert not ExportUndo.objects.exists()  # looking changes nothing

    response = office_client.post(url)
    undo = ExportUndo.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("exports:undo_detail", args=[undo.pk])
    export_undo_run(undo_id=undo.pk)  # what the worker does
    html = office_client.get(response["Location"]).content.decode()
    assert "Done</strong> — voided 2 payments and 2 invoices of 4 records." in html
    assert all(Decimal(str(p["TotalAmt"])) == 0 for p in qbo_company.entities("Payment"))
    assert set(Payment.objects.values_list("export_status", flat=True)) == {S.NOT_EXPORTED}


def test_a_refused_undo_says_why_and_offers_no_button(office_client, qbo_company):
    batch, [payment] = exported_batch(1)
    payment.refresh_from_db()
    qbo_company.server.edit_entity(qbo_company.realm_id, "Payment", payment.export_reference, {"PrivateNote": "x"})
    url = reverse("exports:batch_undo", args=[batch.pk])

    html = office_client.get(url).content.decode()
    assert "This export cannot be undone" in html and "was changed in QuickBooks since the export" in html
    assert 'id="undo-form"' not in html

    response = office_client.post(url, follow=True)
    assert "Cannot undo:" in response.content.decode()
    assert not ExportUndo.objects.exists()


def test_the_confirmation_page_makes_the_same_queries_for_1_and_5_payments(office_client, qbo_company):
    counts = []
    for size in (1, 5):
        batch, _ = exported_batch(size)
        # Warm up: the first QuickBooks reads of a process write its call-count rows (fieldsync.metrics) and read the
        # company profile; what is measured is the page, for 1 and for 5 payments.
        office_client.get(reverse("exports:batch_undo", args=[batch.pk]))
        with CaptureQueriesContext(connection) as queries:
            assert office_client.get(reverse("exports:batch_undo", args=[batch.pk])).status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1]


def test_only_people_who_may_export_can_undo_and_only_by_post(viewer_client, client, qbo_company):
    batch, [payment] = exported_batch(1)
    for url in (reverse("exports:batch_undo", args=[batch.pk]), reverse("exports:payment_undo", args=[payment.pk])):
        assert viewer_client.get(url).status_code == 403
        assert viewer_client.post(url).status_code == 403
    client.logout()
    assert client.post(reverse("exports:batch_undo", args=[batch.pk])).status_code == 302  # to sign in
    assert not ExportUndo.objects.exists()


def test_undo_needs_the_csrf_token(office_user, qbo_company):
    batch, _ = exported_batch(1)
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(office_user)
    assert strict.post(reverse("exports:batch_undo", args=[batch.pk])).status_code == 403
    assert not ExportUndo.objects.exists()


def test_the_payment_page_offers_undo_of_its_export(office_client, qbo_company):
    _, [payment] = exported_batch(1)
    detail = reverse("exports:payment_detail", args=[payment.pk])
    html = office_client.get(detail).content.decode()
    assert f'href="{reverse("exports:payment_undo", args=[payment.pk])}" id="payment-undo-link"' in html
    html = office_client.get(reverse("exports:payment_undo", args=[payment.pk])).content.decode()
    assert "Void 1 payment and 1 invoice in QuickBooks" in html
