"""The Payments page: filters, search, status words, the Export Payments action, and a constant number of queries."""

import datetime
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from billing.demo import seed_scale
from billing.models import Payment
from quickbooks_export.models import ExportBatch, ExportBatchItem
from tests.factories import CustomerFactory, InvoiceFactory, issued_invoice, pay

from .conftest import drain

pytestmark = pytest.mark.django_db
S = Payment.ExportStatus
URL = reverse("exports:payment_list")


def ids_on(response) -> list[int]:
    return [int(pk) for pk in re.findall(r'<tr data-payment="(\d+)"', response.content.decode())]


@pytest.fixture
def office(db):
    """A small office: a ready payment, a held one, and one in each other export state."""
    maria = CustomerFactory(display_name="Maria Gonzalez", company_name="")
    obrien = CustomerFactory(display_name="O'Brien Plumbing Supply", company_name="O'Brien LLC")
    ready = pay(
        issued_invoice(customer=maria, amount="2024.63", number="INV-1041"),
        "2024.63",
        method="card",
        reference="ch_3Pdeposit",
        received_on=datetime.date(2026, 10, 3),
    )
    held = pay(
        issued_invoice(customer=obrien, amount="300.00", number="INV-1043"),
        "250.00",
        reference="551",
        received_on=datetime.date(2026, 10, 10),
    )
    states = {}
    for i, status in enumerate([S.EXPORTED, S.FAILED, S.QUEUED, S.EXCLUDED]):
        payment = pay(
            issued_invoice(customer=obrien, amount="50.00", number=f"INV-20{i}"),
            "50.00",
            method="cash",
            received_on=datetime.date(2026, 10, 20 + i),
        )
        Payment.objects.filter(pk=payment.pk).update(export_status=status, export_reference="77" if i == 0 else "")
        states[status] = payment.pk
    return {"ready": ready.pk, "held": held.pk, **states}


def test_lists_payments_newest_first_with_customer_invoice_amount_method_and_status(office_client, office):
    response = office_client.get(URL)

    html = response.content.decode()
    assert ids_on(response)[-2:] == [office["held"], office["ready"]]
    assert "Maria Gonzalez" in html and "INV-1041" in html and "$2,024.63" in html and "Card" in html
    assert "Oct 3, 2026" in html and "Ref ch_3Pdeposit" in html
    assert "Ready to export" in html
    assert "Held" in html and "INV-1043 still has $50.00 open." in html
    assert "Exported" in html and "QuickBooks payment 77" in html
    assert "Failed" in html and "Queued" in html and "Do not export" in html


def test_exported_payments_cannot_be_ticked(office_client, office):
    html = office_client.get(URL).content.decode()

    assert f'value="{office["ready"]}"' in html and f'value="{office["held"]}"' in html
    assert f'value="{office[S.EXPORTED]}"' not in html


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("ready", ["ready"]),
        ("held", ["held"]),
        ("exported", [S.EXPORTED]),
        ("failed", [S.FAILED]),
        ("queued", [S.QUEUED]),
        ("excluded", [S.EXCLUDED]),
    ],
)
def test_status_filter(office_client, office, status, expected):
    assert ids_on(office_client.get(URL, {"status": status})) == [office[key] for key in expected]


def test_filters_by_date_range_method_amount_and_customer(office_client, office):
    assert ids_on(office_client.get(URL, {"received_from": "2026-10-01", "received_to": "2026-10-05"})) == [
        office["ready"]
    ]
    assert sorted(ids_on(office_client.get(URL, {"method": "cash"}))) == sorted(
        office[s] for s in (S.EXPORTED, S.FAILED, S.QUEUED, S.EXCLUDED)
    )
    assert ids_on(office_client.get(URL, {"amount_min": "200", "amount_max": "1000"})) == [office["held"]]
    customer_id = Payment.objects.get(pk=office["ready"]).customer_id
    response = office_client.get(URL, {"customer": customer_id})
    assert ids_on(response) == [office["ready"]]
    assert "Customer: Maria Gonzalez" in response.content.decode()


@pytest.mark.parametrize(
    ("query", "key"),
    [("gonzalez", "ready"), ("ch_3pdep", "ready"), ("INV-1043", "held"), ("551", "held"), ("o'brien llc", "held")],
)
def test_search_finds_customer_name_reference_and_invoice_number(office_client, office, query, key):
    found = ids_on(office_client.get(URL, {"q": query}))
    assert office[key] in found
    if key == "ready":
        assert found == [office["ready"]]


def test_filters_combine(office_client, office):
    assert ids_on(office_client.get(URL, {"q": "o'brien", "status": "held", "method": "check"})) == [office["held"]]
    assert ids_on(office_client.get(URL, {"q": "o'brien", "status": "ready"})) == []


def test_bad_filter_values_are_reported_not_crashing(office_client, office):
    response = office_client.get(URL, {"received_from": "yesterday", "amount_min": "lots", "status": "bogus"})

    assert response.status_code == 200
    html = response.content.decode()
    assert "Enter a valid date" in html and "Enter a number" in html


def test_empty_states_say_what_to_do(office_client):
    html = office_client.get(URL).content.decode()
    assert "No payments yet" in html

    CustomerFactory()
    html = office_client.get(URL, {"q": "nobody"}).content.decode()
    assert "No payments match these filters" in html and "clear the filters" in html


