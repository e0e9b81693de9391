"""A QuickBooks company connected through the real OAuth code path, on a sandbox started for the test."""

import datetime
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.test import RequestFactory

from billing import services as billing_services
from billing.models import Payment
from quickbooks_export.connection import connection_complete_authorization, connection_start_authorization
from quickbooks_export.models import ExportBatch
from quickbooks_export.sandbox import SandboxServer
from quickbooks_export.services import export_batch_start, export_run


@dataclass
class Company:
    server: SandboxServer
    realm_id: str

    def entities(self, entity: str) -> list[dict]:
        return self.server.entities(self.realm_id, entity)


def connect(
    server: SandboxServer, settings, *, company_name: str = "Acme Plumbing", business_unit=None, **company
) -> Company:
    """Connect a new sandbox company to `business_unit` (default: the only one); `company` goes to the sandbox (e.g.
    profile="ca")."""
    settings.QBO_ENVIRONMENT = "local"
    settings.QBO_SANDBOX_URL = server.base_url
    settings.QBO_DISCOVERY_URL = server.discovery_url
    settings.QBO_API_BASE_URL = server.base_url
    request = RequestFactory().get("/quickbooks/connect/")
    request.session = SessionStore()
    url = connection_start_authorization(request=request, business_unit=business_unit)
    state = parse_qs(urlsplit(url).query)["state"][0]
    authorization = server.authorize(settings.QBO_REDIRECT_URI, state=state, company_name=company_name, **company)
    connection_complete_authorization(
        request=request, code=authorization.code, state=state, realm_id=authorization.realm_id, user=None
    )
    return Company(server=server, realm_id=authorization.realm_id)


@pytest.fixture
def qbo_company(qbo_sandbox, settings, db) -> Company:
    settings.EXPORT_MAX_RETRY_AFTER_SECONDS = 0.2
    return connect(qbo_sandbox, settings)


def export(*payments: Payment, selection: str = "test selection") -> ExportBatch:
    """Start a batch and run the exporter to the end, as the worker would."""
    batch = export_batch_start(payments=[p.pk for p in payments], selection=selection, source="command")
    drain(batch.realm_id)
    batch.refresh_from_db()
    return batch


def drain(realm_id: str, *, rounds: int = 10) -> list[str]:
    """Run the exporter until it has nothing left (a follow-up run stands in for the task it would queue)."""
    results = []
    for _ in range(rounds):
        result = export_run(realm_id=realm_id, sleep=lambda seconds: None)
        results.append(result)
        if result in ("drained", "busy", "waiting"):
            break
    return results


def refund(payment: Payment, amount: str) -> None:
    billing_services.refund_record(
        payment=payment, amount=amount, reason="Test refund", refunded_on=datetime.date(2026, 11, 20), method="check"
    )
