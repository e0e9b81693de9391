"""Who may call the API: API clients by token and scope, staff by session (with CSRF) and Django permissions."""

import hashlib
import io
import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.utils import timezone

from billing.models import Customer, Payment
from fieldsync.api.tokens import api_client_revoke
from fieldsync.models import ApiClient
from tests.factories import issued_invoice, pay

from .conftest import Api, make_api, staff_user

pytestmark = pytest.mark.django_db

CUSTOMER = {"display_name": "Maria Gonzalez"}


def test_a_request_without_a_token_gets_401_with_a_challenge():
    response = Api(Client()).get("customers/")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_an_unknown_token_gets_401():
    _, _, token = make_api()
    response = Api(Client(), {"Authorization": f"Bearer {token[:-2]}xx"}).get("customers/")
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"


def test_a_malformed_authorization_header_gets_401():
    response = Api(Client(), {"Authorization": "Bearer two words"}).get("customers/")
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"


def test_a_revoked_token_gets_401_and_posts_nothing():
    api, client, _ = make_api()
    api_client_revoke(name=client.name)

    assert api.get("customers/").json()["code"] == "token_revoked"
    response = api.post("customers/", CUSTOMER)
    assert response.status_code == 401
    assert response.json()["code"] == "token_revoked"
    assert not Customer.objects.exists()


def test_token_and_bearer_keywords_both_work():
    _, _, token = make_api()
    for keyword in ("Token", "Bearer", "bearer"):
        assert Api(Client(), {"Authorization": f"{keyword} {token}"}).get("customers/").status_code == 200


def test_only_a_hash_and_a_short_prefix_of_the_token_are_stored():
    _, client, token = make_api()
    client.refresh_from_db()
    assert client.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token.startswith(client.token_prefix) and len(client.token_prefix) == 12
    stored = json.dumps(list(ApiClient.objects.values()), default=str)
    assert token not in stored


def test_using_a_token_records_when_it_was_last_used():
    api, client, _ = make_api()
    assert client.last_used_at is None
    api.get("customers/")
    client.refresh_from_db()
    assert client.last_used_at is not None and timezone.now() - client.last_used_at < timedelta(seconds=5)


def test_a_read_only_client_reads_but_cannot_post(read_only_api):
    invoice = issued_invoice(amount="100.00")
    assert read_only_api.get("payments/").status_code == 200

    response = read_only_api.post(
        "payments/", {"invoice": invoice.number, "amount": "100.00", "method": "card", "received_on": "2026-11-10"}
    )
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert "write" in response.json()["message"]
    assert not Payment.objects.exists()


def test_a_client_without_the_export_scope_cannot_request_exports(quickbooks_connected):
    api, _, _ = make_api("no-export", can_export=False)
    response = api.post("exports/", {"all_exportable": True})
    assert response.status_code == 403
    assert "export" in response.json()["message"]


def test_a_staff_user_with_the_permissions_uses_the_api_with_the_session():
    client = Client()
    client.force_login(staff_user("billing.view_customer", "billing.add_customer"))
    api = Api(client)
    assert api.get("customers/").status_code == 200
    assert api.post("customers/", CUSTOMER).status_code == 201


def test_a_staff_user_without_the_permission_is_refused():
    client = Client()
    client.force_login(staff_user("billing.view_customer"))
    response = Api(client).post("customers/", CUSTOMER)
    assert response.status_code == 403
    assert "billing.add_customer" in response.json()["message"]
    assert not Customer.objects.exists()


def test_staff_session_posts_need_the_csrf_token():
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_user("billing.add_customer"))
    response = Api(client).post("customers/", CUSTOMER)
    assert response.status_code == 403
    assert "CSRF" in response.json()["message"]

    client.get("/accounts/login/")  # sets the csrftoken cookie
    token = client.cookies["csrftoken"].value
    assert Api(client).post("customers/", CUSTOMER, **{"X-CSRFToken": token}).status_code == 201


def test_staff_exports_need_the_export_permission(quickbooks_connected):
    pay(issued_invoice(amount="100.00"), "100.00")
    client = Client()
    client.force_login(staff_user("billing.view_payment"))
    assert Api(client).post("exports/", {"all_exportable": True}).status_code == 403
    client.force_login(staff_user("quickbooks_export.export_payments", username="exporter"))
    assert Api(client).post("exports/", {"all_exportable": True}).status_code == 202


def test_create_api_client_prints_a_token_once_that_authenticates():
    out, err = io.StringIO(), io.StringIO()
    call_command("create_api_client", "stripe-relay", "--no-export", stdout=out, stderr=err)
    token = out.getvalue().strip()
    client = ApiClient.objects.get(name="stripe-relay")
    assert client.can_write and not client.can_export
    assert "shown once" in err.getvalue()
    assert Api(Client(), {"Authorization": f"Token {token}"}).get("customers/").status_code == 200


def test_create_api_client_read_only_and_duplicate_names():
    call_command("create_api_client", "reports", "--read-only", stdout=io.StringIO(), stderr=io.StringIO())
    assert ApiClient.objects.get(name="reports").scopes == ["read"]
    with pytest.raises(CommandError, match="already exists"):
        call_command("create_api_client", "reports", stdout=io.StringIO(), stderr=io.StringIO())


def test_revoke_api_client_command():
    api, client, _ = make_api("old-app")
    call_command("revoke_api_client", "old-app", stdout=io.StringIO())
    client.refresh_from_db()
    assert client.revoked_at is not None
    assert api.get("customers/").status_code == 401
    with pytest.raises(CommandError, match="already revoked"):
        call_command("revoke_api_client", "old-app", stdout=io.StringIO())
    with pytest.raises(CommandError, match="No API client"):
        call_command("revoke_api_client", "nobody", stdout=io.StringIO())


def test_admin_lists_api_clients_without_their_token_hash(client):
    from django.contrib.auth import get_user_model

    from fieldsync.api.tokens import api_client_create

    api_client, token = api_client_create(name="webhook-relay")
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "pw"))
    content = client.get("/admin/fieldsync/apiclient/").content.decode()
    assert api_client.name in content and api_client.token_prefix in content
    assert api_client.token_hash not in content
    detail = client.get(f"/admin/fieldsync/apiclient/{api_client.pk}/change/").content.decode()
    assert api_client.token_hash not in detail and token not in detail and token not in content
