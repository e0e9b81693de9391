"""Customer details changed in QuickBooks: found (by webhook or by the sweep), listed side by side, and "Accept
QuickBooks' version" copies them into FieldSync without sending anything back to QuickBooks."""

import pytest
from django.urls import reverse
from django_q.models import OrmQ

from billing import services as billing_services
from quickbooks_export.cdc import cdc_sweep
from quickbooks_export.changes import webhook_events_check
from quickbooks_export.models import QuickBooksChange, QuickBooksEvent, QuickBooksMapping, QuickBooksMappingAudit
from quickbooks_export.sandbox.config import ManualClock
from quickbooks_export.updates import PUSH_TASK, customer_update_push
from tests.factories import CustomerFactory, issued_invoice, pay
from tests.quickbooks_export.export.conftest import connect, export

pytestmark = pytest.mark.django_db
URL = reverse("exports:changes")


@pytest.fixture
def exported_customer(qbo_company):
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


def qbo_id(customer) -> str:
    return QuickBooksMapping.objects.get(kind="customer", local_key=str(customer.pk)).qbo_id


def notified(company, customer, n: int) -> None:
    QuickBooksEvent.objects.create(
        event_id=f"c{customer.pk}-{n}",
        realm_id=company.realm_id,
        entity="Customer",
        qbo_id=qbo_id(customer),
        operation="Update",
    )
    webhook_events_check()


def edited_in_quickbooks(company, customer) -> dict:
    """The bookkeeper corrects the phone and the city in QuickBooks."""
    return company.server.edit_entity(
        company.realm_id,
        "Customer",
        qbo_id(customer),
        {
            "PrimaryPhone": {"FreeFormNumber": "555-0177"},
            "BillAddr": {
                "Line1": "1 Main St",
                "City": "Round Rock",
                "CountrySubDivisionCode": "TX",
                "PostalCode": "78701",
                "Country": "US",
            },
        },
    )


def pushes_queued() -> list:
    return [row.task["args"] for row in OrmQ.objects.all() if row.task["func"] == PUSH_TASK]


def test_details_changed_in_quickbooks_are_listed_side_by_side(office_client, qbo_company, exported_customer):
    edited_in_quickbooks(qbo_company, exported_customer)
    notified(qbo_company, exported_customer, 1)
    notified(qbo_company, exported_customer, 2)  # a second notification of the same version: one change

    [change] = QuickBooksChange.objects.all()
    assert (change.change, change.kind, change.local_key) == ("details", "customer", str(exported_customer.pk))
    assert {k: v for k, v in change.theirs.items() if k != "sync_token"} == {
        "phone": "555-0177",
        "billing_city": "Round Rock",
    }
    assert change.ours == {"phone": "555-0100", "billing_city": "Austin"}
    html = office_client.get(URL).content.decode()
    assert "Customer details changed in QuickBooks: customer" in html
    assert "<dt>Phone</dt><dd>555-0100</dd>" in html and "<dt>Phone</dt><dd>555-0177</dd>" in html
    assert "Accept QuickBooks' version</button>" in html


def test_accept_copies_them_into_fieldsync_and_sends_nothing_back(
    office_client, qbo_company, exported_customer, django_capture_on_commit_callbacks
):
    edited = edited_in_quickbooks(qbo_company, exported_customer)
    notified(qbo_company, exported_customer, 1)
    change = QuickBooksChange.objects.get()

    with django_capture_on_commit_callbacks(execute=True):
        response = office_client.post(reverse("exports:change_action", args=[change.pk, "accept"]), {"note": "ok"})

    assert response.status_code == 302
    exported_customer.refresh_from_db()
    assert (exported_customer.phone, exported_customer.billing_city) == ("555-0177", "Round Rock")
    assert exported_customer.email == "maria@example.com"  # not changed in QuickBooks: kept
    assert pushes_queued() == []  # the export app was not told: nothing goes back
    [in_quickbooks] = [c for c in qbo_company.entities("Customer") if c["Id"] == edited["Id"]]
    assert in_quickbooks["SyncToken"] == edited["SyncToken"]
    assert QuickBooksMappingAudit.objects.get(action="accept_customer").by.username == "dana"
    change.refresh_from_db()
    assert (change.state, change.resolution) == ("resolved", "accept")

    notified(qbo_company, exported_customer, 2)  # a late notification of the same edit
    cdc_sweep()
    assert QuickBooksChange.objects.count() == 1


def test_fieldsyncs_own_update_is_not_listed(qbo_company, exported_customer):
    billing_services.customer_update(customer=exported_customer, phone="555-0199")
    assert customer_update_push(customer_id=exported_customer.pk) == "updated"

    notified(qbo_company, exported_customer, 1)
    cdc_sweep()

    assert not QuickBooksChange.objects.exists()


def test_the_sweep_finds_details_changed_with_no_webhook(qbo_sandbox_factory, settings):
    clock = ManualClock()  # QuickBooks' change times are whole seconds: move on before the edit
    company = connect(qbo_sandbox_factory(clock=clock), settings)
    customer = CustomerFactory(phone="555-0100", billing_line1="1 Main St", billing_city="Austin")
    export(pay(issued_invoice(customer=customer, amount="100.00"), "100.00"))
    clock.advance(5)
    edited_in_quickbooks(company, customer)

    cdc_sweep()

    change = QuickBooksChange.objects.get()
    assert (change.change, change.found_by, change.theirs["phone"]) == ("details", "cdc", "555-0177")


def test_the_customers_of_one_round_of_notifications_are_read_in_one_request(qbo_company):
    customers = [CustomerFactory(phone=f"555-010{n}") for n in range(3)]
    export(*[pay(issued_invoice(customer=c, amount="10.00"), "10.00") for c in customers])
    for customer in customers:
        qbo_company.server.edit_entity(
            qbo_company.realm_id, "Customer", qbo_id(customer), {"PrimaryPhone": {"FreeFormNumber": "555-0999"}}
        )
        QuickBooksEvent.objects.create(
            event_id=f"r{customer.pk}",
            realm_id=qbo_company.realm_id,
            entity="Customer",
            qbo_id=qbo_id(customer),
            operation="Update",
        )
    requests_before = qbo_company.server.stats(qbo_company.realm_id)["requests"]

    webhook_events_check()

    assert qbo_company.server.stats(qbo_company.realm_id)["requests"] - requests_before == 1
    assert QuickBooksChange.objects.filter(change="details").count() == 3


def test_when_quickbooks_wins_its_details_are_taken_at_once(qbo_company, exported_customer):
    from quickbooks_export.models import QuickBooksMappingSettings

    QuickBooksMappingSettings.objects.update_or_create(
        realm_id=qbo_company.realm_id, defaults={"customer_details_winner": "quickbooks"}
    )
    edited = edited_in_quickbooks(qbo_company, exported_customer)
    notified(qbo_company, exported_customer, 1)

    exported_customer.refresh_from_db()
    assert (exported_customer.phone, exported_customer.billing_city) == ("555-0177", "Round Rock")
    [change] = QuickBooksChange.objects.all()
    assert (change.state, change.resolution) == ("resolved", "accept")
    assert "QuickBooks wins" in change.note
    assert pushes_queued() == []  # nothing sent back
    [in_quickbooks] = [c for c in qbo_company.entities("Customer") if c["Id"] == edited["Id"]]
    assert in_quickbooks["SyncToken"] == edited["SyncToken"]
    notified(qbo_company, exported_customer, 2)  # the same version again: nothing new
    assert QuickBooksChange.objects.count() == 1
