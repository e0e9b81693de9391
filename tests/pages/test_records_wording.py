"""Words for people (issue 12): each message says what happened, why and what to do, without internal codes,
"realm", "batch" or an unexplained "Linked"; one date format; the export history written for humans."""

import re

import pytest
import requests
from django.template.loader import render_to_string
from django.urls import reverse

from billing.models import Payment
from quickbooks_export.models import ExportAttempt, ExportBatch, ExportBatchItem, QuickBooksMappingSettings
from quickbooks_export.services import export_batch_start, export_run
from tests.factories import CustomerFactory, issued_invoice, pay

from .conftest import drain, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def manager_client(client, db):
    client.force_login(
        make_user("mgr", "manage_quickbooks_connection", "view_payment", "view_exportbatch", "export_payments")
    )
    return client


def test_settings_say_company_id_not_realm_and_mark_guessed_mapping_until_saved(manager_client, qbo_company):
    page = manager_client.get(reverse("quickbooks_export:settings")).content.decode()
    assert "QuickBooks company ID" in page and "Realm id" not in page
    assert "FieldSync <strong>guessed</strong> this mapping" in page
    assert page.count("guessed — please confirm") >= 7  # deposit, income account, five payment methods
    mapping = QuickBooksMappingSettings.objects.get()
    mapping.updated_by = make_user("saver")
    mapping.save()
    page = manager_client.get(reverse("quickbooks_export:settings")).content.decode()
    assert "guessed — please confirm" not in page and "guessed</strong>" not in page


def finished_batch(office_client, *, failed_code: str = "") -> ExportBatch:
    payment = pay(issued_invoice(amount="55.00"), "55.00")
    batch = ExportBatch.objects.create(
        source=ExportBatch.Source.PAGE, selection="1 selected payment", realm_id="1", status=ExportBatch.Status.FINISHED
    )
    ExportBatchItem.objects.create(
        batch=batch,
        payment=payment,
        outcome=ExportBatchItem.Outcome.FAILED if failed_code else ExportBatchItem.Outcome.LINKED,
        message="Invoice: INV-1 is already in QuickBooks with another total" if failed_code else "",
        error_code=failed_code,
    )
    if failed_code:
        Payment.objects.filter(pk=payment.pk).update(export_status=Payment.ExportStatus.FAILED)
    return batch


def test_export_log_explains_found_in_quickbooks_instead_of_linked(office_client):
    finished_batch(office_client)
    page = office_client.get(reverse("exports:log")).content.decode()
    assert ">Found in QuickBooks</th>" in page and "so FieldSync linked to it instead of adding it twice" in page
    assert ">Linked<" not in page


@pytest.mark.parametrize(
    ("code", "shown"), [("6140", "QuickBooks error 6140"), ("invoice_conflict", "FieldSync check “invoice_conflict”")]
)
def test_error_codes_are_folded_and_say_whose_they_are(office_client, code, shown):
    batch = finished_batch(office_client, failed_code=code)
    for url in (reverse("exports:batch_items", args=[batch.pk, "failed"]), reverse("exports:log")):
        page = office_client.get(url).content.decode()
        assert f"<summary>Technical detail</summary>{shown}" in page, url
        assert "QuickBooks code" not in page and f"code {code}<" not in page


def test_pages_say_export_never_batch(office_client, qbo_company):
    payment = pay(issued_invoice(amount="10.00"), "10.00")
    batch = export_batch_start(payments=[payment.pk], selection="1 selected payment", source="page")
    drain(qbo_company.realm_id)
    for url in (
        reverse("exports:log"),
        reverse("exports:batch_detail", args=[batch.pk]),
        reverse("exports:payment_detail", args=[payment.pk]),
    ):
        page = office_client.get(url).content.decode()
        assert not re.search(r"batch #\d", page, re.IGNORECASE), url
    assert payment.export_transitions.filter(note=f"Export #{batch.pk}").exists()


def test_export_history_is_written_for_people_with_the_detail_folded(office_client, qbo_company):
    payment = pay(issued_invoice(customer=CustomerFactory(email="new@example.com"), amount="80.00"), "80.00")
    export_batch_start(payments=[payment.pk], selection="1 selected payment", source="page")
    drain(qbo_company.realm_id)
    page = office_client.get(reverse("exports:payment_detail", args=[payment.pk])).content.decode()
    assert "Looked for the customer in QuickBooks by e-mail: not there yet, so it will be added" in page
    assert "Added the customer to QuickBooks" in page
    assert "Added the service “labor” to QuickBooks" in page
    assert "Added the payment to QuickBooks (QuickBooks number" in page
    assert "<summary>Technical detail</summary><ul><li>Operation: create Item</li>" in page
    for developer_words in ("OK</span>", "→ QuickBooks", "0 found"):
        assert developer_words not in page


def test_a_failed_payments_history_shows_the_failure_too(office_client):
    batch = finished_batch(office_client, failed_code="invoice_conflict")
    item = batch.items.get()
    ExportAttempt.objects.create(
        payment=item.payment, batch=batch, operation="create Customer", outcome="ok", qbo_id="58"
    )
    page = office_client.get(reverse("exports:payment_detail", args=[item.payment_id])).content.decode()
    assert "Added the customer to QuickBooks (QuickBooks number 58)" in page
    assert f"Export #{batch.pk} stopped for this payment: Invoice: INV-1 is already in QuickBooks" in page


