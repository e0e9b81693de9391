"""Fault injection and inspection through the /_sandbox/ endpoints (plain requests) and the Python API."""

import pytest
import requests
from intuitlib.exceptions import AuthClientError
from quickbooks.exceptions import AuthorizationException, QuickbooksException
from quickbooks.objects.customer import Customer

from .clients import connect, make_customer, payment_object


def _sandbox(server, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(method, f"{server.base_url}/_sandbox/{path}", timeout=5, **kwargs)


def test_injected_500s_fail_the_next_n_requests_then_pass(qbo):
    answer = _sandbox(qbo.server, "POST", "faults", json={"kind": "500", "count": 2, "realm_id": qbo.realm_id})
    assert answer.status_code == 201

    for _ in range(2):
        with pytest.raises(QuickbooksException) as error:
            Customer.count(qb=qbo.qb)
        assert error.value.error_code == 10000
        assert "500" in error.value.message

    assert Customer.count(qb=qbo.qb) == 0
    assert _sandbox(qbo.server, "GET", "faults").json() == {"faults": []}
    assert qbo.server.stats(qbo.realm_id)["injected"] == 2


def test_injected_503_matches_only_its_path(qbo):
    customer = make_customer(qbo.qb, "Path Co")
    _sandbox(qbo.server, "POST", "faults", json={"kind": "503", "path_contains": "/payment"})

    make_customer(qbo.qb, "Still Works Co")
    with pytest.raises(QuickbooksException) as error:
        payment_object(customer.Id, "10").save(qb=qbo.qb)

    assert "503" in error.value.message
    assert qbo.server.entities(qbo.realm_id, "Payment") == []


def test_injected_429_counts_as_throttled(qbo):
    qbo.server.add_fault("429", realm_id=qbo.realm_id)

    with pytest.raises(QuickbooksException) as error:
        Customer.count(qb=qbo.qb)

    assert "429" in error.value.message
    assert qbo.server.stats(qbo.realm_id)["throttled"] == 1


def test_a_fault_for_one_company_leaves_another_alone(qbo):
    other = connect(qbo.server)
    qbo.server.add_fault("500", realm_id=other.realm_id)

    assert Customer.count(qb=qbo.qb) == 0
    with pytest.raises(QuickbooksException):
        Customer.count(qb=other.qb)


def test_unknown_fault_kind_is_refused(qbo_sandbox):
    answer = _sandbox(qbo_sandbox, "POST", "faults", json={"kind": "418"})

    assert answer.status_code == 400


def test_a_dropped_refresh_answer_leaves_the_old_refresh_token_usable(qbo):
    old_refresh = qbo.auth_client.refresh_token
    qbo.server.add_fault("drop_after_commit", path_contains="/tokens/bearer")

    with pytest.raises(requests.exceptions.ConnectionError):
        qbo.auth_client.refresh(refresh_token=old_refresh)

    qbo.auth_client.refresh(refresh_token=old_refresh)  # rotated, but still inside its grace period
    assert qbo.auth_client.refresh_token != old_refresh


def test_injected_503_on_the_token_endpoint(qbo):
    qbo.server.add_fault("503", path_contains="/tokens/bearer")

    with pytest.raises(AuthClientError) as error:
        qbo.auth_client.refresh()

    assert error.value.status_code == 503


def test_inspection_lists_companies_entities_and_statistics(qbo):
    make_customer(qbo.qb, "Inspected Co")

    companies = _sandbox(qbo.server, "GET", "companies").json()["companies"]
    company = _sandbox(qbo.server, "GET", f"companies/{qbo.realm_id}").json()
    stats = _sandbox(qbo.server, "GET", f"companies/{qbo.realm_id}/stats").json()

    assert companies == [{"realm_id": qbo.realm_id, "name": "Sandbox Company", "profile": "us-ast"}]
    assert [c["DisplayName"] for c in company["entities"]["Customer"]] == ["Inspected Co"]
    assert stats["requests"] == 1
    assert stats["entities"]["Customer"] == 1 and stats["entities"]["PaymentMethod"] == 8


def test_companies_can_be_created_and_authorized_over_http(qbo_sandbox):
    created = _sandbox(qbo_sandbox, "POST", "companies", json={"name": "Made Over HTTP"}).json()

    grant = _sandbox(
        qbo_sandbox, "POST", "authorize", json={"redirect_uri": "http://localhost/cb", "realm_id": created["realm_id"]}
    ).json()

    assert grant["realm_id"] == created["realm_id"] and grant["code"]


def test_reset_forgets_companies_and_tokens(qbo):
    assert _sandbox(qbo.server, "POST", "reset").status_code == 200

    assert qbo.server.companies() == []
    with pytest.raises(AuthorizationException):
        Customer.count(qb=qbo.qb)
