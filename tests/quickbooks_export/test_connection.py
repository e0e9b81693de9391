"""Connecting, reconnecting and disconnecting QuickBooks through the pages, against the local QuickBooks sandbox."""

import re
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.urls import reverse

from quickbooks_export import client as qbo_client
from quickbooks_export.client import QuickBooksClient
from quickbooks_export.errors import QuickBooksAuthorizationError
from quickbooks_export.models import QuickBooksConnection, QuickBooksMappingSettings

from .conftest import REDIRECT_URI, connect_company

State = QuickBooksConnection.State
SETTINGS_URL = "/quickbooks/"


def _start(client) -> str:
    """POST connect (the page's button): returns the authorize URL we were redirected to."""
    response = client.post(reverse("quickbooks_export:connect"))
    assert response.status_code == 302
    return response["Location"]


def _approve_on_consent_page(authorize_url: str, *, company_name: str) -> str:
    """Drive the sandbox's consent page like a browser: GET it, submit its form with "Connect". Returns the URL the
    browser is sent back to."""
    page = requests.get(authorize_url, timeout=10)
    assert page.status_code == 200 and "<form" in page.text
    fields = {
        unescape(name): unescape(value)
        for name, value in re.findall(r'<input type="hidden" name="([^"]*)" value="([^"]*)">', page.text)
    }
    fields.update({"realm_id": "new", "company_name": company_name, "action": "approve"})
    answer = requests.post(authorize_url, data=fields, allow_redirects=False, timeout=10)
    assert answer.status_code in (302, 303)
    return answer.headers["Location"]


def _local_path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def _messages(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


@pytest.mark.django_db
def test_full_oauth_round_trip_through_the_pages(qbo, manager_client, manager):
    authorize_url = _start(manager_client)
    assert authorize_url.startswith(qbo.base_url + "/connect/oauth2?")
    query = parse_qs(urlsplit(authorize_url).query)
    assert query["scope"] == ["com.intuit.quickbooks.accounting"]
    assert query["redirect_uri"] == [REDIRECT_URI] and query["state"][0]

    back = _approve_on_consent_page(authorize_url, company_name="Acme Plumbing")
    assert back.startswith(REDIRECT_URI)
    returned = parse_qs(urlsplit(back).query)
    assert returned["state"] == query["state"]

    response = manager_client.get(_local_path(back), follow=True)

    assert response.status_code == 200
    assert "Connected to QuickBooks company Acme Plumbing." in _messages(response)
    connection = QuickBooksConnection.objects.get()
    assert connection.state == State.CONNECTED and connection.is_current
    assert connection.realm_id == returned["realmId"][0]
    assert connection.company_name == "Acme Plumbing"
    assert connection.connected_by == manager and connection.connected_at is not None
    assert connection.get_access_token() and connection.get_refresh_token()
    assert connection.access_token_expires_at > connection.connected_at
    html = response.content.decode()
    assert "Acme Plumbing" in html and connection.realm_id in html and "badge ok" in html
    assert "Disconnect" in html and "Save mapping" in html
    # The stored tokens work against the company.
    assert QuickBooksClient(connection).company_info()["CompanyName"] == "Acme Plumbing"


@pytest.mark.django_db
def test_first_connection_fills_sensible_default_mapping(connected):
    mapping = QuickBooksMappingSettings.objects.get(realm_id=connected.realm_id)

    assert mapping.deposit_account_name == "Undeposited Funds"
    assert mapping.income_account_name == "Services"
    names = {method: (mapping.payment_method_ref(method) or {}).get("name") for method in ("cash", "check", "card")}
    assert names == {"cash": "Cash", "check": "Check", "card": "Visa"}
    assert mapping.payment_method_ref("ach")["name"] == "ACH/EFT"
    assert mapping.payment_method_ref("other") is None


@pytest.mark.django_db
@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda state: "forged-" + state, id="wrong state"),
        pytest.param(lambda state: "", id="empty state"),
        pytest.param(None, id="no state parameter"),
    ],
)
def test_callback_with_a_bad_or_missing_state_is_refused_and_changes_nothing(qbo, manager_client, tamper):
    state = parse_qs(urlsplit(_start(manager_client)).query)["state"][0]
    grant = qbo.authorize(REDIRECT_URI, state=state)
    params = {"code": grant.code, "realmId": grant.realm_id}
    if tamper is not None:
        params["state"] = tamper(state)

    response = manager_client.get(reverse("quickbooks_export:callback"), params, follow=True)

    assert any("did not match a connection request" in message for message in _messages(response))
    assert not QuickBooksConnection.objects.exists()
    assert not QuickBooksMappingSettings.objects.exists()
    # The code was never even exchanged: it is still good at QuickBooks.
    assert qbo_client.exchange_code(code=grant.code, realm_id=grant.realm_id).access_token


