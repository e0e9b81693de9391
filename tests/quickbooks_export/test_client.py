"""The QuickBooks client facade against the local sandbox: entity calls, token refresh, error mapping, no secrets."""

import logging
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from quickbooks_export import client as qbo_client
from quickbooks_export.client import QuickBooksClient
from quickbooks_export.errors import (
    QuickBooksAuthorizationError,
    QuickBooksDuplicateNameError,
    QuickBooksError,
    QuickBooksNotConnectedError,
    QuickBooksObjectNotFoundError,
    QuickBooksStaleObjectError,
    QuickBooksThrottledError,
    QuickBooksUnavailableError,
    QuickBooksValidationError,
)
from quickbooks_export.models import QuickBooksConnection

from .conftest import connect_company, point_settings_at

pytestmark = pytest.mark.django_db


def _customer(name: str = "Harbor Dental") -> dict:
    return {"DisplayName": name, "PrimaryEmailAddr": {"Address": "office@harbor.example"}}


def _stored() -> QuickBooksConnection:
    return QuickBooksConnection.objects.get(is_current=True)


# --- entity calls -------------------------------------------------------------------------------------------------
def test_create_read_update_query_round_trip(connected):
    client = QuickBooksClient.for_current_connection()

    created = client.create("Customer", _customer(), request_id="customer-1-create")
    read = client.read("Customer", created["Id"])
    updated = client.update(
        "Customer", {"Id": created["Id"], "SyncToken": read["SyncToken"], "CompanyName": "Harbor Dental LLC"}
    )
    found = client.query("SELECT * FROM Customer WHERE DisplayName = 'Harbor Dental'")

    assert read["DisplayName"] == "Harbor Dental"
    assert updated["CompanyName"] == "Harbor Dental LLC" and updated["SyncToken"] != read["SyncToken"]
    assert updated["PrimaryEmailAddr"]["Address"] == "office@harbor.example"  # sparse: untouched fields stay
    assert [c["Id"] for c in found] == [created["Id"]]
    assert client.query("SELECT * FROM Customer WHERE DisplayName = 'Nobody'") == []


def test_a_repeated_request_id_returns_the_original_answer(connected, qbo):
    client = QuickBooksClient.for_current_connection()

    first = client.create("Customer", _customer(), request_id="customer-7-create")
    again = client.create("Customer", _customer(), request_id="customer-7-create")

    assert again["Id"] == first["Id"]
    assert len(qbo.entities(connected.realm_id, "Customer")) == 1


def test_amounts_go_out_and_come_back_as_decimals(connected):
    client = QuickBooksClient.for_current_connection()
    customer = client.create("Customer", _customer(), request_id="c-dec")
    income = next(a for a in client.accounts() if a["AccountType"] == "Income")
    item = client.create(
        "Item",
        {"Name": "Service call", "Type": "Service", "IncomeAccountRef": {"value": income["Id"]}},
        request_id="item-1",
    )
    line = {
        "DetailType": "SalesItemLineDetail",
        "Amount": Decimal("100.10"),
        "SalesItemLineDetail": {"ItemRef": {"value": item["Id"]}},
    }

    invoice = client.create("Invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": [line]}, request_id="inv-dec")

    assert isinstance(invoice["TotalAmt"], Decimal) and invoice["TotalAmt"] == Decimal("100.10")


def test_query_all_pages_through_every_row(connected):
    client = QuickBooksClient.for_current_connection()
    for n in range(5):
        client.create("Customer", _customer(f"Customer {n}"), request_id=f"c-{n}")

    rows = client.query_all("SELECT * FROM Customer", page_size=2)

    assert sorted(r["DisplayName"] for r in rows) == [f"Customer {n}" for n in range(5)]


