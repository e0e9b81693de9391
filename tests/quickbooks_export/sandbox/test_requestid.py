"""requestid: a repeated id on the same company gets the original answer and performs nothing again."""

import json
from decimal import Decimal

import pytest
import requests
from quickbooks.exceptions import QuickbooksException
from quickbooks.objects.customer import Customer
from quickbooks.objects.invoice import Invoice

from quickbooks_export.sandbox import ManualClock

from .clients import connect, make_customer, make_invoice, make_item, make_payment, payment_object


def test_same_requestid_returns_the_original_object_and_creates_once(qbo):
    first = make_customer(qbo.qb, "Replay Co", request_id="cust-1")

    # Even a different body gets the original answer: the id names the request, not its content.
    second = make_customer(qbo.qb, "Something Else", request_id="cust-1")

    assert (second.Id, second.DisplayName) == (first.Id, "Replay Co")
    assert [c.DisplayName for c in Customer.all(qb=qbo.qb)] == ["Replay Co"]
    assert qbo.server.stats(qbo.realm_id)["replayed"] == 1


def test_a_fault_answer_is_replayed_too(qbo):
    make_customer(qbo.qb, "Taken Name")

    with pytest.raises(QuickbooksException) as first:
        make_customer(qbo.qb, "Taken Name", request_id="dup-1")
    with pytest.raises(QuickbooksException) as again:
        make_customer(qbo.qb, "A Free Name", request_id="dup-1")

    assert first.value.error_code == again.value.error_code == 6240
    assert [c.DisplayName for c in Customer.all(qb=qbo.qb)] == ["Taken Name"]


def test_requestids_are_per_company(qbo):
    other = connect(qbo.server)

    mine = make_customer(qbo.qb, "Mine", request_id="shared-id")
    theirs = make_customer(other.qb, "Theirs", request_id="shared-id")

    assert theirs.DisplayName == "Theirs"
    assert Customer.count(qb=other.qb) == 1 and mine.DisplayName == "Mine"


def test_requestid_longer_than_50_characters_is_refused(qbo):
    with pytest.raises(QuickbooksException) as error:
        make_customer(qbo.qb, "Long Id Co", request_id="x" * 51)

    assert error.value.error_code == 6000
    assert "50 characters" in error.value.detail
    assert Customer.count(qb=qbo.qb) == 0
    make_customer(qbo.qb, "Long Id Co", request_id="x" * 50)


def test_a_throttled_request_does_not_consume_its_requestid(qbo_sandbox_factory):
    clock = ManualClock()
    server = qbo_sandbox_factory(clock=clock, requests_per_minute=2)
    qbo = connect(server)
    Customer.count(qb=qbo.qb)
    Customer.count(qb=qbo.qb)

    with pytest.raises(QuickbooksException) as throttled:
        make_customer(qbo.qb, "Throttled Co", request_id="after-429")
    assert "429" in throttled.value.message

    clock.advance(61)
    created = make_customer(qbo.qb, "Throttled Co", request_id="after-429")

    assert created.Id
    assert server.stats(qbo.realm_id)["replayed"] == 0


def test_an_injected_server_error_does_not_consume_the_requestid(qbo):
    qbo.server.add_fault("500", realm_id=qbo.realm_id)

    with pytest.raises(QuickbooksException) as error:
        make_customer(qbo.qb, "After 500 Co", request_id="after-500")
    assert error.value.error_code == 10000
    assert Customer.count(qb=qbo.qb) == 0

    assert make_customer(qbo.qb, "After 500 Co", request_id="after-500").Id


def test_retry_after_a_dropped_answer_returns_the_committed_payment_once(qbo):
    customer = make_customer(qbo.qb, "Dropped Co")
    invoice = make_invoice(qbo.qb, customer, make_item(qbo.qb), "100")
    qbo.server.add_fault("drop_after_commit", path_contains="/payment")

    with pytest.raises(requests.exceptions.ConnectionError):
        make_payment(qbo.qb, customer, "60", {invoice.Id: "60"}, request_id="pay-42")
    committed = qbo.server.entities(qbo.realm_id, "Payment")
    assert len(committed) == 1  # performed even though the client never heard back

    retried = make_payment(qbo.qb, customer, "60", {invoice.Id: "60"}, request_id="pay-42")

    assert retried.Id == committed[0]["Id"]
    assert len(qbo.server.entities(qbo.realm_id, "Payment")) == 1
    assert Invoice.get(invoice.Id, qb=qbo.qb).Balance == Decimal("40")
    assert qbo.server.stats(qbo.realm_id)["dropped"] == 1


def test_without_a_requestid_the_retry_after_a_dropped_answer_posts_twice(qbo):
    customer = make_customer(qbo.qb, "Double Post Co")
    qbo.server.add_fault("drop_after_commit", path_contains="/payment")

    with pytest.raises(requests.exceptions.ConnectionError):
        payment_object(customer.Id, "25").save(qb=qbo.qb)
    payment_object(customer.Id, "25").save(qb=qbo.qb)

    assert len(qbo.server.entities(qbo.realm_id, "Payment")) == 2


def test_requestid_replay_applies_to_updates(qbo):
    customer = make_customer(qbo.qb, "Update Replay Co")
    customer.Notes = "first"
    updated = customer.save(qb=qbo.qb, request_id="upd-1")

    again = customer.save(qb=qbo.qb, request_id="upd-1")  # same stale SyncToken: replayed, not a 5010

    assert again.SyncToken == updated.SyncToken == "1"


def test_batch_requestid_is_limited_to_36_characters(qbo):
    url = f"{qbo.server.api_url}/company/{qbo.realm_id}/batch"
    body = {"BatchItemRequest": [{"bId": "b1", "Query": "SELECT COUNT(*) FROM Customer"}]}

    with pytest.raises(QuickbooksException) as error:
        qbo.qb.post(url, json.dumps(body), request_id="y" * 37)

    assert error.value.error_code == 6000
    assert "BatchItemResponse" in qbo.qb.post(url, json.dumps(body), request_id="y" * 36)