@pytest.mark.django_db
def test_callback_without_a_pending_connect_is_refused(qbo, manager_client):
    grant = qbo.authorize(REDIRECT_URI, state="guessed")

    response = manager_client.get(
        reverse("quickbooks_export:callback"),
        {"code": grant.code, "state": "guessed", "realmId": grant.realm_id},
        follow=True,
    )

    assert any("did not match a connection request" in message for message in _messages(response))
    assert not QuickBooksConnection.objects.exists()


@pytest.mark.django_db
def test_state_is_single_use(qbo, manager_client):
    state = parse_qs(urlsplit(_start(manager_client)).query)["state"][0]
    first = qbo.authorize(REDIRECT_URI, state=state)
    manager_client.get(
        reverse("quickbooks_export:callback"), {"code": first.code, "state": state, "realmId": first.realm_id}
    )
    replay = qbo.authorize(REDIRECT_URI, state=state, realm_id=first.realm_id)

    response = manager_client.get(
        reverse("quickbooks_export:callback"),
        {"code": replay.code, "state": state, "realmId": replay.realm_id},
        follow=True,
    )

    assert any("did not match a connection request" in message for message in _messages(response))
    assert QuickBooksConnection.objects.get().token_version == 1


@pytest.mark.django_db
def test_cancelling_on_the_consent_page_stores_nothing(qbo, manager_client):
    authorize_url = _start(manager_client)
    page = requests.get(authorize_url, timeout=10)
    fields = dict(re.findall(r'<input type="hidden" name="([^"]*)" value="([^"]*)">', page.text))
    fields = {unescape(k): unescape(v) for k, v in fields.items()} | {"action": "deny"}
    back = requests.post(authorize_url, data=fields, allow_redirects=False, timeout=10).headers["Location"]

    response = manager_client.get(_local_path(back), follow=True)

    # Intuit's code is translated into what happened and what to do (issue 12), never shown raw.
    (message,) = _messages(response)
    assert "the connection was cancelled on Intuit's page" in message and "Nothing changed." in message
    assert "access_denied" not in message
    assert not QuickBooksConnection.objects.exists()


@pytest.mark.django_db
def test_reconnecting_the_same_company_keeps_the_row_and_the_mapping(qbo, connected, manager):
    QuickBooksConnection.objects.filter(pk=connected.pk).update(state=State.NEEDS_RECONNECT, last_error="x")
    mapping_before = QuickBooksMappingSettings.objects.get()

    again = connect_company(qbo, user=manager, realm_id=connected.realm_id)

    assert again.pk == connected.pk
    assert again.state == State.CONNECTED and again.last_error == ""
    assert again.token_version == connected.token_version + 1
    assert QuickBooksMappingSettings.objects.get().pk == mapping_before.pk


@pytest.mark.django_db
def test_connecting_another_company_while_one_is_connected_is_refused(qbo, connected, manager_client):
    state = parse_qs(urlsplit(_start(manager_client)).query)["state"][0]
    other = qbo.authorize(REDIRECT_URI, state=state, company_name="Other Co")

    response = manager_client.get(
        reverse("quickbooks_export:callback"),
        {"code": other.code, "state": state, "realmId": other.realm_id},
        follow=True,
    )

    assert any("Disconnect it before connecting a different company" in m for m in _messages(response))
    assert list(QuickBooksConnection.objects.values_list("realm_id", flat=True)) == [connected.realm_id]