def test_batch_sends_a_requestid_and_returns_item_responses(connected, qbo):
    client = QuickBooksClient.for_current_connection()
    items = [
        {"bId": "b1", "operation": "create", "Customer": _customer("Batch One")},
        {"bId": "b2", "operation": "create", "Customer": _customer("Batch Two")},
        {"bId": "b3", "operation": "create", "Customer": _customer("Batch One")},  # duplicate name
    ]

    answers = {a["bId"]: a for a in client.batch(items, request_id="batch-0001")}
    replay = {a["bId"]: a for a in client.batch(items, request_id="batch-0001")}

    assert answers["b1"]["Customer"]["DisplayName"] == "Batch One"
    assert "Fault" in answers["b3"] or "Fault" in answers["b1"]
    faulted = answers["b3"] if "Fault" in answers["b3"] else answers["b1"]
    error = qbo_client.error_from_fault(faulted["Fault"]["Error"])
    assert isinstance(error, QuickBooksDuplicateNameError)
    assert replay == answers  # the requestid made the retry a replay
    assert len(qbo.entities(connected.realm_id, "Customer")) == 2
    assert qbo.stats(connected.realm_id)["replayed"] == 1


def test_batch_and_request_id_limits_are_checked_before_sending(connected):
    client = QuickBooksClient.for_current_connection()
    many = [{"bId": str(n), "Query": "SELECT * FROM Customer"} for n in range(31)]

    with pytest.raises(ValueError, match="1 to 30"):
        client.batch(many, request_id=None)
    with pytest.raises(ValueError, match="at most 36"):
        client.batch(many[:1], request_id="x" * 37)
    with pytest.raises(ValueError, match="at most 50"):
        client.create("Customer", _customer(), request_id="x" * 51)
    with pytest.raises(ValueError, match="not a QuickBooks Online business object"):
        client.create("Nonsense", {}, request_id="x")


def test_company_lists(connected):
    client = QuickBooksClient.for_current_connection()

    assert client.company_info()["CompanyName"] == "Acme Plumbing"
    assert {"Undeposited Funds", "Services", "Checking"} <= {a["Name"] for a in client.accounts()}
    assert {"Cash", "Check", "Visa"} <= {m["Name"] for m in client.payment_methods()}


def test_no_connection_means_not_connected(db):
    with pytest.raises(QuickBooksNotConnectedError):
        QuickBooksClient.for_current_connection()


# --- tokens -------------------------------------------------------------------------------------------------------
def test_access_token_is_refreshed_shortly_before_expiry_and_persisted(connected, qbo):
    QuickBooksConnection.objects.filter(pk=connected.pk).update(
        access_token_expires_at=timezone.now() + timedelta(seconds=30)
    )
    before = _stored()

    QuickBooksClient.for_current_connection().company_info()

    after = _stored()
    assert after.token_version == before.token_version + 1
    assert after.get_refresh_token() != before.get_refresh_token()  # the rotated refresh token is persisted
    assert after.get_access_token() != before.get_access_token()
    assert after.access_token_expires_at > timezone.now() + timedelta(minutes=50)
    # The newest refresh token is the one that works from now on.
    assert qbo_client.refresh_tokens(refresh_token=after.get_refresh_token()).access_token


def test_a_401_refreshes_once_and_retries_the_request(connected, qbo):
    client = QuickBooksClient.for_current_connection()
    client.company_info()
    version = _stored().token_version
    qbo.expire_access_tokens(connected.realm_id)  # QuickBooks says 401 although our clock says it is fresh

    assert client.create("Customer", _customer(), request_id="after-401")["DisplayName"] == "Harbor Dental"

    assert _stored().token_version == version + 1
    assert len(qbo.entities(connected.realm_id, "Customer")) == 1


def test_a_worker_holding_old_tokens_uses_the_ones_another_worker_stored(connected, qbo):
    stale = QuickBooksClient.for_current_connection()
    fresh = QuickBooksClient.for_current_connection()
    qbo.expire_access_tokens(connected.realm_id)
    fresh.company_info()  # refreshes and stores version + 1
    version = _stored().token_version

    stale.company_info()  # 401 with its old token -> finds the newer stored tokens, no second refresh

    assert _stored().token_version == version


