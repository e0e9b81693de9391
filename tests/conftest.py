import socket

import pytest
from django.db import connection

pytest_plugins = ["tests.sandbox_fixtures"]


def pytest_collection_modifyitems(config, items):
    """Tests marked `postgres` prove something only real row locks and concurrent transactions can show."""
    if connection.vendor == "postgresql":
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL: run with DATABASE_URL=postgres://...")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


# The ports `make run` uses (web app, local QuickBooks sandbox). A test reaching one would depend on whatever a
# developer left running there: no test may reach a port it did not start.
PRODUCT_PORTS = {8000, 8765}


@pytest.fixture
def outbound_connections(monkeypatch) -> list[tuple]:
    """Every address a Python socket of this test tries to connect to, in order (the attempt is still made)."""
    attempts: list[tuple] = []
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def connect(sock, address):
        attempts.append(tuple(address) if isinstance(address, tuple) else (address,))
        return real_connect(sock, address)

    def connect_ex(sock, address):
        attempts.append(tuple(address) if isinstance(address, tuple) else (address,))
        return real_connect_ex(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    return attempts


@pytest.fixture(autouse=True)
def _no_test_reaches_the_product_ports(outbound_connections):
    yield
    reached = [address for address in outbound_connections if len(address) > 1 and address[1] in PRODUCT_PORTS]
    assert not reached, f"the test connected to {reached}: ports of `make run`, not started by the test"