def test_pages_of_payments(office_client, office):
    InvoiceFactory()  # unrelated rows do not matter
    first = office_client.get(URL, {"size": "25"})
    assert len(ids_on(first)) == 6
    assert 'rel="next"' not in first.content.decode()

    seed_scale(payments=60)
    first = office_client.get(URL, {"size": "25"})
    second = office_client.get(URL, {"size": "25", "page": "2"})
    assert len(ids_on(first)) == len(ids_on(second)) == 25
    assert not set(ids_on(first)) & set(ids_on(second))
    assert 'rel="next"' in first.content.decode() and 'rel="prev"' in second.content.decode()
    assert "Showing 26–50" in second.content.decode()


def test_count_fragment_counts_the_matches(office_client, office):
    response = office_client.get(reverse("exports:payment_count"), {"status": "failed"})
    assert 'data-count="1"' in response.content.decode()
    html = office_client.get(reverse("exports:payment_count")).content.decode()
    assert 'data-count="6" data-selectable="5"' in html and "6</strong> payments" in html
    assert "(5 not in QuickBooks yet)" in html  # the exported one cannot be selected


def _queries_for_page(client, **params) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(URL, params)
    assert response.status_code == 200
    return [query["sql"] for query in captured.captured_queries]


def test_the_page_costs_the_same_queries_for_10_and_500_rows(office_client, office):
    seed_scale(payments=4)  # ready and held rows of another shape, with the office's failed and exported ones
    small = _queries_for_page(office_client, size="500")
    assert len(ids_on(office_client.get(URL, {"size": "500"}))) == 10

    seed_scale(payments=490)
    large = _queries_for_page(office_client, size="500")
    assert len(ids_on(office_client.get(URL, {"size": "500"}))) == 500

    assert len(small) == len(large), "\n".join(large)
    filtered_small = _queries_for_page(office_client, size="500", status="held", q="S-", method="check")
    assert len(filtered_small) <= len(large)


def test_the_page_never_counts_payments_itself(office_client, office):
    queries = _queries_for_page(office_client, status="ready", size="50")
    counts = [sql for sql in queries if "COUNT(" in sql.upper() and "billing_payment" in sql]
    assert counts == []


# --- Export Payments ----------------------------------------------------------------------------------------------


def test_export_selected_payments_starts_a_batch_and_reports_held_ones_as_skipped(office_client, office, qbo_company):
    response = office_client.post(
        reverse("exports:payments_export"), {"payment": [office["ready"], office["held"]], "status": "held"}
    )

    batch = ExportBatch.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("exports:batch_detail", args=[batch.pk])
    assert batch.selection == "2 selected payments" and batch.requested_by == "Dana Office"
    assert batch.source == ExportBatch.Source.PAGE
    skipped = ExportBatchItem.objects.get(batch=batch, payment_id=office["held"])
    assert skipped.outcome == ExportBatchItem.Outcome.SKIPPED
    assert skipped.message == "Held: INV-1043 still has $50.00 open."

    drain(qbo_company.realm_id)
    assert Payment.objects.get(pk=office["ready"]).export_status == S.EXPORTED


def test_select_all_matching_exports_every_payment_the_filters_match(office_client, office, qbo_company):
    seed_scale(payments=12)
    matching = list(Payment.objects.filter(export_status=S.NOT_EXPORTED, method="check").values_list("pk", flat=True))

    response = office_client.post(
        reverse("exports:payments_export"), {"scope": "matching", "method": "check", "payment": [office["ready"]]}
    )

    batch = ExportBatch.objects.get()
    assert response.status_code == 302
    assert batch.selection == "Every payment matching method check"
    selected = set(
        ExportBatchItem.objects.filter(batch=batch, added_with_invoice=False).values_list("payment_id", flat=True)
    )
    assert selected == set(matching) and office["ready"] not in selected


def test_select_all_matching_never_selects_payments_already_in_quickbooks(office_client, office, qbo_company):
    office_client.post(reverse("exports:payments_export"), {"scope": "matching", "method": "cash"})

    batch = ExportBatch.objects.get()
    selected = set(batch.items.filter(added_with_invoice=False).values_list("payment_id", flat=True))
    assert selected == {office[S.FAILED], office[S.QUEUED], office[S.EXCLUDED]}


def test_exporting_nothing_says_what_to_do(office_client, office, qbo_company):
    response = office_client.post(reverse("exports:payments_export"), {"status": "ready"}, follow=True)

    assert ExportBatch.objects.count() == 0
    assert "Tick the payments to export first" in response.content.decode()
    assert response.redirect_chain[-1][0] == URL + "?status=ready"


def test_exporting_without_a_quickbooks_company_explains_and_keeps_the_filters(office_client, office):
    response = office_client.post(
        reverse("exports:payments_export"), {"payment": [office["ready"]], "q": "maria"}, follow=True
    )

    assert ExportBatch.objects.count() == 0
    assert "QuickBooks is not connected" in response.content.decode()
    assert response.redirect_chain[-1][0] == URL + "?q=maria"


def test_the_held_filter_agrees_with_billings_rule(office_client, office):
    from billing.selectors import payment_filter_held

    seed_scale(payments=40)
    expected = set(
        payment_filter_held(Payment.objects.filter(export_status=S.NOT_EXPORTED)).values_list("pk", flat=True)
    )
    shown = set(ids_on(office_client.get(URL, {"status": "held", "size": "100"})))
    assert shown == expected and len(expected) > 1
