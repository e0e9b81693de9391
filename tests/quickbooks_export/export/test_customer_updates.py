"""Changes after export: a customer's details edited in FieldSync reach QuickBooks as a sparse update, never
overwriting what someone changed in QuickBooks, never blanking a QuickBooks field."""

import pytest
from django_q.models import OrmQ

from billing import services as billing_services
from quickbooks_export.errors import QuickBooksError
from quickbooks_export.models import QuickBooksMapping, QuickBooksMappingAudit, QuickBooksRequest
from quickbooks_export.updates import PUSH_TASK, customer_update_push
from tests.factories import CustomerFactory, issued_invoice, pay

from .conftest import export

pytestmark = pytest.mark.django_db
Action = QuickBooksMappingAudit.Action


@pytest.fixture
def exported_customer(qbo_company):
    customer = CustomerFactory(
        display_name="Maria Gonzalez",
        email="maria@example.com",
        phone="555-0100",
        billing_line1="1 Main St",
        billing_line2="Suite 2",
        billing_city="Austin",
        billing_region="TX",
        billing_postal_code="78701",
    )
    export(pay(issued_invoice(customer=customer, amount="100.00"), "100.00"))
    return customer


def qbo_customer(company, customer) -> dict:
    mapping = QuickBooksMapping.objects.get(kind="customer", local_key=str(customer.pk))
    return next(c for c in company.entities("Customer") if c["Id"] == mapping.qbo_id)


def edit(customer, **changes):
    return billing_services.customer_update(customer=customer, **changes)


def queued_pushes() -> list:
    return [row.task["args"] for row in OrmQ.objects.all() if row.task["func"] == PUSH_TASK]


def test_a_change_is_sent_as_a_sparse_update_and_an_empty_value_never_blanks_quickbooks(
    qbo_company, exported_customer, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        edit(exported_customer, phone="555-0199", billing_line2="")
    assert queued_pushes() == [(exported_customer.pk,)]

    assert customer_update_push(customer_id=exported_customer.pk) == "updated"

    row = qbo_customer(qbo_company, exported_customer)
    assert row["PrimaryPhone"]["FreeFormNumber"] == "555-0199"
    assert row["BillAddr"]["Line1"] == "1 Main St"
    assert row["BillAddr"]["Line2"] == "Suite 2"  # empty in FieldSync: QuickBooks keeps it
    assert row["PrimaryEmailAddr"]["Address"] == "maria@example.com"
    [request] = QuickBooksRequest.objects.filter(kind="update")
    assert request.state == "done" and request.payload["sparse"] is True
    assert set(request.payload) == {"Id", "SyncToken", "sparse", "PrimaryPhone"}
    mapping = QuickBooksMapping.objects.get(kind="customer", local_key=str(exported_customer.pk))
    assert mapping.sync_token == row["SyncToken"]
    assert QuickBooksMappingAudit.objects.filter(action=Action.UPDATE_CUSTOMER).count() == 1
    assert customer_update_push(customer_id=exported_customer.pk) == "unchanged"  # run twice: nothing more sent
    assert QuickBooksRequest.objects.filter(kind="update").count() == 1


def test_a_customer_changed_in_quickbooks_elsewhere_gets_only_our_field_at_its_current_synctoken(
    qbo_company, exported_customer
):
    before = qbo_customer(qbo_company, exported_customer)
    qbo_company.server.edit_entity(qbo_company.realm_id, "Customer", before["Id"], {"Notes": "Gate code 1234"})
    edit(exported_customer, email="maria@newmail.com")

    assert customer_update_push(customer_id=exported_customer.pk) == "updated"

    row = qbo_customer(qbo_company, exported_customer)
    assert row["PrimaryEmailAddr"]["Address"] == "maria@newmail.com"
    assert row["Notes"] == "Gate code 1234"  # what the person typed in QuickBooks stays
    assert int(row["SyncToken"]) == int(before["SyncToken"]) + 2


def test_a_detail_changed_on_both_sides_is_not_overwritten_and_is_recorded_for_a_person(qbo_company, exported_customer):
    qbo_id = qbo_customer(qbo_company, exported_customer)["Id"]
    qbo_company.server.edit_entity(
        qbo_company.realm_id, "Customer", qbo_id, {"PrimaryPhone": {"FreeFormNumber": "555-7777"}}
    )
    edit(exported_customer, phone="555-0199")

    assert customer_update_push(customer_id=exported_customer.pk) == "conflict"

    assert qbo_customer(qbo_company, exported_customer)["PrimaryPhone"]["FreeFormNumber"] == "555-7777"
    assert not QuickBooksRequest.objects.filter(kind="update").exists()
    [audit] = QuickBooksMappingAudit.objects.filter(action=Action.CHANGE_CONFLICT)
    assert "was changed in QuickBooks since FieldSync last sent it (PrimaryPhone)" in audit.note


def test_a_customer_not_in_quickbooks_sends_nothing(qbo_company, django_capture_on_commit_callbacks):
    customer = CustomerFactory()
    with django_capture_on_commit_callbacks(execute=True):
        edit(customer, phone="555-0101")

    assert queued_pushes() == []
    assert customer_update_push(customer_id=customer.pk) == "not_exported"


def test_a_stale_synctoken_at_send_time_is_read_and_compared_again_not_overwritten(
    qbo_company, exported_customer, monkeypatch
):
    """Someone edits the customer in QuickBooks between FieldSync's read and its write: QuickBooks answers 5010."""
    from quickbooks_export.client import QuickBooksClient

    real_read, edited = QuickBooksClient.read, []

    def read_then_someone_edits(self, entity, id):
        row = real_read(self, entity, id)
        if not edited:
            edited.append(qbo_company.server.edit_entity(qbo_company.realm_id, "Customer", id, {"Notes": "VIP"}))
        return row

    monkeypatch.setattr(QuickBooksClient, "read", read_then_someone_edits)
    edit(exported_customer, phone="555-0199")

    assert customer_update_push(customer_id=exported_customer.pk) == "updated"

    row = qbo_customer(qbo_company, exported_customer)
    assert (row["PrimaryPhone"]["FreeFormNumber"], row["Notes"]) == ("555-0199", "VIP")
    states = sorted(QuickBooksRequest.objects.filter(kind="update").values_list("state", "last_error"))
    assert states == [("done", ""), ("failed", "5010: changed in QuickBooks meanwhile; compared again")]


def test_a_lost_answer_is_resent_unchanged_and_updates_once(qbo_company, exported_customer):
    edit(exported_customer, phone="555-0199")
    qbo_company.server.add_fault("drop_after_commit", count=1, path_contains="/customer", method="POST")

    with pytest.raises(QuickBooksError) as excinfo:  # the connection dropped: QuickBooks' answer never came
        customer_update_push(customer_id=exported_customer.pk)
    assert excinfo.value.retryable
    [request] = QuickBooksRequest.objects.filter(kind="update")
    assert request.state == "pending"
    token_after_first = qbo_customer(qbo_company, exported_customer)["SyncToken"]

    assert customer_update_push(customer_id=exported_customer.pk) == "updated"

    request.refresh_from_db()
    assert request.state == "done" and QuickBooksRequest.objects.filter(kind="update").count() == 1
    assert qbo_customer(qbo_company, exported_customer)["SyncToken"] == token_after_first  # performed once
