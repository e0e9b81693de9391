"""On PostgreSQL a POST claims its Idempotency-Key and does its work in one transaction: one COMMIT (one WAL flush)
per payment instead of two, with every rule of the two-step claim kept (fieldsync.api.idempotency).

These run outside the test's own transaction (transaction=True), as a web request does.
"""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from billing import services
from billing.models import Payment
from fieldsync.api.idempotency import _advisory_lock_id
from fieldsync.models import ApiClient, IdempotencyKey
from tests.factories import issued_invoice

from .conftest import Api, make_api, staff_user
from .test_idempotency import held_claim
from .test_query_counts import PAYMENT_POST_QUERIES_POSTGRESQL

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def body(invoice, amount="100.00"):
    return {"invoice": invoice.number, "amount": amount, "method": "card", "received_on": "2026-11-20"}


def writes_outside_transactions(sql: list[str]) -> list[str]:
    """Statements that commit on their own (autocommit writes): each is a WAL flush like a COMMIT."""
    depth, found = 0, []
    for statement in sql:
        if statement == "BEGIN":
            depth += 1
        elif statement in ("COMMIT", "ROLLBACK"):
            depth -= 1
        elif depth == 0 and statement.split(None, 1)[0] in ("INSERT", "UPDATE", "DELETE"):
            found.append(statement)
    return found


def test_a_payment_post_commits_once():
    api, _, _ = make_api()
    api.get("customers/")  # the token's last-use stamp is written once a minute: not inside the count below
    assert api.post("payments/", body(issued_invoice())).status_code == 201  # warm-up
    invoice = issued_invoice(amount="120.00")

    with CaptureQueriesContext(connection) as queries:
        response = api.post("payments/", body(invoice, "120.00"), key="once")

    assert response.status_code == 201, response.content
    sql = [query["sql"].strip().upper() for query in queries.captured_queries]
    assert sql.count("COMMIT") == 1, sql
    assert writes_outside_transactions(sql) == [], sql  # the claim is not committed on its own any more
    assert [statement for statement in sql if "FIELDSYNC_IDEMPOTENCYKEY" in statement][-1].startswith("INSERT")
    assert len(sql) <= PAYMENT_POST_QUERIES_POSTGRESQL, sql
    key = IdempotencyKey.objects.get(key="once")
    assert key.state == IdempotencyKey.State.COMPLETED and key.response_status == 201


def test_a_retry_after_the_one_transaction_gets_the_stored_answer():
    api, _, _ = make_api()
    invoice = issued_invoice()
    first = api.post("payments/", body(invoice), key="again")
    retry = api.post("payments/", body(invoice), key="again")
    assert first.status_code == retry.status_code == 201
    assert retry["Idempotent-Replayed"] == "true" and retry.content == first.content
    different = api.post("payments/", body(invoice, "50.00"), key="again")
    assert different.status_code == 422 and different.json()["code"] == "idempotency_key_reused"
    assert Payment.objects.count() == 1


def test_a_refusal_is_stored_with_the_claim_and_changes_nothing():
    api, _, _ = make_api()
    invoice = issued_invoice()
    first = api.post("payments/", body(invoice, "150.00"), key="over")  # more than the 100.00 open
    assert first.status_code == 400 and first.json()["code"] == "over_application"
    retry = api.post("payments/", body(invoice, "150.00"), key="over")
    assert retry.status_code == 400 and retry["Idempotent-Replayed"] == "true"
    assert not Payment.objects.exists()


def test_a_server_error_rolls_the_claim_back_with_the_work(monkeypatch):
    api, _, _ = make_api()
    invoice = issued_invoice()
    real = services.payment_record
    calls = []

    def flaky(**kwargs):
        calls.append(1)
        payment = real(**kwargs)
        if len(calls) == 1:
            raise RuntimeError("database went away")  # written, then failed: nothing may stay
        return payment

    monkeypatch.setattr(services, "payment_record", flaky)
    api.client.raise_request_exception = False
    assert api.post("payments/", body(invoice), key="flaky").status_code == 500
    assert not Payment.objects.exists()
    assert not IdempotencyKey.objects.filter(key="flaky").exists()
    retry = api.post("payments/", body(invoice), key="flaky")
    assert retry.status_code == 201 and "Idempotent-Replayed" not in retry
    assert Payment.objects.count() == 1


