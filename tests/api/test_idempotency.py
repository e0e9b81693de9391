"""Idempotency-Key: a retried POST is answered from the first response and never done twice."""

import ast
import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from billing import services
from billing.models import Customer, Payment
from fieldsync.api.idempotency import request_fingerprint
from fieldsync.models import IdempotencyKey
from tests.factories import issued_invoice

from .conftest import Api, make_api, staff_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def invoice(db):
    return issued_invoice(amount="100.00", number="INV-1042")


def payment_body(invoice, amount="100.00", **extra):
    return {"invoice": invoice.number, "amount": amount, "method": "card", "received_on": "2026-11-10", **extra}


def test_a_post_without_an_idempotency_key_is_refused_and_does_nothing(api, invoice):
    response = api.post("payments/", payment_body(invoice), key=None)
    assert response.status_code == 400
    assert response.json()["code"] == "idempotency_key_required"
    assert not Payment.objects.exists()


@pytest.mark.parametrize("key", ["has space", "x" * 256, "naïve"])
def test_an_unusable_idempotency_key_is_refused(api, invoice, key):
    response = api.client.post(
        "/api/v1/payments/",
        payment_body(invoice),
        content_type="application/json",
        headers={**api.headers, "Idempotency-Key": key},
    )
    assert response.status_code == 400
    assert response.json()["code"] == "idempotency_key_invalid"


def test_a_retry_with_the_same_key_and_body_gets_the_first_response_and_records_nothing_new(api, invoice):
    first = api.post("payments/", payment_body(invoice), key="retry-1")
    retry = api.post("payments/", payment_body(invoice), key="retry-1")

    assert first.status_code == retry.status_code == 201
    assert retry.content == first.content
    assert retry["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert Payment.objects.count() == 1


def test_the_body_is_compared_as_json_not_as_bytes(api, invoice):
    first = api.post("payments/", payment_body(invoice), key="k")
    reordered = '{"received_on": "2026-11-10", "method": "card", "amount": "100.00",\n "invoice": "INV-1042"}'
    retry = api.post("payments/", key="k", raw=reordered)
    assert retry.status_code == 201 and retry["Idempotent-Replayed"] == "true"
    assert retry.content == first.content


def test_the_same_key_with_a_different_body_is_refused_with_422(api, invoice):
    api.post("payments/", payment_body(invoice, amount="60.00"), key="k")
    response = api.post("payments/", payment_body(invoice, amount="40.00"), key="k")
    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"
    assert Payment.objects.count() == 1


def test_the_same_key_on_another_endpoint_is_refused_with_422(api, invoice):
    api.post("customers/", {"display_name": "Ann"}, key="k")
    response = api.post("jobs/", {"display_name": "Ann"}, key="k")
    assert response.status_code == 422


def held_claim(client, key: str, body: dict, *, lease_left: timedelta, age: timedelta) -> IdempotencyKey:
    """A key another request claimed for the same payment POST and has not answered yet (its lease ends after
    `lease_left`, negative when it already has)."""
    now = timezone.now()
    return IdempotencyKey.objects.create(
        api_client=client,
        key=key,
        fingerprint=_fingerprint_of("payments/", body),
        method="POST",
        path="/api/v1/payments/",
        claim_token=f"holder-of-{key}",
        locked_until=now + lease_left,
        created_at=now - age,
    )


def test_a_request_still_in_progress_with_the_key_gets_409(invoice):
    """Another request holds the key (claimed, lease alive, no response yet): this one must not run."""
    api, client, _ = make_api()
    body = payment_body(invoice)
    held_claim(client, "busy", body, lease_left=timedelta(minutes=1), age=timedelta(0))
    response = api.post("payments/", body, key="busy")
    assert response.status_code == 409
    assert response.json()["code"] == "idempotency_key_in_progress"
    assert response["Retry-After"] == "1"
    assert not Payment.objects.exists()


def test_a_claim_whose_holder_died_is_taken_over_after_its_lease(invoice):
    """The holder crashed before committing its work (work and response commit together): nothing was done."""
    api, client, _ = make_api()
    body = payment_body(invoice)
    held_claim(client, "orphan", body, lease_left=timedelta(seconds=-1), age=timedelta(minutes=3))
    response = api.post("payments/", body, key="orphan")
    assert response.status_code == 201
    assert Payment.objects.count() == 1
    assert IdempotencyKey.objects.get(key="orphan").state == IdempotencyKey.State.COMPLETED


def test_a_refused_request_is_stored_and_a_retry_gets_the_same_refusal(api, invoice):
    body = payment_body(invoice, amount="150.00")  # more than the 100.00 open
    first = api.post("payments/", body, key="over")
    assert first.status_code == 400 and first.json()["code"] == "over_application"
    retry = api.post("payments/", body, key="over")
    assert retry.status_code == 400 and retry["Idempotent-Replayed"] == "true"
    assert retry.content == first.content
    assert not Payment.objects.exists()


def test_a_server_error_releases_the_key_so_a_retry_does_the_work(api, invoice, monkeypatch):
    real = services.payment_record
    calls = []

    def flaky(**kwargs):
        calls.append(1)
        if len(calls) == 1:
            real(**kwargs)  # writes, then fails: the write must be rolled back with the key released
            raise RuntimeError("database went away")
        return real(**kwargs)

    monkeypatch.setattr(services, "payment_record", flaky)
    api.client.raise_request_exception = False
    first = api.post("payments/", payment_body(invoice), key="flaky")
    assert first.status_code == 500
    assert not Payment.objects.exists()
    assert not IdempotencyKey.objects.filter(key="flaky").exists()

    retry = api.post("payments/", payment_body(invoice), key="flaky")
    assert retry.status_code == 201 and "Idempotent-Replayed" not in retry
    assert Payment.objects.count() == 1


def test_keys_are_scoped_per_client(invoice):
    first_api, _, _ = make_api("field-app")
    second_api, _, _ = make_api("relay")
    assert first_api.post("customers/", {"display_name": "A"}, key="same").status_code == 201
    response = second_api.post("customers/", {"display_name": "A"}, key="same")
    assert response.status_code == 201 and "Idempotent-Replayed" not in response
    assert Customer.objects.filter(display_name="A").count() == 2


def test_every_post_endpoint_requires_an_idempotency_key(api):
    posts = [pattern for pattern in _api_patterns() if hasattr(pattern.callback.view_class, "post")]
    assert len(posts) >= 10
    for pattern in posts:
        assert getattr(pattern.callback.view_class.post, "idempotent", False), pattern.pattern
    path = "/api/v1/" + str(posts[0].pattern).split("v1/")[-1]
    assert api.post(path, {}, key=None).json()["code"] == "idempotency_key_required"


def test_purge_removes_keys_older_than_a_day_only(api):
    api.post("customers/", {"display_name": "Recent"}, key="recent")
    api.post("customers/", {"display_name": "Old"}, key="old")
    IdempotencyKey.objects.filter(key="old").update(created_at=timezone.now() - timedelta(hours=25))

    out = io.StringIO()
    call_command("purge_idempotency_keys", stdout=out)
    assert "Deleted 1" in out.getvalue()
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["recent"]
    with pytest.raises(CommandError, match="at least"):
        call_command("purge_idempotency_keys", "--hours", "2", stdout=io.StringIO())


def _api_patterns():
    def walk(patterns):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns)
            elif isinstance(pattern, URLPattern) and _is_api_view(pattern.callback):
                yield pattern

    return list(walk(get_resolver().url_patterns))