def test_one_date_format_on_every_page(office_client):
    payment = pay(issued_invoice(amount="10.00"), "10.00")  # received 2026-11-10
    for url in (reverse("exports:payment_list"), reverse("exports:payment_detail", args=[payment.pk])):
        page = office_client.get(url).content.decode()
        assert "Nov 10, 2026" in page and "2026-11-10" not in page and "Nov. 10" not in page, url


def test_see_why_is_a_link_to_the_skipped_records(office_client, qbo_company):
    held = pay(issued_invoice(amount="100.00"), "60.00")
    ready = pay(issued_invoice(amount="10.00"), "10.00")
    batch = export_batch_start(payments=[held.pk, ready.pk], selection="2 selected payments", source="page")
    drain(qbo_company.realm_id)
    page = office_client.get(reverse("exports:batch_detail", args=[batch.pk])).content.decode()
    link = reverse("exports:batch_items", args=[batch.pk, "skipped"])
    assert f'(<a href="{link}">1 skipped — see why</a>)' in page


def test_exporting_only_held_payments_is_refused_and_makes_no_empty_export(office_client, qbo_company):
    held = [pay(issued_invoice(amount="100.00"), "60.00") for _ in range(3)]
    response = office_client.post(reverse("exports:payments_export"), {"payment": [p.pk for p in held]}, follow=True)
    assert "Nothing was exported: all 3 ticked payments are held" in response.content.decode()
    assert not ExportBatch.objects.exists()


def test_a_single_export_that_sends_other_payments_asks_first(office_client, qbo_company):
    invoice = issued_invoice(amount="250.00", number="INV-77")
    deposit = pay(invoice, "200.00")
    final = pay(invoice, "50.00")
    url = reverse("exports:payment_export", args=[final.pk])
    panel = office_client.post(url, headers={"HX-Request": "true"}).content.decode()
    assert "This also sends 1 other payment</strong>" in panel and "$200.00 received Nov 10, 2026" in panel
    assert "Export all 2 payments" in panel
    assert not ExportBatch.objects.exists()
    office_client.post(url, {"confirmed": "1"}, headers={"HX-Request": "true"})
    batch = ExportBatch.objects.get()
    assert set(batch.items.values_list("payment_id", flat=True)) == {deposit.pk, final.pk}


def test_a_single_export_of_a_payment_alone_needs_no_confirmation(office_client, qbo_company):
    payment = pay(issued_invoice(amount="40.00"), "40.00")
    office_client.post(reverse("exports:payment_export", args=[payment.pk]), headers={"HX-Request": "true"})
    assert ExportBatch.objects.count() == 1


def test_a_slow_export_says_quickbooks_is_busy_from_its_first_wait(office_client, qbo_company):
    payment = pay(issued_invoice(amount="20.00"), "20.00")
    batch = export_batch_start(payments=[payment.pk], selection="1 selected payment", source="page")
    qbo_company.server.add_fault("503", count=1)
    seen = []

    def sleep(seconds):  # the first retry wait: what does the batch's page say now?
        seen.append(office_client.get(reverse("exports:batch_progress", args=[batch.pk])).content.decode())

    export_run(realm_id=qbo_company.realm_id, sleep=sleep)
    assert seen and "QuickBooks is busy; trying again in" in seen[0]
    batch.refresh_from_db()
    assert not batch.waiting_reason  # cleared once QuickBooks answered


def test_a_running_export_with_nothing_done_yet_says_what_it_is_doing(office_client):
    batch = finished_batch(office_client)
    ExportBatch.objects.filter(pk=batch.pk).update(status=ExportBatch.Status.RUNNING)
    batch.items.update(outcome=ExportBatchItem.Outcome.PENDING)
    page = office_client.get(reverse("exports:batch_progress", args=[batch.pk])).content.decode()
    assert "Talking to QuickBooks: first the customers, services and invoices these payments need" in page


def test_open_in_quickbooks_shows_the_sandbox_payment_in_words(office_client, qbo_company):
    payment = pay(issued_invoice(amount="30.00", number="INV-31"), "30.00")
    export_batch_start(payments=[payment.pk], selection="1 selected payment", source="page")
    drain(qbo_company.realm_id)
    page = office_client.get(reverse("exports:payment_detail", args=[payment.pk])).content.decode()
    (href,) = re.findall(r'href="([^"]+)"[^>]*>Open in QuickBooks', page)
    answer = requests.get(href, timeout=10)
    assert answer.headers["Content-Type"].startswith("text/html")
    assert "local QuickBooks sandbox" in answer.text and "invoice INV-31" in answer.text
    assert not answer.text.lstrip().startswith("{")


def test_unknown_pages_get_the_branded_404(office_client):
    response = office_client.get("/no-such-page/")
    assert response.status_code == 404
    page = response.content.decode()
    assert "Page not found" in page and "Go to Payments" in page and "Django" not in page


def test_the_500_page_needs_no_context_and_says_what_to_do():
    page = render_to_string("500.html")
    assert "Something went wrong" in page and "may not have been saved" in page


def test_every_page_has_the_favicon(office_client):
    page = office_client.get(reverse("exports:payment_list")).content.decode()
    assert '<link rel="icon" href="/static/fieldsync/favicon.svg" type="image/svg+xml">' in page
