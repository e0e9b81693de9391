"""Review: an old unanswered Customer/Item create is 'adopted' by bare name, without the checks the ordinary path
makes (same party; active Service/Non-inventory item)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from billing.models import Payment
from quickbooks_export.client import QuickBooksClient
from quickbooks_export.models import QuickBooksMapping, QuickBooksRequest
from quickbooks_export.services import export_batch_start, export_run
from tests.factories import CustomerFactory, issued_invoice, pay

from .conftest import drain

pytestmark = pytest.mark.django_db
PENDING = QuickBooksRequest.State.PENDING


def test_stale_customer_create_is_not_adopted_onto_another_party_of_the_same_name(qbo_company):
    client = QuickBooksClient.for_current_connection()
    other = client.create(
        "Customer",
        {"DisplayName": "Jane Doe", "PrimaryEmailAddr": {"Address": "someone-else@example.com"}},
        request_id="review-other-party-1",
    )
    ours = CustomerFactory(display_name="Jane Doe", email="jane@example.com")
    payment = pay(issued_invoice(customer=ours, amount="100.00"), "100.00")

    # QuickBooks does not answer the customer create (503 on every try of this run): the request stays pending.
    qbo_company.server.add_fault("503", count=20, path_contains="/customer", method="POST")
    export_batch_start(payments=[payment.pk], selection="one", source="command")
    assert export_run(realm_id=qbo_company.realm_id, run_seconds=0.5, sleep=lambda s: None) == "backoff"
    qbo_company.server.clear_faults()
    pending = QuickBooksRequest.objects.get(state=PENDING, kind="customer")
    assert pending.payload["DisplayName"] == "Jane Doe"

    # The company is paused for a day (say it needed reconnecting): the request is now old.
    QuickBooksRequest.objects.filter(state=PENDING).update(created_at=timezone.now() - timedelta(days=1))
    drain(qbo_company.realm_id)

    mapping = QuickBooksMapping.objects.get(kind="customer", local_key=str(ours.pk))
    payment.refresh_from_db()
    assert payment.export_status == Payment.ExportStatus.EXPORTED
    # The ordinary path would never link jane@ to someone-else@ (mappers.is_same_party); the adoption does.
    assert mapping.qbo_id != str(other["Id"]), "our customer was adopted onto another party's QuickBooks customer"
    looked_up = QuickBooksRequest.objects.get(response__looked_up=True, payload__DisplayName="Jane Doe")
    assert looked_up.response["not_found"] == [f"customer {ours.pk}"]  # not adopted: created afresh instead
    created = [c for c in qbo_company.entities("Customer") if str(c["Id"]) == mapping.qbo_id]
    assert created and created[0]["PrimaryEmailAddr"]["Address"] == "jane@example.com"


def test_stale_customer_create_whose_customer_did_land_is_adopted(qbo_company):
    """The exact payload (name and e-mail) is ours: QuickBooks made it and we never saw the answer; adopted, not
    created twice."""
    ours = CustomerFactory(display_name="Sam Lee", email="sam@example.com")
    payment = pay(issued_invoice(customer=ours, amount="100.00"), "100.00")
    qbo_company.server.add_fault("503", count=20, path_contains="/customer", method="POST")
    export_batch_start(payments=[payment.pk], selection="one", source="command")
    assert export_run(realm_id=qbo_company.realm_id, run_seconds=0.5, sleep=lambda s: None) == "backoff"
    qbo_company.server.clear_faults()
    pending = QuickBooksRequest.objects.get(state=PENDING, kind="customer")
    landed = QuickBooksClient.for_current_connection().create("Customer", pending.payload, request_id="landed-by-hand")
    QuickBooksRequest.objects.filter(state=PENDING).update(created_at=timezone.now() - timedelta(days=1))
    drain(qbo_company.realm_id)

    assert QuickBooksMapping.objects.get(kind="customer", local_key=str(ours.pk)).qbo_id == str(landed["Id"])
    assert len([c for c in qbo_company.entities("Customer") if c["DisplayName"] == "Sam Lee"]) == 1


def test_stale_item_create_is_not_adopted_onto_an_inventory_item_of_the_same_name(qbo_company):
    """Our Service item create goes unanswered; meanwhile someone keys an Inventory item of that very name in
    QuickBooks. The lookup a day later must not adopt it (an Inventory item moves stock and cost of goods)."""
    client = QuickBooksClient.for_current_connection()
    payment = pay(issued_invoice(amount="100.00"), "100.00")
    qbo_company.server.add_fault("503", count=20, path_contains="/item", method="POST")
    export_batch_start(payments=[payment.pk], selection="one", source="command")
    assert export_run(realm_id=qbo_company.realm_id, run_seconds=0.5, sleep=lambda s: None) == "backoff"
    qbo_company.server.clear_faults()
    pending = QuickBooksRequest.objects.get(state=PENDING, kind="item")
    assert pending.payload["Type"] == "Service"

    def account(kind: str) -> str:
        return str(client.create("Account", {"Name": f"Stock {kind}", "AccountType": kind}, request_id=kind)["Id"])

    stock = client.create(
        "Item",
        {
            "Name": pending.payload["Name"],
            "Type": "Inventory",
            "IncomeAccountRef": {"value": "4"},
            "ExpenseAccountRef": {"value": account("Cost of Goods Sold")},
            "AssetAccountRef": {"value": account("Other Current Asset")},
            "InvStartDate": "2026-10-01",
            "QtyOnHand": 5,
        },
        request_id="review-stock-1",
    )
    QuickBooksRequest.objects.filter(state=PENDING).update(created_at=timezone.now() - timedelta(days=1))
    drain(qbo_company.realm_id)

    payment.refresh_from_db()
    assert payment.export_status == Payment.ExportStatus.EXPORTED
    mapping = QuickBooksMapping.objects.get(kind="item", local_key="labor")
    assert mapping.qbo_id != str(stock["Id"]), "our service was adopted onto an Inventory item"
    [ours] = [i for i in qbo_company.entities("Item") if str(i["Id"]) == mapping.qbo_id]
    assert ours["Type"] == "Service"
