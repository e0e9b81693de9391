"""OAuth 2.0 as intuit-oauth sees it: discovery, consent screen, code exchange, refresh rotation, revocation."""

from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from intuitlib.enums import Scopes
from intuitlib.exceptions import AuthClientError
from quickbooks.exceptions import AuthorizationException, QuickbooksException
from quickbooks.objects.customer import Customer

from quickbooks_export.sandbox import ManualClock

from .clients import REDIRECT_URI, auth_client, connect, qb_client

DAY = 24 * 3600


def _redirect_params(response: requests.Response) -> dict[str, str]:
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith(REDIRECT_URI)
    return {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}


def _consent_form(client, **choices) -> dict[str, str]:
    url = client.get_authorization_url([Scopes.ACCOUNTING], state_token="state-123")
    query = {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}
    return {**query, **choices}


def test_discovery_document_gives_intuit_oauth_every_endpoint_it_reads(qbo_sandbox):
    client = auth_client(qbo_sandbox)

    base = qbo_sandbox.base_url
    assert client.auth_endpoint == f"{base}/connect/oauth2"
    assert client.token_endpoint == f"{base}/oauth2/v1/tokens/bearer"
    assert client.revoke_endpoint == f"{base}/oauth2/v1/tokens/revoke"
    assert client.user_info_url == f"{base}/v1/openid_connect/userinfo"
    assert client.jwks_uri == f"{base}/op/v1/jwks"
    assert client.issuer_uri.startswith(base)


def test_consent_screen_creates_a_company_and_redirects_with_code_state_and_realm(qbo_sandbox):
    client = auth_client(qbo_sandbox)
    page = requests.get(client.get_authorization_url([Scopes.ACCOUNTING], state_token="state-123"), timeout=5)
    assert page.status_code == 200
    assert "text/html" in page.headers["Content-Type"]
    assert "Connect" in page.text

    form = _consent_form(client, realm_id="new", company_name="Acme Plumbing", action="approve")
    answer = requests.post(client.auth_endpoint, data=form, allow_redirects=False, timeout=5)

    params = _redirect_params(answer)
    assert params["state"] == "state-123"
    assert {"realm_id": params["realmId"], "name": "Acme Plumbing", "profile": "us-ast"} in qbo_sandbox.companies()
    client.get_bearer_token(params["code"], realm_id=params["realmId"])
    assert client.access_token and client.refresh_token


def test_consent_screen_lists_existing_companies_and_connects_the_chosen_one(qbo_sandbox):
    realm_id = qbo_sandbox.create_company("Existing Co")
    client = auth_client(qbo_sandbox)
    page = requests.get(client.get_authorization_url([Scopes.ACCOUNTING], state_token="s"), timeout=5)
    assert "Existing Co" in page.text and realm_id in page.text

    form = _consent_form(client, realm_id=realm_id, action="approve")
    params = _redirect_params(requests.post(client.auth_endpoint, data=form, allow_redirects=False, timeout=5))

    assert params["realmId"] == realm_id
    assert len(qbo_sandbox.companies()) == 1


def test_consent_screen_cancel_redirects_with_access_denied(qbo_sandbox):
    client = auth_client(qbo_sandbox)
    form = _consent_form(client, realm_id="new", action="deny")

    params = _redirect_params(requests.post(client.auth_endpoint, data=form, allow_redirects=False, timeout=5))

    assert params == {"error": "access_denied", "state": "state-123"}
    assert qbo_sandbox.companies() == []


def test_authorize_with_unknown_client_is_shown_an_error_and_never_redirected(qbo_sandbox):
    client = auth_client(qbo_sandbox)
    url = client.get_authorization_url([Scopes.ACCOUNTING]).replace("fieldsync-local", "someone-else")

    answer = requests.get(url, allow_redirects=False, timeout=5)

    assert answer.status_code == 400
    assert "Location" not in answer.headers


def test_authorize_with_wrong_response_type_redirects_with_the_error(qbo_sandbox):
    client = auth_client(qbo_sandbox)
    url = client.get_authorization_url([Scopes.ACCOUNTING], state_token="s1").replace("code", "token", 1)
    assert "response_type=token" in url

    params = _redirect_params(requests.get(url, allow_redirects=False, timeout=5))

    assert params == {"error": "unsupported_response_type", "state": "s1"}


def test_token_answer_has_intuit_lifetimes_and_no_id_token(qbo_sandbox):
    connection = connect(qbo_sandbox)

    client = connection.auth_client
    assert client.expires_in == 3600
    assert client.x_refresh_token_expires_in == 100 * DAY
    assert client.id_token is None


def test_authorization_code_is_single_use(qbo_sandbox):
    grant = qbo_sandbox.authorize(REDIRECT_URI)
    auth_client(qbo_sandbox).get_bearer_token(grant.code, realm_id=grant.realm_id)

    with pytest.raises(AuthClientError) as error:
        auth_client(qbo_sandbox).get_bearer_token(grant.code, realm_id=grant.realm_id)

    assert error.value.status_code == 400
    assert error.value.response.json()["error"] == "invalid_grant"


def test_authorization_code_is_bound_to_its_redirect_uri(qbo_sandbox):
    grant = qbo_sandbox.authorize(REDIRECT_URI)
    other = auth_client(qbo_sandbox, redirect_uri="http://localhost:9999/elsewhere")

    with pytest.raises(AuthClientError) as error:
        other.get_bearer_token(grant.code, realm_id=grant.realm_id)

    assert error.value.response.json()["error"] == "invalid_grant"


