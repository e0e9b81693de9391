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
