"""Which side wins for customer details changed after export, per company (QuickBooksMappingSettings), through the
real client against the sandbox: "ask" (the default), "FieldSync wins", "QuickBooks wins". An empty value never
overwrites either side."""

import pytest

from billing import services as billing_services
from billing.models import Customer
from quickbooks_export.models import (
    QuickBooksMapping,
    QuickBooksMappingAudit,
    QuickBooksMappingSettings,
    QuickBooksRequest,
)
from quickbooks_export.updates import customer_update_push
from tests.factories import CustomerFactory, issued_invoice, pay

from .conftest import export

pytestmark = pytest.mark.django_db
Action = QuickBooksMappingAudit.Action


@pytest.fixture
def exported_customer(qbo_company) -> Customer:
    customer = CustomerFactory(
        display_name="Maria Gonzalez",
        email="maria@example.com",
        phone="555-0100",
        billing_line1="1 Main St",
        billing_city="Austin",
        billing_region="TX",
        billing_postal_code="78701",
    )
    export(pay(issued_invoice(customer=customer, amount="100.00"), "100.00"))
    return customer


def winner(company, value: str) -> None:
    QuickBooksMappingSettings.objects.update_or_create(
        realm_id=company.realm_id, defaults={"customer_details_winner": value}
    )


def qbo_customer(company, customer) -> dict:
    mapping = QuickBooksMapping.objects.get(kind="customer", local_key=str(customer.pk))
    return next(c for c in company.entities("Customer") if c["Id"] == mapping.qbo_id)


def by_hand(company, customer, changes: dict) -> None:
    company.server.edit_entity(company.realm_id, "Customer", qbo_customer(company, customer)["Id"], changes)


def test_ask_is_the_default_and_keeps_both_sides_changes_for_a_person(qbo_company, exported_customer):
    assert QuickBooksMappingSettings.objects.get(realm_id=qbo_company.realm_id).customer_details_winner == "ask"
    by_hand(qbo_company, exported_customer, {"PrimaryPhone": {"FreeFormNumber": "555-7777"}})
    billing_services.customer_update(customer=exported_customer, phone="555-0199")

    assert customer_update_push(customer_id=exported_customer.pk) == "conflict"

    assert qbo_customer(qbo_company, exported_customer)["PrimaryPhone"]["FreeFormNumber"] == "555-7777"
    assert Customer.objects.get(pk=exported_customer.pk).phone == "555-0199"


def test_fieldsync_wins_sends_its_detail_over_a_change_made_in_quickbooks(qbo_company, exported_customer):
    winner(qbo_company, "fieldsync")
    by_hand(qbo_company, exported_customer, {"PrimaryPhone": {"FreeFormNumber": "555-7777"}, "Notes": "VIP"})
    billing_services.customer_update(customer=exported_customer, phone="555-0199", billing_line1="")

    assert customer_update_push(customer_id=exported_customer.pk) == "updated"

    row = qbo_customer(qbo_company, exported_customer)
    assert row["PrimaryPhone"]["FreeFormNumber"] == "555-0199"
    assert row["Notes"] == "VIP"  # not one of FieldSync's details: untouched
    assert row["BillAddr"]["Line1"] == "1 Main St"  # empty in FieldSync: never blanks QuickBooks
    [audit] = QuickBooksMappingAudit.objects.filter(action=Action.UPDATE_CUSTOMER)
    assert "FieldSync wins: Maria Gonzalez was also changed in QuickBooks (PrimaryPhone)" in audit.note


def test_quickbooks_wins_never_sends_and_takes_quickbooks_changes_into_fieldsync(qbo_company, exported_customer):
    winner(qbo_company, "quickbooks")
    by_hand(qbo_company, exported_customer, {"PrimaryEmailAddr": {"Address": "Maria.G@Example.com"}})
    billing_services.customer_update(customer=exported_customer, phone="555-0199")

    assert customer_update_push(customer_id=exported_customer.pk) == "quickbooks_wins"

    row = qbo_customer(qbo_company, exported_customer)
    assert row["PrimaryPhone"]["FreeFormNumber"] == "555-0100"  # FieldSync's change was not sent
    customer = Customer.objects.get(pk=exported_customer.pk)
    assert (customer.email, customer.phone) == ("maria.g@example.com", "555-0199")
    assert not QuickBooksRequest.objects.filter(kind="update").exists()
    [audit] = QuickBooksMappingAudit.objects.filter(action=Action.QUICKBOOKS_WINS)
    assert audit.after == {"email": "maria.g@example.com"} and audit.before == {"email": "maria@example.com"}
    assert "FieldSync's change of PrimaryPhone was not sent" in audit.note


def test_quickbooks_wins_never_blanks_fieldsync_with_an_empty_quickbooks_detail(qbo_company, exported_customer):
    winner(qbo_company, "quickbooks")
    by_hand(
        qbo_company,
        exported_customer,
        {"CompanyName": "Gonzalez Plumbing", "PrimaryPhone": {"FreeFormNumber": ""}},
    )
    billing_services.customer_update(customer=exported_customer, billing_city="Round Rock")

    assert customer_update_push(customer_id=exported_customer.pk) == "quickbooks_wins"

    customer = Customer.objects.get(pk=exported_customer.pk)
    assert customer.company_name == "Gonzalez Plumbing"
    assert customer.phone == "555-0100"  # emptied in QuickBooks: FieldSync keeps its own
    assert customer.billing_city == "Round Rock"
    assert qbo_customer(qbo_company, exported_customer)["BillAddr"]["City"] == "Austin"


def test_quickbooks_wins_with_nothing_changed_there_keeps_fieldsyncs_change_unsent(qbo_company, exported_customer):
    winner(qbo_company, "quickbooks")
    billing_services.customer_update(customer=exported_customer, phone="555-0199")

    assert customer_update_push(customer_id=exported_customer.pk) == "quickbooks_wins"

    assert Customer.objects.get(pk=exported_customer.pk).phone == "555-0199"
    assert qbo_customer(qbo_company, exported_customer)["PrimaryPhone"]["FreeFormNumber"] == "555-0100"
    [audit] = QuickBooksMappingAudit.objects.filter(action=Action.QUICKBOOKS_WINS)
    assert audit.after == {} and "change of PrimaryPhone was not sent" in audit.note
