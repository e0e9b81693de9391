import pytest

from .clients import connect


@pytest.fixture
def qbo(qbo_sandbox):
    """A sandbox company connected through intuit-oauth, with a python-quickbooks client for it."""
    return connect(qbo_sandbox)
