"""Fixtures for the QuickBooks connection tests: users with and without the manage permission, settings pointed at
a fresh QuickBooks sandbox, and a connection made through the real OAuth code path."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from quickbooks_export.models import QuickBooksConnection

PASSWORD = "correct horse battery staple"


@pytest.fixture
def manager(db):
    user = get_user_model().objects.create_user(username="manager", password=PASSWORD, first_name="Maria")
    user.user_permissions.add(Permission.objects.get(codename="manage_quickbooks_connection"))
    return user


@pytest.fixture
def viewer(db):
    """May read the QuickBooks page (view permission), not change the connection."""
    user = get_user_model().objects.create_user(username="viewer", password=PASSWORD)
    user.user_permissions.add(Permission.objects.get(codename="view_quickbooksconnection"))
    return user


@pytest.fixture
def manager_client(client, manager):
    client.force_login(manager)
    return client


@pytest.fixture
def viewer_client(client, viewer):
    client.force_login(viewer)
    return client


def make_connection(**fields) -> QuickBooksConnection:
    """A stored connection row for page tests that need no QuickBooks server."""
    fields.setdefault("realm_id", "9130350000000001")
    fields.setdefault("company_name", "Acme Plumbing")
    connection = QuickBooksConnection(**fields)
    if connection.state == QuickBooksConnection.State.DISCONNECTED:
        connection.is_current = False
    connection.set_tokens(access_token="a", refresh_token="r", access_expires_in=3600, refresh_expires_in=86400)
    connection.save()
    return connection


REDIRECT_URI = "http://testserver/quickbooks/callback/"


def point_settings_at(settings, server) -> None:
    """Aim FieldSync's QuickBooks settings at a sandbox server (what a local deployment sets in the environment)."""
    settings.QBO_ENVIRONMENT = "local"
    settings.QBO_DISCOVERY_URL = server.discovery_url
    settings.QBO_API_BASE_URL = server.base_url
    settings.QBO_CLIENT_ID = server.config.client_id
    settings.QBO_CLIENT_SECRET = server.config.client_secret
    settings.QBO_REDIRECT_URI = REDIRECT_URI
    settings.QBO_HTTP_TIMEOUT_SECONDS = 10.0


@pytest.fixture
def qbo(settings, qbo_sandbox):
    """The default sandbox, with FieldSync's settings pointing at it."""
    point_settings_at(settings, qbo_sandbox)
    return qbo_sandbox


class _SessionOnlyRequest:
    """Just enough of a request for the OAuth services: they only keep the state in `request.session`."""

    def __init__(self):
        self.session = {}


def connect_company(server, *, user=None, company_name: str = "Acme Plumbing", realm_id: str | None = None):
    """Connect through the real services (state, code exchange, company name, default mapping), without pages."""
    from quickbooks_export.connection import connection_complete_authorization, connection_start_authorization

    request = _SessionOnlyRequest()
    connection_start_authorization(request=request)
    state = request.session["quickbooks_oauth_state"]["state"]
    grant = server.authorize(REDIRECT_URI, state=state, company_name=company_name, realm_id=realm_id)
    return connection_complete_authorization(
        request=request, code=grant.code, state=grant.state, realm_id=grant.realm_id, user=user
    )


@pytest.fixture
def connected(qbo, manager):
    """A company connected by `manager` through the real OAuth code path."""
    return connect_company(qbo, user=manager)
