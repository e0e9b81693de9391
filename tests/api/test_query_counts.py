"""Every list endpoint runs the same number of queries for a page of 5 rows and a page of 50."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing import services
from quickbooks_export.services import export_batch_start
from tests.factories import CustomerFactory, InvoiceFactory, JobFactory, issued_invoice, pay

pytestmark = pytest.mark.django_db


def add_customers(n):
    CustomerFactory.create_batch(n)


def add_jobs(n):
    JobFactory.create_batch(n)


def add_invoices(n):
    for _ in range(n):
        customer = CustomerFactory()
        job = JobFactory(customer=customer)
        services.invoice_create(
            customer=customer,
            job=job,
            number=InvoiceFactory.build().number,
            lines=[
                services.LineInput(service_name="Labor", unit_price="95.00", quantity="2"),
                services.LineInput(service_name="Parts", unit_price="12.50"),
            ],
        )


def add_payments(n):
    for _ in range(n):
        invoice = issued_invoice(amount="100.00")
        payment = pay(invoice, "60.00", payment_amount="70.00")
        services.refund_record(
            payment=payment, amount="5.00", reason="Goodwill", refunded_on=payment.received_on, method="cash"
        )


def add_batches(n):
    for _ in range(n):
        payment = pay(issued_invoice(amount="100.00"), "100.00")
        export_batch_start(payments=[payment.pk], selection="test", source="api")


def count_queries(api, path):
    with CaptureQueriesContext(connection) as queries:
        response = api.get(path, {"page_size": 50})
    assert response.status_code == 200, response.content
    return len(queries), len(response.json()["results"])


@pytest.mark.parametrize(
    ("path", "add"),
    [
        ("customers/", add_customers),
        ("jobs/", add_jobs),
        ("invoices/", add_invoices),
        ("payments/", add_payments),
        ("exports/", add_batches),
    ],
)
def test_list_pages_run_a_constant_number_of_queries(api, quickbooks_connected, path, add):
    api.get("customers/")  # the token's last-use stamp is written once a minute: not inside the counts below
    add(5)
    small, rows = count_queries(api, path)
    assert rows == 5
    add(45)
    large, rows = count_queries(api, path)
    assert rows == 50
    assert small == large, (small, large)


def test_export_items_run_a_constant_number_of_queries(api, quickbooks_connected):
    api.get("customers/")

    def batch_of(n):
        payments = [pay(issued_invoice(amount="100.00"), "100.00") for _ in range(n)]
        return export_batch_start(payments=[p.pk for p in payments], selection="test", source="api")

    small_batch, large_batch = batch_of(5), batch_of(50)
    small, rows = count_queries(api, f"exports/{small_batch.pk}/items/")
    assert rows == 5
    large, rows = count_queries(api, f"exports/{large_batch.pk}/items/")
    assert rows == 50
    assert small == large


# What one POST /api/v1/payments/ paying one invoice runs, in the test settings (local-memory cache: the throttle
# makes no query here): 17. 29 before issue 14 (no second balance read, no get_or_create for a new payment's
# applications, no SQL re-validation of what Python checked: 21), then the answer built from what payment_record
# returned instead of 4 queries reading the payment back (17).
# Raise it only with a reason: every statement is paid on every payment posted.
PAYMENT_POST_QUERIES = 17
# The same POST as a web request runs it on PostgreSQL, outside any transaction (tests/api/test_one_commit.py): the
# Idempotency-Key's lock and look-up in one SELECT, its row INSERTed once with the answer, all in the work's
# transaction: 16 statements and one COMMIT (17 statements and two commits before: claim INSERT in autocommit,
# UPDATE with the answer).
PAYMENT_POST_QUERIES_POSTGRESQL = 16


def test_posting_a_payment_runs_a_fixed_small_number_of_queries(api, django_assert_max_num_queries):
    api.get("customers/")  # the token's last-use stamp is written once a minute: not inside the count below
    warm_up, invoice = issued_invoice(amount="100.00"), issued_invoice(amount="120.00")
    warm = {"invoice": warm_up.number, "amount": "100.00", "method": "card", "received_on": "2026-11-20"}
    assert api.post("payments/", warm).status_code == 201

    with django_assert_max_num_queries(PAYMENT_POST_QUERIES):
        response = api.post(
            "payments/",
            {"invoice": invoice.number, "amount": "120.00", "method": "card", "received_on": "2026-11-20"},
        )

    assert response.status_code == 201, response.content
    assert response.json()["exportable"] is True
    invoice.refresh_from_db()
    assert invoice.status == invoice.Status.PAID
