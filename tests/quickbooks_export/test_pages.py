"""The QuickBooks page and banner without a QuickBooks server: permissions, CSRF, state display, query counts."""

import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import connection as db
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from quickbooks_export.context_processors import quickbooks_connection
from quickbooks_export.models import QuickBooksConnection

from .conftest import make_connection

State = QuickBooksConnection.State
POST_URLS = ["quickbooks_export:connect", "quickbooks_export:disconnect", "quickbooks_export:mapping"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "name", ["quickbooks_export:settings", "quickbooks_export:connect", "quickbooks_export:callback"]
)
def test_anonymous_users_are_sent_to_login(client, name):
    response = client.get(reverse(name))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.django_db
@pytest.mark.parametrize("name", POST_URLS)
def test_anonymous_post_is_sent_to_login_and_changes_nothing(client, name):
    connection = make_connection()

    response = client.post(reverse(name))

    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert QuickBooksConnection.objects.get(pk=connection.pk).state == State.CONNECTED


@pytest.mark.django_db
def test_user_without_permission_sees_the_page_read_only(viewer_client):
    make_connection(connected_by=None)

    with CaptureQueriesContext(db) as queries:
        response = viewer_client.get(reverse("quickbooks_export:settings"))

    assert response.status_code == 200
    html = response.content.decode()
    assert "Acme Plumbing" in html and "9130350000000001" in html and "badge ok" in html
    for action in ("Connect to QuickBooks", "Reconnect", "Disconnect", "Save mapping", "<select"):
        assert action not in html
    # Ours: the connection (page), the mapping (page), the company profile (page, issue 9), the automatic export
    # setting (page, issue 13) and the connection state (banner, context processor).
    ours = [q["sql"] for q in queries.captured_queries if "quickbooks_export_" in q["sql"]]
    assert len(ours) == 5


@pytest.mark.django_db
@pytest.mark.parametrize("name", [*POST_URLS, "quickbooks_export:callback"])
def test_user_without_permission_gets_403_on_actions(viewer_client, name):
    connection = make_connection()

    response = (
        viewer_client.get(reverse(name), {"code": "x", "state": "y", "realmId": "1"})
        if name.endswith("callback")
        else viewer_client.post(reverse(name))
    )

    assert response.status_code == 403
    assert QuickBooksConnection.objects.get(pk=connection.pk).state == State.CONNECTED


@pytest.mark.django_db
def test_posts_need_a_csrf_token(manager):
    make_connection()
    client = Client(enforce_csrf_checks=True)
    client.force_login(manager)

    response = client.post(reverse("quickbooks_export:disconnect"))

    assert response.status_code == 403
    assert QuickBooksConnection.objects.get().state == State.CONNECTED


@pytest.mark.django_db
def test_page_without_any_connection_offers_connect(manager_client):
    html = manager_client.get(reverse("quickbooks_export:settings")).content.decode()

    assert "Not connected" in html and "Connect to QuickBooks" in html and "Disconnect" not in html


@pytest.mark.django_db
def test_disconnected_history_is_shown_with_a_bad_badge(manager_client, manager):
    make_connection(state=State.DISCONNECTED, disconnected_by=manager)

    html = manager_client.get(reverse("quickbooks_export:settings")).content.decode()

    assert "badge bad" in html and "Disconnected" in html and "Connect to QuickBooks" in html


@pytest.mark.django_db
def test_banner_shows_only_when_reconnect_is_needed(manager_client, outbound_connections):
    connection = make_connection(state=State.NEEDS_RECONNECT)
    url = reverse("quickbooks_export:settings")

    html = manager_client.get(url).content.decode()
    assert "QuickBooks needs reconnecting" in html and 'class="banner"' in html
    assert "badge warn" in html

    QuickBooksConnection.objects.filter(pk=connection.pk).update(state=State.CONNECTED)
    assert "QuickBooks needs reconnecting" not in manager_client.get(url).content.decode()
    # Hermetic: the connected page asks QuickBooks for the mapping choices; the test settings point QuickBooks at
    # nothing, so nothing is dialed (not whatever `make run` left on 127.0.0.1:8765).
    assert outbound_connections == []


@pytest.mark.django_db
def test_settings_page_needs_the_view_permission(client):
    from django.contrib.auth import get_user_model

    make_connection()
    client.force_login(get_user_model().objects.create_user(username="nobody", password="x"))

    response = client.get(reverse("quickbooks_export:settings"))

    assert response.status_code == 403
    assert "Acme Plumbing" not in response.content.decode() and "9130350000000001" not in response.content.decode()


@pytest.mark.django_db
def test_connect_refuses_get_and_starts_nothing(manager_client):
    response = manager_client.get(reverse("quickbooks_export:connect"))

    assert response.status_code == 405
    assert "quickbooks_oauth_state" not in manager_client.session


@pytest.mark.django_db
def test_banner_for_a_user_without_permission_has_no_reconnect_button(viewer_client):
    make_connection(state=State.NEEDS_RECONNECT)

    html = viewer_client.get(reverse("quickbooks_export:settings")).content.decode()

    assert "QuickBooks needs reconnecting" in html
    assert "Reconnect</button>" not in html


@pytest.mark.django_db
def test_context_processor_costs_at_most_one_query(rf, viewer, django_assert_num_queries):
    make_connection(state=State.NEEDS_RECONNECT)
    request = rf.get("/")
    request.user = viewer
    status = quickbooks_connection(request)["quickbooks_status"]

    with django_assert_num_queries(1):
        assert status.needs_reconnect and status.company_name == "Acme Plumbing"
        assert not status.is_connected


@pytest.mark.django_db
def test_context_processor_asks_nothing_for_anonymous_users(rf, django_assert_num_queries):
    request = rf.get("/")
    request.user = AnonymousUser()

    with django_assert_num_queries(0):
        assert not quickbooks_connection(request)["quickbooks_status"].needs_reconnect


@pytest.mark.django_db
def test_at_most_one_connection_is_current():
    from django.db import IntegrityError, transaction

    make_connection()
    with pytest.raises(IntegrityError), transaction.atomic():
        make_connection(realm_id="2")
    make_connection(realm_id="3", state=State.DISCONNECTED)  # history rows are fine
    assert QuickBooksConnection.objects.filter(is_current=True).count() == 1


@pytest.mark.django_db
def test_admin_never_shows_tokens(admin_client):
    connection = make_connection()
    secret_texts = [connection.access_token_ciphertext, connection.refresh_token_ciphertext, "ciphertext"]

    pages = [
        admin_client.get(reverse("admin:quickbooks_export_quickbooksconnection_changelist")),
        admin_client.get(reverse("admin:quickbooks_export_quickbooksconnection_change", args=[connection.pk])),
    ]

    for page in pages:
        assert page.status_code == 200
        html = page.content.decode()
        assert "Acme Plumbing" in html
        assert all(text not in html for text in secret_texts)
