"""Batch requests through python-quickbooks' BatchManager and batch_operation."""

import json

import pytest
from quickbooks.batch import BatchManager, batch_create
from quickbooks.exceptions import QuickbooksException
from quickbooks.objects.customer import Customer

from .clients import make_customer


def _customer(name: str) -> Customer:
    customer = Customer()
    customer.DisplayName = name
    return customer


def test_batch_create_of_30_customers(qbo):
    result = batch_create([_customer(f"Batch Customer {n}") for n in range(30)], qb=qbo.qb)

    assert len(result.successes) == 30 and result.faults == []
    assert all(customer.Id for customer in result.successes)
    assert Customer.count(qb=qbo.qb) == 30


def test_batch_items_are_independent(qbo):
    make_customer(qbo.qb, "Taken")

    result = batch_create([_customer("Fresh One"), _customer("TAKEN"), _customer("Fresh Two")], qb=qbo.qb)

    assert sorted(customer.DisplayName for customer in result.successes) == ["Fresh One", "Fresh Two"]
    assert [fault.Error[0].code for fault in result.faults] == ["6240"]
    assert result.faults[0].original_object.DisplayName == "TAKEN"


def test_batch_of_more_than_30_items_is_refused_whole(qbo):
    manager = BatchManager("create", max_request_items=31)

    with pytest.raises(QuickbooksException) as error:
        manager.save([_customer(f"Too Many {n}") for n in range(31)], qb=qbo.qb)

    assert error.value.error_code == 6000
    assert Customer.count(qb=qbo.qb) == 0


def test_batch_mixes_query_update_and_delete_items(qbo):
    customer = make_customer(qbo.qb, "Mixed Co")
    body = {
        "BatchItemRequest": [
            {"bId": "q1", "Query": "SELECT * FROM Customer WHERE DisplayName = 'Mixed Co'"},
            {
                "bId": "u1",
                "operation": "update",
                "Customer": {"Id": customer.Id, "SyncToken": "0", "sparse": True, "Notes": "batched"},
            },
            {"bId": "d1", "operation": "delete", "Invoice": {"Id": "999", "SyncToken": "0"}},
        ]
    }

    answer = qbo.qb.batch_operation(json.dumps(body))

    items = {item["bId"]: item for item in answer["BatchItemResponse"]}
    assert items["q1"]["QueryResponse"]["Customer"][0]["Id"] == customer.Id
    assert items["u1"]["Customer"]["Notes"] == "batched"
    assert items["d1"]["Fault"]["Error"][0]["code"] == "610"
    assert Customer.get(customer.Id, qb=qbo.qb).SyncToken == "1"


def test_batch_with_requestid_is_replayed(qbo):
    url = f"{qbo.server.api_url}/company/{qbo.realm_id}/batch"
    body = json.dumps({"BatchItemRequest": [{"bId": "c1", "operation": "create", "Customer": {"DisplayName": "Z"}}]})

    first = qbo.qb.post(url, body, request_id="batch-1")
    second = qbo.qb.post(url, body, request_id="batch-1")

    assert first == second
    assert Customer.count(qb=qbo.qb) == 1


def test_batch_ids_longer_than_10_characters_are_refused_when_a_requestid_is_given(qbo):
    url = f"{qbo.server.api_url}/company/{qbo.realm_id}/batch"
    body = {"BatchItemRequest": [{"bId": "b" * 11, "operation": "create", "Customer": {"DisplayName": "Y"}}]}

    answer = qbo.qb.post(url, json.dumps(body), request_id="batch-2")

    assert answer["BatchItemResponse"][0]["Fault"]["Error"][0]["code"] == "6000"
    assert Customer.count(qb=qbo.qb) == 0
