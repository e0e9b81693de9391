"""Two identical requests at the same moment on PostgreSQL: real threads, each with its own database connection.

A client that times out and retries while its first request is still running must never record a second payment,
and both requests must get answers that agree: both 201 with the same body (the second waited and got the stored
response), or one 201 and one 409 (the second came while the first was still running).
"""

import time

import pytest
from django.test import Client

from billing import services
from billing.models import Payment
from fieldsync.models import IdempotencyKey
from tests.concurrency import run_at_once
from tests.factories import issued_invoice

from .conftest import Api, make_api

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def post_payment(token: str, invoice, key: str):
    def call():
        api = Api(Client(), {"Authorization": f"Bearer {token}"})
        body = {"invoice": invoice.number, "amount": "100.00", "method": "card", "received_on": "2026-11-10"}
        return api.post("payments/", body, key=key)

    return call


def assert_consistent(responses):
    statuses = sorted(r.status_code for r in responses)
    assert statuses in ([201, 201], [201, 409]), [(r.status_code, r.content) for r in responses]
    created = [r for r in responses if r.status_code == 201]
    if len(created) == 2:
        assert created[0].content == created[1].content
        assert sum(r.get("Idempotent-Replayed") == "true" for r in created) == 1
    else:
        [conflict] = [r for r in responses if r.status_code == 409]
        assert conflict.json()["code"] == "idempotency_key_in_progress"


def test_two_identical_requests_racing_record_one_payment():
    _, _, token = make_api()
    for attempt in range(5):  # a race won by luck once must not pass: repeat it
        invoice = issued_invoice(amount="100.00")
        call = post_payment(token, invoice, key=f"race-{attempt}")

        responses = run_at_once(call, call)

        assert not [r for r in responses if isinstance(r, Exception)], responses
        assert_consistent(responses)
        assert Payment.objects.filter(applications__invoice=invoice).count() == 1
        assert IdempotencyKey.objects.get(key=f"race-{attempt}").state == IdempotencyKey.State.COMPLETED


def test_a_retry_while_the_first_request_is_still_running_gets_409_then_the_stored_response(monkeypatch):
    real = services.payment_record

    def slow(**kwargs):
        payment = real(**kwargs)
        time.sleep(1.0)  # the payment is written but not committed yet
        return payment

    monkeypatch.setattr(services, "payment_record", slow)
    _, _, token = make_api()
    invoice = issued_invoice(amount="100.00")
    call = post_payment(token, invoice, key="slow")

    first, second = run_at_once(call, call, stagger=0.3)

    assert first.status_code == 201
    assert second.status_code == 409 and second.json()["code"] == "idempotency_key_in_progress"
    later = post_payment(token, invoice, key="slow")()
    assert later.status_code == 201 and later["Idempotent-Replayed"] == "true"
    assert later.content == first.content
    assert Payment.objects.count() == 1
