"""QuickBooks' throttles: requests per minute, requests in flight, batch requests per minute, and latency."""

import json
import threading
import time

import pytest
from quickbooks.exceptions import QuickbooksException
from quickbooks.objects.customer import Customer

from quickbooks_export.sandbox import ManualClock

from .clients import auth_client, connect, qb_client


def _throttled(call) -> bool:
    try:
        call()
    except QuickbooksException as error:
        assert error.error_code == 10000  # python-quickbooks: the gateway's lowercase fault
        assert "429" in error.message
        return True
    return False


def test_requests_per_minute_gives_429_and_the_window_slides(qbo_sandbox_factory):
    clock = ManualClock()
    server = qbo_sandbox_factory(clock=clock, requests_per_minute=3)
    qbo = connect(server)
    count = lambda: Customer.count(qb=qbo.qb)  # noqa: E731

    assert [_throttled(count) for _ in range(5)] == [False, False, False, True, True]
    clock.advance(30)
    assert _throttled(count)
    clock.advance(31)  # the first three left the 60 s window; the throttled ones never entered it
    assert [_throttled(count) for _ in range(4)] == [False, False, False, True]
    assert server.stats(qbo.realm_id)["throttled"] == 4
    assert server.stats(qbo.realm_id)["requests"] == 6


def test_429_body_is_the_gateways_throttle_fault(qbo_sandbox_factory):
    qbo = connect(qbo_sandbox_factory(requests_per_minute=1))
    url = f"{qbo.server.api_url}/company/{qbo.realm_id}/companyinfo/{qbo.realm_id}"
    qbo.qb.process_request("GET", url, headers={})

    answer = qbo.qb.process_request("GET", url, headers={})

    assert answer.status_code == 429
    error = answer.json()["fault"]["error"][0]
    assert error["message"] == "message=ThrottleExceeded; errorCode=003001; statusCode=429"
    assert error["code"] == "3001"


def test_limits_are_per_company(qbo_sandbox_factory):
    server = qbo_sandbox_factory(requests_per_minute=1)
    first, second = connect(server), connect(server)
    Customer.count(qb=first.qb)

    assert _throttled(lambda: Customer.count(qb=first.qb))
    assert not _throttled(lambda: Customer.count(qb=second.qb))


def test_more_requests_in_flight_than_allowed_get_429(qbo_sandbox_factory):
    server = qbo_sandbox_factory(max_in_flight=2, latency_ms=400)
    qbo = connect(server)
    clients = [
        qb_client(
            server,
            auth_client(server, access_token=qbo.auth_client.access_token, refresh_token=qbo.auth_client.refresh_token),
            qbo.realm_id,
        )
        for _ in range(4)
    ]
    start = threading.Barrier(4)
    outcomes: list[bool] = []

    def call(qb) -> None:
        start.wait()
        outcomes.append(_throttled(lambda: Customer.count(qb=qb)))

    threads = [threading.Thread(target=call, args=(qb,)) for qb in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert len(outcomes) == 4
    assert outcomes.count(True) >= 1
    assert outcomes.count(False) >= 2


def test_batch_requests_per_minute_give_429_while_single_requests_pass(qbo_sandbox_factory):
    qbo = connect(qbo_sandbox_factory(batch_per_minute=2))
    body = json.dumps({"BatchItemRequest": [{"bId": "q", "Query": "SELECT COUNT(*) FROM Customer"}]})
    batch = lambda: qbo.qb.batch_operation(body)  # noqa: E731

    assert [_throttled(batch) for _ in range(3)] == [False, False, True]
    assert not _throttled(lambda: Customer.count(qb=qbo.qb))


def test_latency_is_added_to_every_api_answer(qbo_sandbox_factory):
    qbo = connect(qbo_sandbox_factory(latency_ms=150))

    started = time.perf_counter()
    Customer.count(qb=qbo.qb)

    assert time.perf_counter() - started >= 0.15


@pytest.mark.parametrize("limit", ["requests_per_minute", "max_in_flight", "batch_per_minute"])
def test_default_limits_are_quickbooks_production_values(qbo_sandbox, limit):
    assert (
        getattr(qbo_sandbox.config, limit)
        == {"requests_per_minute": 500, "max_in_flight": 10, "batch_per_minute": 40}[limit]
    )