def _is_api_view(callback) -> bool:
    return hasattr(callback, "view_class") and callback.view_class.__module__.startswith("fieldsync.api")


def _fingerprint_of(path, body):
    """The fingerprint the API computes for this request (through the same function)."""
    request = Request(APIRequestFactory().post(f"/api/v1/{path}", body, format="json"), parsers=[JSONParser()])
    return request_fingerprint(request)


def test_staff_keys_work_the_same_way(invoice):
    client = Client()
    client.force_login(staff_user("billing.add_payment"))
    api = Api(client)
    first = api.post("payments/", payment_body(invoice), key="desk-1")
    retry = api.post("payments/", payment_body(invoice), key="desk-1")
    assert first.status_code == 201 and retry["Idempotent-Replayed"] == "true"
    assert IdempotencyKey.objects.get(key="desk-1").user_id is not None
    assert Payment.objects.count() == 1


def test_authentication_and_permissions_come_before_the_key(read_only_api, invoice):
    assert read_only_api.post("payments/", payment_body(invoice), key=None).status_code == 403
    assert not IdempotencyKey.objects.exists()


def test_old_idempotency_keys_are_purged_daily_by_the_worker(db, capsys):
    from django.utils.module_loading import import_string
    from django_q.models import Schedule

    schedule = Schedule.objects.get(name="purge-idempotency-keys")
    assert schedule.schedule_type == Schedule.DAILY and schedule.repeats == -1
    import_string(schedule.func)(*ast.literal_eval(f"({schedule.args},)"))  # what the worker does with it
    assert capsys.readouterr().out.startswith("Deleted 0 idempotency key(s) older than 24 hours")