def test_a_key_another_transaction_holds_gets_409_without_waiting():
    """A request with the key is running (it holds the key's advisory lock, its claim not yet visible): 409 at once,
    not a wait on its uncommitted row."""
    api, client, _ = make_api()
    invoice = issued_invoice()
    holding, release = threading.Event(), threading.Event()

    def holder():
        from django.db import connection as own
        from django.db import transaction

        try:
            with transaction.atomic(), own.cursor() as cursor:
                owner = {"api_client": ApiClient.objects.get(pk=client.pk)}
                cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [_advisory_lock_id(owner, "busy")])
                holding.set()
                release.wait(10)
        finally:
            own.close()

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert holding.wait(10)
        response = api.post("payments/", body(invoice), key="busy")
    finally:
        release.set()
        thread.join()
    assert response.status_code == 409 and response.json()["code"] == "idempotency_key_in_progress"
    assert not Payment.objects.exists() and not IdempotencyKey.objects.filter(key="busy").exists()
    assert api.post("payments/", body(invoice), key="busy").status_code == 201  # free once the holder is gone


def test_on_the_database_cache_the_only_other_commit_is_the_throttle_count_in_an_unlogged_table(settings):
    """Production's database cache: the throttle's count commits on its own, in a table that writes no WAL, so the
    payment's COMMIT is the only one that waits for the disk."""
    from django.core.cache import cache

    from fieldsync.settings import base

    settings.CACHES = base.CACHES
    cache.clear()
    api, _, _ = make_api()
    api.get("customers/")
    assert api.post("payments/", body(issued_invoice())).status_code == 201  # warm-up

    invoice = issued_invoice()
    with CaptureQueriesContext(connection) as queries:
        assert api.post("payments/", body(invoice)).status_code == 201

    sql = [query["sql"].strip().upper() for query in queries.captured_queries]
    assert sql.count("COMMIT") == 1, sql
    [own_commit] = writes_outside_transactions(sql)
    assert "FIELDSYNC_APIRATECOUNT" in own_commit
    with connection.cursor() as cursor:
        cursor.execute("SELECT relpersistence FROM pg_class WHERE relname = 'fieldsync_apiratecount'")
        assert cursor.fetchone()[0] == "u"  # unlogged


def test_a_claim_left_by_the_two_step_path_is_answered_by_it(api_two_step_claims):
    """Rows the two-step path committed (SQLite, a caller's transaction, or a deployment before this one): a live
    claim gets 409 and no work; an expired one is taken over and done once."""
    api, client, invoice = api_two_step_claims
    body_ = body(invoice)
    held_claim(client, "busy", body_, lease_left=timedelta(minutes=1), age=timedelta(0))
    busy = api.post("payments/", body_, key="busy")
    assert busy.status_code == 409 and busy.json()["code"] == "idempotency_key_in_progress"
    assert not Payment.objects.exists()

    held_claim(client, "orphan", body_, lease_left=timedelta(seconds=-1), age=timedelta(minutes=3))
    taken_over = api.post("payments/", body_, key="orphan")
    assert taken_over.status_code == 201
    assert Payment.objects.count() == 1
    assert IdempotencyKey.objects.get(key="orphan").state == IdempotencyKey.State.COMPLETED


@pytest.fixture
def api_two_step_claims():
    api, client, _ = make_api()
    return api, client, issued_invoice()


def test_staff_sessions_use_the_one_transaction_path_with_their_own_keys():
    """A staff user's key is theirs (its lock and row are keyed by the user): a retry is replayed, and an API client
    may use the same key string for its own request."""
    staff = Client()
    staff.force_login(staff_user("billing.add_payment"))
    desk = Api(staff)
    invoice, other = issued_invoice(), issued_invoice()
    first = desk.post("payments/", body(invoice), key="desk-1")
    retry = desk.post("payments/", body(invoice), key="desk-1")
    assert first.status_code == 201 and retry["Idempotent-Replayed"] == "true"
    assert IdempotencyKey.objects.get(key="desk-1", user__isnull=False).response_status == 201
    api, _, _ = make_api()
    assert api.post("payments/", body(other), key="desk-1").status_code == 201
    assert Payment.objects.count() == 2
