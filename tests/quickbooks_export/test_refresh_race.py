"""Token rotation under real concurrency: several workers, each with its own PostgreSQL connection, refresh at once.

QuickBooks answers every refresh with a new refresh token; losing the newest one would strand the connection once the
rotated ones die (about a day later). The refresh HTTP call runs outside any lock, so these tests force the worst
interleaving: every worker has its new tokens before any worker stores them.
"""

import threading
from datetime import timedelta

import pytest
from django.db import connection as db_connection
from django.utils import timezone

from quickbooks_export import client as qbo_client
from quickbooks_export.client import QuickBooksClient
from quickbooks_export.models import QuickBooksConnection

from .conftest import connect_company

WORKERS = 4


def _run_workers(work, count: int) -> list:
    results: list = [None] * count

    def run(index: int) -> None:
        try:
            results[index] = work(index)
        except Exception as exc:  # reported by the assertions below
            results[index] = exc
        finally:
            db_connection.close()  # each thread has its own database connection

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def _assert_stored_tokens_work(qbo) -> QuickBooksConnection:
    stored = QuickBooksConnection.objects.get(is_current=True)
    assert stored.state == QuickBooksConnection.State.CONNECTED
    # The stored access token works as it is (no refresh needed) ...
    assert QuickBooksClient(stored).company_info()["CompanyName"] == "Acme Plumbing"
    assert QuickBooksConnection.objects.get(pk=stored.pk).token_version == stored.token_version
    # ... and the stored refresh token is good at QuickBooks, even after the rotation grace of the others ends.
    assert qbo_client.refresh_tokens(refresh_token=stored.get_refresh_token()).refresh_token
    return stored


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_refreshes_store_one_rotation_and_every_worker_proceeds(qbo, manager, monkeypatch):
    connection = connect_company(qbo, user=manager)
    QuickBooksConnection.objects.filter(pk=connection.pk).update(access_token_expires_at=timezone.now())
    version = QuickBooksConnection.objects.get(pk=connection.pk).token_version
    barrier = threading.Barrier(WORKERS)
    real_refresh = qbo_client.refresh_tokens
    issued = []

    def refresh_in_lockstep(*, refresh_token):
        tokens = real_refresh(refresh_token=refresh_token)
        issued.append(tokens.refresh_token)
        barrier.wait(timeout=20)  # nobody stores before everybody has refreshed
        return tokens

    monkeypatch.setattr(qbo_client, "refresh_tokens", refresh_in_lockstep)

    results = _run_workers(lambda n: QuickBooksClient.for_current_connection().company_info(), WORKERS)

    assert [r["CompanyName"] if isinstance(r, dict) else r for r in results] == ["Acme Plumbing"] * WORKERS
    assert len(issued) == WORKERS  # a real race: every worker refreshed at QuickBooks
    monkeypatch.undo()
    stored = _assert_stored_tokens_work(qbo)
    assert stored.token_version == version + 1  # exactly one rotation stored, none overwritten afterwards
    assert stored.get_refresh_token() in issued


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_workers_hit_by_401_at_once_leave_a_working_refresh_token(qbo, manager):
    connect_company(qbo, user=manager)
    workers = 6
    ready = threading.Barrier(workers)
    expired = threading.Barrier(workers)

    def work(n: int) -> int:
        client = QuickBooksClient.for_current_connection()
        client.company_info()
        ready.wait(timeout=20)
        if n == 0:
            qbo.expire_access_tokens()  # every worker's access token dies at QuickBooks at the same moment
        expired.wait(timeout=20)
        for round_ in range(3):
            client.create("Customer", {"DisplayName": f"Worker {n} round {round_}"}, request_id=f"w{n}-r{round_}")
        return n

    results = _run_workers(work, workers)

    assert results == list(range(workers))
    _assert_stored_tokens_work(qbo)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_refresh_holds_no_row_lock_during_the_http_call(qbo, manager, monkeypatch):
    """While one worker waits on QuickBooks' token endpoint, another can lock and update the connection row."""
    connection = connect_company(qbo, user=manager)
    QuickBooksConnection.objects.filter(pk=connection.pk).update(
        access_token_expires_at=timezone.now() - timedelta(seconds=1)
    )
    in_http = threading.Event()
    release = threading.Event()
    real_refresh = qbo_client.refresh_tokens

    def slow_refresh(*, refresh_token):
        in_http.set()
        release.wait(timeout=20)
        return real_refresh(refresh_token=refresh_token)

    monkeypatch.setattr(qbo_client, "refresh_tokens", slow_refresh)

    def refresher(n):
        return QuickBooksClient.for_current_connection().company_info()

    def locker():
        assert in_http.wait(timeout=20)
        from django.db import transaction

        with transaction.atomic():
            row = QuickBooksConnection.objects.select_for_update(nowait=True).get(pk=connection.pk)
            row.last_error = "row was free"
            row.save(update_fields=["last_error"])
        release.set()
        return "locked"

    results = _run_workers(lambda n: refresher(n) if n == 0 else locker(), 2)

    assert results[1] == "locked"
    assert isinstance(results[0], dict)