def test_refresh_keeps_the_tokens_another_worker_stored_first(connected, qbo, monkeypatch):
    """The refresh HTTP call happens outside any lock; if another worker stores a rotation meanwhile, ours is
    dropped and theirs kept (both refresh tokens are valid at QuickBooks)."""
    a = QuickBooksClient.for_current_connection()
    b = QuickBooksClient.for_current_connection()
    qbo.expire_access_tokens(connected.realm_id)
    version = _stored().token_version
    real_refresh = qbo_client.refresh_tokens
    calls = []

    def refresh_while_another_worker_refreshes(*, refresh_token):
        tokens = real_refresh(refresh_token=refresh_token)
        calls.append(tokens)
        if len(calls) == 1:
            b.company_info()  # worker b refreshes and stores its rotation before worker a stores its own
        return tokens

    monkeypatch.setattr(qbo_client, "refresh_tokens", refresh_while_another_worker_refreshes)

    a.company_info()

    stored = _stored()
    assert len(calls) == 2 and stored.token_version == version + 1
    assert stored.get_refresh_token() == calls[1].refresh_token  # b's rotation, stored once
    assert a.company_info()["CompanyName"] == "Acme Plumbing"  # a uses the stored access token
    monkeypatch.undo()
    assert qbo_client.refresh_tokens(refresh_token=stored.get_refresh_token()).access_token


def test_tokens_and_secrets_never_reach_the_logs(connected, qbo, caplog, settings):
    caplog.set_level(logging.DEBUG)
    client = QuickBooksClient.for_current_connection()
    qbo.expire_access_tokens(connected.realm_id)
    client.create("Customer", _customer(), request_id="logged-1")
    qbo_client.revoke_token(token=_stored().get_refresh_token())
    qbo.expire_access_tokens(connected.realm_id)
    with pytest.raises(QuickBooksAuthorizationError) as caught:
        QuickBooksClient.for_current_connection().company_info()

    stored = _stored()
    secrets_ = [stored.get_access_token(), stored.get_refresh_token(), settings.QBO_CLIENT_SECRET]
    texts = [caplog.text, str(caught.value), repr(caught.value), repr(client), str(stored), repr(stored)]
    for secret in secrets_:
        assert secret and all(secret not in text for text in texts)


# --- error mapping, each through the real client against the sandbox ------------------------------------------------
def test_duplicate_name_6240(connected):
    client = QuickBooksClient.for_current_connection()
    client.create("Customer", _customer("O'Brien Plumbing"), request_id="dup-1")

    with pytest.raises(QuickBooksDuplicateNameError) as caught:
        client.create("Customer", _customer("o'brien plumbing"), request_id="dup-2")

    error = caught.value
    assert isinstance(error, QuickBooksValidationError) and not error.retryable
    assert error.qbo_code == "6240" and error.code == "quickbooks_duplicate_name"
    assert "Duplicate Name Exists" in error.message and error.qbo_http_status == 400


def test_stale_sync_token_5010(connected):
    client = QuickBooksClient.for_current_connection()
    created = client.create("Customer", _customer(), request_id="stale-1")
    client.update("Customer", {"Id": created["Id"], "SyncToken": created["SyncToken"], "Notes": "first"})

    with pytest.raises(QuickBooksStaleObjectError) as caught:
        client.update("Customer", {"Id": created["Id"], "SyncToken": created["SyncToken"], "Notes": "second"})

    assert caught.value.qbo_code == "5010" and not caught.value.retryable


def test_other_validation_faults_carry_code_message_and_detail(connected):
    client = QuickBooksClient.for_current_connection()

    with pytest.raises(QuickBooksValidationError) as caught:
        client.create("Payment", {"TotalAmt": "10.00"}, request_id="bad-payment")

    error = caught.value
    assert type(error) is QuickBooksValidationError and not error.retryable
    assert error.qbo_code and error.qbo_message and error.qbo_code in error.message
    assert error.extra["errors"][0]["code"] == error.qbo_code


