"""/health/live and /health/ready: what load balancers and orchestrators see, with no login and no secrets."""

import datetime
import os

import pytest
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.signing import SignedPackage
from django_q.status import Stat, Status

from billing.services import business_unit_create, business_unit_default
from quickbooks_export.models import QuickBooksConnection
from tests.quickbooks_export.conftest import make_connection

pytestmark = pytest.mark.django_db


def heartbeat(cluster_id: str = "cluster-a", *, age_seconds: float = 0.0) -> None:
    """What a running django-q2 cluster saves to its broker every guard cycle (a status with its timestamp)."""
    status = Status(pid=os.getpid(), cluster_id=cluster_id)
    status.timestamp = timezone.now() - datetime.timedelta(seconds=age_seconds)
    get_broker().set_stat(Stat.get_key(cluster_id), SignedPackage.dumps(status, True), 30)


@pytest.fixture(autouse=True)
def _no_heartbeats():
    from django.core.cache import cache

    cache.clear()


def test_liveness_answers_without_the_database(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["Cache-Control"].startswith("max-age=0")


def test_ready_with_a_live_worker_and_a_connected_company(client):
    make_connection()
    heartbeat(age_seconds=1)

    response = client.get("/health/ready")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["database"] == {"ok": True}
    assert body["workers"]["ok"] and body["workers"]["clusters"] == 1
    assert 0.5 <= body["workers"]["newest_heartbeat_age_seconds"] < 10
    assert [q["state"] for q in body["quickbooks"]] == ["connected"]
    # Nothing about the company, its tokens or ids beyond our own row number: the endpoint has no login.
    text = response.content.decode()
    assert "Acme" not in text and "9130350000000001" not in text and "token" not in text.lower()


def test_the_newest_of_several_clusters_counts(client):
    heartbeat("old", age_seconds=120)
    heartbeat("new", age_seconds=2)

    body = client.get("/health/ready").json()

    assert body["workers"]["clusters"] == 2
    assert body["workers"]["newest_heartbeat_age_seconds"] < 10


def test_not_ready_without_any_worker_heartbeat(client):
    business_unit_default()  # the unit every installation has (a test before this one may have flushed it)

    response = client.get("/health/ready")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not_ready"
    assert body["workers"] == {"ok": False, "clusters": 0, "newest_heartbeat_age_seconds": None}
    assert body["quickbooks"] == [{"business_unit": "main", "connection": None, "state": "not_connected"}]


def test_not_ready_when_the_newest_heartbeat_is_too_old(client, settings):
    settings.FIELDSYNC_READY_MAX_HEARTBEAT_AGE_SECONDS = 30
    heartbeat(age_seconds=45)

    response = client.get("/health/ready")

    assert response.status_code == 503
    assert response.json()["workers"]["newest_heartbeat_age_seconds"] >= 45


def test_web_readiness_can_ignore_the_workers(client, settings):
    settings.FIELDSYNC_READY_REQUIRE_WORKER = False

    response = client.get("/health/ready")

    assert response.status_code == 200
    assert response.json()["workers"]["clusters"] == 0


def test_a_connection_needing_reconnection_is_reported_not_fatal(client):
    connection = make_connection(state=QuickBooksConnection.State.NEEDS_RECONNECT)
    heartbeat()

    response = client.get("/health/ready")

    assert response.status_code == 200
    assert response.json()["quickbooks"] == [
        {"business_unit": "main", "connection": connection.pk, "state": "needs_reconnect"}
    ]


def test_every_business_unit_is_listed_also_one_never_connected(client, django_assert_num_queries):
    main = business_unit_default()
    north = business_unit_create(name="North Store")
    business_unit_create(name="Airport Kiosk")
    make_connection(business_unit=main)
    make_connection(business_unit=north, realm_id="9130350000000099", state=QuickBooksConnection.State.NEEDS_RECONNECT)
    heartbeat()

    with django_assert_num_queries(3):  # SELECT 1, the units, the current connections; the same for any number
        response = client.get("/health/ready")

    assert response.status_code == 200  # a unit not connected is reported, not fatal
    assert [(q["business_unit"], q["state"]) for q in response.json()["quickbooks"]] == [
        ("airport-kiosk", "not_connected"),
        ("main", "connected"),
        ("north-store", "needs_reconnect"),
    ]


def test_not_ready_when_the_database_does_not_answer(client, monkeypatch):
    from django.db import OperationalError
    from django.db.backends.utils import CursorWrapper

    def down(self, sql, params=None):
        raise OperationalError("connection refused")

    monkeypatch.setattr(CursorWrapper, "execute", down)

    response = client.get("/health/ready")

    assert response.status_code == 503
    assert response.json() == {
        "status": "not_ready",
        "database": {"ok": False, "error": "the database did not answer"},
    }


def test_health_needs_no_login_and_is_never_throttled(client, settings):
    settings.FIELDSYNC_API_THROTTLE_RATES = {"api_client": "1/minute", "staff_user": "1/minute"}
    heartbeat()
    for _ in range(5):
        assert client.get("/health/live").status_code == 200
        assert client.get("/health/ready").status_code == 200


def test_health_is_not_redirected_to_https_but_pages_are(settings, client):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_REDIRECT_EXEMPT = [r"^health/"]  # production's value (tests/operations/test_production_run.py)

    assert client.get("/health/live").status_code == 200
    assert client.get("/").status_code == 301  # everything else still goes to https