def test_authorization_code_expires(qbo_sandbox_factory):
    clock = ManualClock()
    server = qbo_sandbox_factory(clock=clock)
    grant = server.authorize(REDIRECT_URI)
    clock.advance(server.config.authorization_code_ttl + 1)

    with pytest.raises(AuthClientError) as error:
        auth_client(server).get_bearer_token(grant.code, realm_id=grant.realm_id)

    assert error.value.response.json()["error"] == "invalid_grant"


def test_wrong_client_secret_is_invalid_client_401(qbo_sandbox):
    grant = qbo_sandbox.authorize(REDIRECT_URI)
    client = auth_client(qbo_sandbox)
    client.client_secret = "not-the-secret"

    with pytest.raises(AuthClientError) as error:
        client.get_bearer_token(grant.code, realm_id=grant.realm_id)

    assert error.value.status_code == 401
    assert error.value.response.json()["error"] == "invalid_client"


def test_refresh_rotates_the_refresh_token_and_the_old_one_works_during_the_grace(qbo_sandbox_factory):
    clock = ManualClock()
    server = qbo_sandbox_factory(clock=clock)
    client = connect(server).auth_client
    first_access, first_refresh = client.access_token, client.refresh_token

    client.refresh()
    second_refresh = client.refresh_token
    assert client.access_token != first_access
    assert second_refresh != first_refresh

    clock.advance(DAY - 60)
    client.refresh(refresh_token=first_refresh)  # a worker that missed the rotation still gets through
    assert client.refresh_token not in (first_refresh, second_refresh)

    clock.advance(61)
    with pytest.raises(AuthClientError) as error:
        client.refresh(refresh_token=first_refresh)
    assert error.value.status_code == 400
    assert error.value.response.json()["error"] == "invalid_grant"
    client.refresh(refresh_token=second_refresh)  # its own grace started when it was first rotated


def test_refresh_token_expires_after_100_days(qbo_sandbox_factory):
    clock = ManualClock()
    server = qbo_sandbox_factory(clock=clock)
    client = connect(server).auth_client

    clock.advance(100 * DAY)

    with pytest.raises(AuthClientError) as error:
        client.refresh()
    assert error.value.response.json()["error"] == "invalid_grant"


def test_new_refresh_token_gets_a_fresh_100_days(qbo_sandbox_factory):
    clock = ManualClock()
    server = qbo_sandbox_factory(clock=clock)
    client = connect(server).auth_client

    clock.advance(99 * DAY)
    client.refresh()
    clock.advance(50 * DAY)
    client.refresh()

    assert client.x_refresh_token_expires_in == 100 * DAY


def test_quickbooks_client_without_access_token_refreshes_at_once(qbo_sandbox):
    connection = connect(qbo_sandbox)
    original_refresh = connection.auth_client.refresh_token
    client = auth_client(qbo_sandbox, refresh_token=original_refresh)

    qb = qb_client(qbo_sandbox, client, connection.realm_id)

    assert qb.refresh_token != original_refresh  # rotated: the caller must persist the new one
    assert Customer.count(qb=qb) == 0


def test_revoke_ends_api_access_and_refresh_for_the_whole_family(qbo):
    refresh_token = qbo.auth_client.refresh_token

    assert qbo.auth_client.revoke(token=refresh_token) is True

    with pytest.raises(AuthorizationException):
        Customer.count(qb=qbo.qb)
    with pytest.raises(AuthClientError) as error:
        qbo.auth_client.refresh(refresh_token=refresh_token)
    assert error.value.response.json()["error"] == "invalid_grant"


def test_expired_access_token_gets_401_authentication_failed(qbo):
    qbo.server.expire_access_tokens(qbo.realm_id)

    with pytest.raises(AuthorizationException) as error:
        Customer.count(qb=qbo.qb)

    assert error.value.error_code == 401
    assert "errorCode=003200" in error.value.detail


def test_401_body_is_the_gateways_lowercase_fault(qbo):
    qbo.server.expire_access_tokens()
    url = f"{qbo.server.api_url}/company/{qbo.realm_id}/customer/1"

    answer = qbo.qb.process_request("GET", url, headers={"Accept": "application/json"})

    assert answer.status_code == 401
    error = answer.json()["fault"]["error"][0]
    assert error["code"] == "3200"
    assert error["message"] == "message=AuthenticationFailed; errorCode=003200; statusCode=401"


def test_expire_tokens_endpoint_then_refresh_restores_access(qbo):
    answer = requests.post(f"{qbo.server.base_url}/_sandbox/expire-tokens", json={"realm_id": qbo.realm_id}, timeout=5)
    assert answer.json() == {"expired": 1}
    with pytest.raises(AuthorizationException):
        Customer.count(qb=qbo.qb)

    qbo.auth_client.refresh()
    qb = qb_client(qbo.server, qbo.auth_client, qbo.realm_id)

    assert Customer.count(qb=qb) == 0


def test_access_token_of_one_company_is_refused_by_another(qbo):
    other_realm = qbo.server.create_company("Other Co")
    qb = qb_client(qbo.server, qbo.auth_client, other_realm)

    with pytest.raises(QuickbooksException) as error:
        Customer.count(qb=qb)

    assert error.value.error_code == 10000  # python-quickbooks: a lowercase gateway fault
    assert "403" in error.value.message


def test_userinfo_answers_for_a_valid_token(qbo):
    answer = qbo.auth_client.get_user_info()

    assert answer.json()["email"]