@pytest.mark.django_db
def test_disconnect_revokes_at_quickbooks_and_keeps_history(qbo, connected, manager_client, manager):
    refresh_token = connected.get_refresh_token()

    response = manager_client.post(reverse("quickbooks_export:disconnect"), follow=True)

    assert "Disconnected from Acme Plumbing." in _messages(response)
    row = QuickBooksConnection.objects.get()
    assert row.state == State.DISCONNECTED and not row.is_current
    assert row.disconnected_by == manager and row.disconnected_at is not None
    assert row.access_token_ciphertext == "" and row.refresh_token_ciphertext == ""
    with pytest.raises(QuickBooksAuthorizationError) as caught:
        qbo_client.refresh_tokens(refresh_token=refresh_token)
    assert caught.value.qbo_code == "invalid_grant"
    html = response.content.decode()
    assert "badge bad" in html and "Connect to QuickBooks" in html


@pytest.mark.django_db
def test_disconnect_still_disconnects_when_quickbooks_cannot_be_reached(qbo, connected, manager_client):
    qbo.stop()

    response = manager_client.post(reverse("quickbooks_export:disconnect"), follow=True)

    row = QuickBooksConnection.objects.get()
    assert row.state == State.DISCONNECTED and row.refresh_token_ciphertext == ""
    assert "did not confirm the revocation" in row.last_error
    assert any("did not confirm the revocation" in message for message in _messages(response))


@pytest.mark.django_db
def test_invalid_grant_marks_needs_reconnect_and_shows_the_banner(qbo, connected, manager_client):
    qbo_client.revoke_token(token=connected.get_refresh_token())  # e.g. someone removed the app in QuickBooks
    qbo.expire_access_tokens(connected.realm_id)

    with pytest.raises(QuickBooksAuthorizationError) as caught:
        QuickBooksClient.for_current_connection().company_info()

    assert "Reconnect QuickBooks" in caught.value.message and not caught.value.retryable
    row = QuickBooksConnection.objects.get()
    assert row.state == State.NEEDS_RECONNECT and row.is_current
    assert "invalid_grant" in row.last_error and row.last_error_at is not None
    html = manager_client.get(reverse("quickbooks_export:settings")).content.decode()
    assert "QuickBooks needs reconnecting" in html and "Reconnect</button>" in html and "badge warn" in html
    # Until someone reconnects, clients refuse at once without calling QuickBooks.
    with pytest.raises(QuickBooksAuthorizationError):
        QuickBooksClient.for_current_connection()


@pytest.mark.django_db
def test_reconnect_button_starts_a_new_authorization(qbo, connected, manager_client):
    QuickBooksConnection.objects.filter(pk=connected.pk).update(state=State.NEEDS_RECONNECT)

    response = manager_client.post(reverse("quickbooks_export:connect"))

    assert response.status_code == 302 and response["Location"].startswith(qbo.base_url + "/connect/oauth2?")


@pytest.mark.django_db
def test_mapping_form_offers_the_company_choices_and_saves(connected, manager_client):
    page = manager_client.get(reverse("quickbooks_export:settings"))
    form = page.context["form"]
    deposit = dict(form.fields["deposit_account"].choices)
    assert any(label.startswith("Checking") for label in deposit.values())
    assert any(label.startswith("Undeposited Funds") for label in deposit.values())
    assert not any("Receivable" in label for label in deposit.values())  # only Bank / Other Current Asset
    methods = {label: value for value, label in form.fields["payment_method_card"].choices}
    checking = next(value for value, label in deposit.items() if label.startswith("Checking"))
    services = next(value for value, label in form.fields["income_account"].choices if label == "Services")

    response = manager_client.post(
        reverse("quickbooks_export:mapping"),
        {
            "deposit_account": checking,
            "income_account": services,
            "payment_method_cash": methods["Cash"],
            "payment_method_check": "",
            "payment_method_card": methods["MasterCard"],
            "payment_method_ach": methods["ACH/EFT"],
            "payment_method_other": methods["Diners Club"],
        },
        follow=True,
    )

    assert "QuickBooks mapping saved." in _messages(response)
    mapping = QuickBooksMappingSettings.objects.get(realm_id=connected.realm_id)
    assert mapping.deposit_account_ref() == {"value": checking, "name": "Checking"}
    assert mapping.payment_method_ref("card") == {"value": methods["MasterCard"], "name": "MasterCard"}
    assert mapping.payment_method_ref("check") is None
    assert mapping.payment_method_ref("other")["name"] == "Diners Club"


