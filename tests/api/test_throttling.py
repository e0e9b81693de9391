"""API throttling per client and per staff user (issue 11, item 6): 429 in the error shape with Retry-After."""

import pytest
from django.core.cache import cache
from django.test import Client

from tests.factories import CustomerFactory

from .conftest import Api, make_api, staff_user

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def low_rates(settings):
    settings.FIELDSYNC_API_THROTTLE_RATES = {"api_client": "3/minute", "staff_user": "2/minute"}
    cache.clear()
    yield
    cache.clear()


def test_a_client_over_its_rate_gets_429_in_the_error_shape_with_retry_after(api):
    CustomerFactory()
    answers = [api.get("customers/") for _ in range(4)]

    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    refused = answers[-1]
    body = refused.json()
    assert set(body) == {"code", "message", "details"} and body["code"] == "throttled"
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert "throttled" in body["message"].lower()


def test_writes_count_too_and_a_throttled_post_changes_nothing(api):
    for n in range(3):
        assert api.post("customers/", {"display_name": f"C{n}"}).status_code == 201

    assert api.post("customers/", {"display_name": "C3"}).status_code == 429
    from billing.models import Customer

    assert Customer.objects.count() == 3


def test_each_client_has_its_own_budget():
    first, _, _ = make_api("first")
    second, _, _ = make_api("second")
    for _ in range(3):
        first.get("customers/")

    assert first.get("customers/").status_code == 429
    assert second.get("customers/").status_code == 200


def test_the_budget_follows_the_token_not_the_address():
    api, _, token = make_api("many-addresses")
    for n in range(3):
        Client(REMOTE_ADDR=f"10.0.0.{n}").get("/api/v1/customers/", headers={"Authorization": f"Bearer {token}"})

    answer = Client(REMOTE_ADDR="10.0.0.9").get("/api/v1/customers/", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 429


def test_staff_sessions_are_throttled_per_user():
    client = Client()
    client.force_login(staff_user("billing.view_customer"))
    staff = Api(client)

    assert [staff.get("customers/").status_code for _ in range(3)] == [200, 200, 429]


def test_rates_come_from_settings(api, settings):
    settings.FIELDSYNC_API_THROTTLE_RATES = {"api_client": "5/minute", "staff_user": "5/minute"}

    assert [api.get("customers/").status_code for _ in range(6)] == [200] * 5 + [429]


def test_throttling_works_with_the_database_cache_production_uses(api, settings):
    """The test settings count in memory; production counts in the database cache (table from a migration)."""
    from django.conf import settings as live

    from fieldsync.settings import base

    settings.CACHES = base.CACHES
    assert live.CACHES["default"]["BACKEND"] == "django.core.cache.backends.db.DatabaseCache"
    cache.clear()

    assert [api.get("customers/").status_code for _ in range(4)] == [200, 200, 200, 429]


@pytest.fixture
def database_cache(settings):
    from fieldsync.settings import base

    settings.CACHES = base.CACHES
    cache.clear()


def test_on_the_database_cache_a_request_costs_one_counting_statement(api, database_cache):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    api.get("customers/")  # the token's last-use stamp is written once a minute: not inside the count below
    with CaptureQueriesContext(connection) as queries:
        assert api.get("customers/").status_code == 200

    statements = [q["sql"] for q in queries.captured_queries]
    assert len([sql for sql in statements if "fieldsync_apiratecount" in sql]) == 1
    assert not [sql for sql in statements if "fieldsync_cache" in sql]


def test_on_the_database_cache_the_budget_comes_back_when_the_window_ends(api, database_cache, monkeypatch):
    from fieldsync.api.throttling import ApiClientRateThrottle

    clock = [1_800_000_030.0]  # 30 s into a minute
    monkeypatch.setattr(ApiClientRateThrottle, "timer", staticmethod(lambda: clock[0]))
    answers = [api.get("customers/") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[-1]["Retry-After"] == "30"
    assert answers[-1].json()["code"] == "throttled"

    clock[0] += 29.5
    assert api.get("customers/").status_code == 429
    clock[0] += 0.5  # the next minute
    assert [api.get("customers/").status_code for _ in range(4)] == [200, 200, 200, 429]
