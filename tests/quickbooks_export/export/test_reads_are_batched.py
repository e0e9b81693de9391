"""Intuit meters reads (GET and queries), not writes: an export looks customers, items and invoices up a batch at a
time (quickbooks_export/lookups.py), so its reads grow with the number of batches, not with the payments.

Counted by the sandbox (what QuickBooks would meter), through the real python-quickbooks client. Counting calls is
not timing: it is asserted."""

import math

import pytest

from billing import services as billing_services
from billing.models import Payment
from quickbooks_export.client import QuickBooksClient
from quickbooks_export.lookups import LOOKAHEAD_PAYMENTS, MAX_IN_VALUES, MAX_STATEMENT_CHARS, in_statements
from quickbooks_export.models import QuickBooksMapping
from tests.factories import CustomerFactory, pay

from .conftest import export

pytestmark = pytest.mark.django_db

PAYMENTS = 90  # three chunks of 30
CUSTOMERS = 40
COMPANY_PROFILE_READS = 3  # CompanyInfo, Preferences and the tax codes, read once per run (company.py)


def _invoice(customer, number: str, service: str, amount: str):
    invoice = billing_services.invoice_create(
        customer=customer,
        number=number,
        sales_tax="0.00",
        lines=[billing_services.LineInput(service_name=service, unit_price=amount)],
    )
    return billing_services.invoice_issue(invoice=invoice)


def test_an_export_reads_quickbooks_once_per_batch_of_customers_not_once_per_payment(qbo_company):
    customers = [
        # Every fourth has no e-mail (found by name); one name needs QuickBooks' backslash escape.
        CustomerFactory(
            display_name="O'Brien's Plumbing" if i == 1 else f"Customer {i:02d}",
            email="" if i % 4 == 1 else f"c{i}@example.com",
        )
        for i in range(CUSTOMERS)
    ]
    client = QuickBooksClient.for_current_connection()
    # Two of them are in QuickBooks already: one by e-mail (under another name), one by name, without an e-mail.
    by_email = client.create(
        "Customer", {"DisplayName": "C. Zero", "PrimaryEmailAddr": {"Address": "c0@example.com"}}, request_id="pre-1"
    )
    by_name = client.create("Customer", {"DisplayName": "O'Brien's Plumbing"}, request_id="pre-2")
    payments = [
        pay(
            _invoice(customers[i % CUSTOMERS], f"INV-{i:03d}", ("Labor", "Drain cleaning", "Parts")[i % 3], "50.00"),
            "50.00",
        )
        for i in range(PAYMENTS)
    ]
    before = qbo_company.server.stats(qbo_company.realm_id)

    batch = export(*payments)

    after = qbo_company.server.stats(qbo_company.realm_id)
    reads = after["reads"] - before["reads"]
    assert Payment.objects.filter(export_status=Payment.ExportStatus.EXPORTED).count() == PAYMENTS
    assert batch.status == batch.Status.FINISHED
    # The two customers QuickBooks had were linked, not created again; the others were created once each.
    assert len(qbo_company.entities("Customer")) == CUSTOMERS
    linked = QuickBooksMapping.objects.filter(kind=QuickBooksMapping.Kind.CUSTOMER, linked_existing=True)
    assert dict(linked.values_list("local_key", "qbo_id")) == {
        str(customers[0].pk): str(by_email["Id"]),
        str(customers[1].pk): str(by_name["Id"]),
    }
    assert len(qbo_company.entities("Payment")) == PAYMENTS

    # One run covers up to LOOKAHEAD_PAYMENTS queued payments per round of look-ups: customers by e-mail and by
    # name, items by name, invoices by number, each an IN query of up to MAX_IN_VALUES values.
    rounds = math.ceil(PAYMENTS / LOOKAHEAD_PAYMENTS)
    per_round = 2 * math.ceil(CUSTOMERS / MAX_IN_VALUES) + 1 + math.ceil(PAYMENTS / MAX_IN_VALUES)
    assert reads <= COMPANY_PROFILE_READS + rounds * per_round
    assert reads < PAYMENTS / 10  # the issue's goal: at most 0.1 reads per payment
    # Before batched look-ups: one query per customer and per item, one per chunk of invoices (about 50 here).


def test_in_statements_escape_quotes_and_stay_within_the_limits():
    names = [f"O'Brien \\ {i:03d}" for i in range(250)]

    statements = in_statements("Customer", "DisplayName", names)

    assert [len(values) for _, values in statements] == [100, 100, 50]
    assert sum((values for _, values in statements), []) == names
    first, _ = statements[0]
    assert first.startswith("SELECT * FROM Customer WHERE DisplayName IN ('O\\'Brien \\\\ 000', ")
    long_names = [f"{'x' * 400} {i}" for i in range(30)]
    assert all(len(statement) <= MAX_STATEMENT_CHARS for statement, _ in in_statements("Item", "Name", long_names))
    assert len(in_statements("Item", "Name", long_names)) > 1


def test_customers_and_items_in_the_mapping_table_are_not_looked_up_again(qbo_company):
    customers = [CustomerFactory() for _ in range(5)]
    export(*[pay(_invoice(c, f"INV-A{i}", "Labor", "80.00"), "80.00") for i, c in enumerate(customers)])
    later = [pay(_invoice(c, f"INV-B{i}", "Labor", "90.00"), "90.00") for i, c in enumerate(customers * 4)]
    before = qbo_company.server.stats(qbo_company.realm_id)

    export(*later)

    after = qbo_company.server.stats(qbo_company.realm_id)
    assert Payment.objects.filter(export_status=Payment.ExportStatus.EXPORTED).count() == 25
    assert len(qbo_company.entities("Customer")) == 5
    # The company profile is fresh (read by the first export) and every customer and item is mapped: the only read
    # is the one query for the 20 new invoice numbers (a hand-keyed invoice with our number is linked, never doubled).
    assert after["reads"] - before["reads"] == 1
    assert after["writes"] - before["writes"] == 0  # no customer or item created again
