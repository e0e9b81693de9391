"""The browser tests' live server (conftest.live_server): on SQLite its request threads share the test's in-memory
connection, which two threads must never use at once, so it answers one request at a time there."""

import threading
import urllib.request

import pytest
from django.core.signals import request_finished, request_started


def test_the_live_server_runs_one_request_at_a_time_on_a_shared_connection(live_server, transactional_db):
    if not live_server.thread.connections_override:
        pytest.skip("each request thread has its own database connection (not in-memory SQLite)")
    lock = threading.Lock()
    running, most = 0, 0  # requests inside Django now, and at most

    def started(**kwargs):
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)

    def finished(**kwargs):
        nonlocal running
        with lock:
            running -= 1

    def fetch() -> None:
        for _ in range(15):
            with urllib.request.urlopen(f"{live_server.url}/accounts/login/") as answer:
                assert answer.status == 200

    request_started.connect(started)
    request_finished.connect(finished)
    try:
        threads = [threading.Thread(target=fetch) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        request_started.disconnect(started)
        request_finished.disconnect(finished)
    assert most == 1