@pytest.mark.django_db
def test_mapping_form_refuses_ids_the_company_does_not_offer(connected, manager_client):
    before = QuickBooksMappingSettings.objects.get().deposit_account_id

    response = manager_client.post(
        reverse("quickbooks_export:mapping"), {"deposit_account": "99999", "income_account": "99998"}
    )

    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    assert QuickBooksMappingSettings.objects.get().deposit_account_id == before


@pytest.mark.django_db
def test_viewer_sees_the_saved_mapping_read_only_without_asking_quickbooks(connected, viewer_client, qbo):
    requests_before = qbo.stats(connected.realm_id)["requests"]

    html = viewer_client.get(reverse("quickbooks_export:settings")).content.decode()

    assert "Undeposited Funds" in html and "Visa" in html and "<select" not in html and "Disconnect" not in html
    assert qbo.stats(connected.realm_id)["requests"] == requests_before


@pytest.mark.django_db
def test_a_code_quickbooks_refuses_stores_nothing(qbo, manager_client):
    state = parse_qs(urlsplit(_start(manager_client)).query)["state"][0]
    grant = qbo.authorize(REDIRECT_URI, state=state)
    qbo_client.exchange_code(code=grant.code, realm_id=grant.realm_id)  # the code is now used up

    response = manager_client.get(
        reverse("quickbooks_export:callback"),
        {"code": grant.code, "state": state, "realmId": grant.realm_id},
        follow=True,
    )

    assert any("invalid_grant" in message for message in _messages(response))
    assert not QuickBooksConnection.objects.exists()


@pytest.mark.django_db
def test_connect_when_quickbooks_does_not_answer_times_out_with_a_message(manager_client, settings):
    import socket

    silent = socket.socket()  # accepts connections (backlog) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(5)
    try:
        settings.QBO_ENVIRONMENT = "local"
        settings.QBO_DISCOVERY_URL = f"http://127.0.0.1:{silent.getsockname()[1]}/.well-known/openid_configuration"
        settings.QBO_HTTP_TIMEOUT_SECONDS = 0.3

        response = manager_client.post(reverse("quickbooks_export:connect"), follow=True)
    finally:
        silent.close()

    assert any("Could not read QuickBooks' sign-in configuration" in m for m in _messages(response))


@pytest.mark.django_db
def test_connecting_again_after_disconnect_starts_a_new_row_and_keeps_history(qbo, connected, manager):
    from quickbooks_export.connection import connection_disconnect

    connection_disconnect(user=manager)

    again = connect_company(qbo, user=manager, realm_id=connected.realm_id)

    assert again.pk != connected.pk and again.is_current and again.state == State.CONNECTED
    history = QuickBooksConnection.objects.get(pk=connected.pk)
    assert history.state == State.DISCONNECTED and not history.is_current
    with pytest.raises(Exception, match="cannot go from disconnected to connected"):
        history.transition_to(State.CONNECTED)


@pytest.mark.django_db
def test_the_mapping_form_saves_which_side_wins_for_customer_details(connected, manager_client):
    form = manager_client.get(reverse("quickbooks_export:settings")).context["form"]
    data = {name: value for name, value in form.initial.items() if value is not None}
    assert data.pop("customer_details_winner") == "ask"  # the default: today's behaviour
    data["income_account"] = next(value for value, _ in form.fields["income_account"].choices if value)

    response = manager_client.post(
        reverse("quickbooks_export:mapping"), {**data, "customer_details_winner": "quickbooks"}, follow=True
    )

    assert "QuickBooks mapping saved." in _messages(response)
    mapping = QuickBooksMappingSettings.objects.get(realm_id=connected.realm_id)
    assert mapping.customer_details_winner == "quickbooks"
    manager_client.post(reverse("quickbooks_export:mapping"), data)  # left out: kept
    assert QuickBooksMappingSettings.objects.get(pk=mapping.pk).customer_details_winner == "quickbooks"
    html = manager_client.get(reverse("quickbooks_export:settings")).content.decode()
    assert '<option value="quickbooks" selected>' in html
