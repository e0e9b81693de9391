"""Property-based tests of the whole API against its own OpenAPI schema (schemathesis, in-process over WSGI).

Every operation gets its schema examples plus a bounded number of generated requests, valid and invalid, sent with
a real API token. What must hold for all of them: no server error (5xx), a status code the schema documents, and a
body and content type that match the schema for that status. "Valid input is accepted" is not checked: a
generated customer id or invoice number rarely exists, and the API rightly refuses it.
"""

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from fieldsync.wsgi import application
from tests.factories import CustomerFactory, issued_invoice, pay

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@pytest.fixture
def api_schema(api_token, quickbooks_connected):
    """The schema as the running app serves it, with a few real rows for generated requests to meet."""
    customer = CustomerFactory(pk=12)
    pay(issued_invoice(customer=customer, amount="100.00", number="INV-1042"), "60.00")
    issued_invoice(customer=customer, amount="50.00", number="INV-1043")
    config = schemathesis.Config.from_dict(
        {
            "headers": {"Authorization": f"Bearer {api_token}"},
            "generation": {"mode": "all", "max-examples": 15, "deterministic": True},
            "phases": {"stateful": {"enabled": False}},
        }
    )
    # Requests go straight to the WSGI app, inside the test's transaction: keep Django from closing the connection
    # at the end of each request (and with it the transaction), as Django's own test client does.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi("/api/schema/", application, config=config)
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.mark.django_db
@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_api_conforms_to_its_schema(case, api_token):
    case.call_and_validate(headers={"Authorization": f"Bearer {api_token}"}, checks=CHECKS)
