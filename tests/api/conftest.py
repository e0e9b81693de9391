"""Fixtures for the API tests: clients that call it with a real API token (or a staff session), the way a field app,
a webhook relay or a script would."""

import json
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client

from fieldsync.api.tokens import api_client_create
from quickbooks_export.models import QuickBooksConnection


class Api:
    """A thin HTTP client for /api/v1/: JSON in and out, a fresh Idempotency-Key per POST unless one is given."""

    def __init__(self, client: Client, headers: dict | None = None):
        self.client = client
        self.headers = headers or {}

    def get(self, path: str, params: dict | None = None, **headers):
        return self.client.get(_url(path), params or {}, headers={**self.headers, **headers})

    def post(self, path: str, data=None, *, key: str | None = "new", raw: str | None = None, **headers):
        headers = {**self.headers, **headers}
        if key == "new":
            key = str(uuid.uuid4())
        if key is not None:
            headers["Idempotency-Key"] = key
        body = raw if raw is not None else json.dumps({} if data is None else data)
        return self.client.post(_url(path), body, content_type="application/json", headers=headers)

    def patch(self, path: str, data: dict, **headers):
        body = json.dumps(data)
        return self.client.patch(_url(path), body, content_type="application/json", headers={**self.headers, **headers})


def _url(path: str) -> str:
    return path if path.startswith("/") else f"/api/v1/{path}"


def make_api(name: str = "field-app", **scopes) -> tuple[Api, object, str]:
    client, token = api_client_create(name=name, **scopes)
    return Api(Client(), {"Authorization": f"Bearer {token}"}), client, token


@pytest.fixture
def api(db) -> Api:
    """A client with every scope (read, write, export)."""
    return make_api()[0]


@pytest.fixture
def api_token(db) -> str:
    return make_api("schemathesis")[2]


@pytest.fixture
def read_only_api(db) -> Api:
    return make_api("reporting", can_write=False, can_export=False)[0]


def staff_user(*perms: str, username: str = "clerk"):
    user = get_user_model().objects.create_user(username=username, password="correct horse battery staple")
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return get_user_model().objects.get(pk=user.pk)  # a fresh instance: no stale permission cache


@pytest.fixture
def quickbooks_connected(db) -> QuickBooksConnection:
    """A connected QuickBooks company (a stored row: starting an export needs no QuickBooks server)."""
    connection = QuickBooksConnection(realm_id="9130350000000001", company_name="Acme Plumbing")
    connection.set_tokens(access_token="a", refresh_token="r", access_expires_in=3600, refresh_expires_in=86400)
    connection.save()
    return connection