def test_unknown_id_is_object_not_found_610(connected):
    with pytest.raises(QuickBooksObjectNotFoundError) as caught:
        QuickBooksClient.for_current_connection().read("Customer", "987654")

    assert caught.value.qbo_code == "610"


def test_throttled_429_is_retryable_with_a_wait(connected, qbo):
    qbo.add_fault("429", realm_id=connected.realm_id)

    with pytest.raises(QuickBooksThrottledError) as caught:
        QuickBooksClient.for_current_connection().company_info()

    error = caught.value
    assert error.retryable and error.retry_after > 0 and error.qbo_http_status == 429
    assert error.code == "quickbooks_throttled"


def test_real_throttling_429_from_the_rate_limit(qbo_sandbox_factory, settings, manager):
    server = qbo_sandbox_factory(requests_per_minute=3)
    point_settings_at(settings, server)
    connect_company(server, user=manager)  # uses part of the company's minute
    client = QuickBooksClient.for_current_connection()

    with pytest.raises(QuickBooksThrottledError):
        for _ in range(5):
            client.company_info()


@pytest.mark.parametrize("status", ["500", "503"])
def test_server_errors_are_unavailable_and_retryable(connected, qbo, status):
    qbo.add_fault(status, realm_id=connected.realm_id)

    with pytest.raises(QuickBooksUnavailableError) as caught:
        QuickBooksClient.for_current_connection().create("Customer", _customer(), request_id=f"s-{status}")

    assert caught.value.retryable and caught.value.qbo_http_status == int(status)
    assert QuickBooksClient.for_current_connection().query("SELECT * FROM Customer") == []


def test_dropped_connection_is_unavailable_and_the_retry_is_not_performed_twice(connected, qbo):
    qbo.add_fault("drop_after_commit", realm_id=connected.realm_id, path_contains="/customer")
    client = QuickBooksClient.for_current_connection()

    with pytest.raises(QuickBooksUnavailableError) as caught:
        client.create("Customer", _customer(), request_id="dropped-1")
    retried = client.create("Customer", _customer(), request_id="dropped-1")

    assert caught.value.retryable and caught.value.qbo_http_status is None
    assert [c["Id"] for c in qbo.entities(connected.realm_id, "Customer")] == [retried["Id"]]


def test_timeout_is_unavailable(qbo_sandbox_factory, settings, manager):
    server = qbo_sandbox_factory(latency_ms=600)
    point_settings_at(settings, server)
    connect_company(server, user=manager)
    settings.QBO_HTTP_TIMEOUT_SECONDS = 0.2

    with pytest.raises(QuickBooksUnavailableError) as caught:
        QuickBooksClient.for_current_connection().company_info()

    assert caught.value.retryable and "did not answer within 0.2 s" in caught.value.message


def test_server_gone_is_unavailable(connected, qbo):
    client = QuickBooksClient.for_current_connection()
    qbo.stop()

    with pytest.raises(QuickBooksUnavailableError) as caught:
        client.company_info()

    assert caught.value.retryable


def test_a_token_for_another_company_is_an_authorization_error_403(connected, qbo):
    other_realm = qbo.create_company("Someone Else")
    QuickBooksConnection.objects.filter(pk=connected.pk).update(realm_id=other_realm)

    with pytest.raises(QuickBooksAuthorizationError) as caught:
        QuickBooksClient.for_current_connection().company_info()

    assert caught.value.qbo_http_status == 403 and not caught.value.retryable
    assert _stored().state == QuickBooksConnection.State.CONNECTED  # a person must look; tokens are fine


def test_errors_are_application_errors_with_stable_codes():
    from fieldsync.exceptions import ApplicationError

    for cls in (QuickBooksError, QuickBooksThrottledError, QuickBooksUnavailableError, QuickBooksValidationError):
        assert issubclass(cls, ApplicationError)
    assert QuickBooksThrottledError("x", retry_after=5).extra["retry_after"] == 5.0
