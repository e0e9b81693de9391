"""Two Web Connector sessions truly at once: two threads over HTTP against a live server, each request in its own
database connection (PostgreSQL: real row locks and concurrent transactions)."""

import pytest

from billing.models import Payment
from quickbooks_desktop import services
from quickbooks_desktop.simulator import DesktopCompany, HttpTransport, WebConnectorSimulator
from tests.concurrency import run_at_once
from tests.factories import CustomerFactory, issued_invoice, pay

from .conftest import QBWC_PASSWORD, QBWC_USER

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("round_", range(3))
def test_two_web_connectors_at_once_export_each_payment_exactly_once(live_server, desktop, round_):
    payments = []
    for n in range(6):
        customer = CustomerFactory()
        invoice = issued_invoice(customer=customer, amount="100.00", number=f"INV-{round_}{n:02d}")
        payments += [pay(invoice, "40.00"), pay(invoice, "60.00")]
    services.desktop_export_batch_start(payments=[p.pk for p in payments], selection="race")
    company = DesktopCompany()  # one company file, two Web Connectors pointed at it

    def session():
        return WebConnectorSimulator(
            HttpTransport(f"{live_server.url}/quickbooks-desktop/qbwc/"),
            username=QBWC_USER,
            password=QBWC_PASSWORD,
            company=company,
            noop_wait=0.02,
            max_noops=2000,
        ).run()

    reports = run_at_once(session, session)

    assert not [r for r in reports if isinstance(r, Exception)], reports
    assert [r.auth_code for r in reports] == ["", ""]  # both sessions had work to do at the same time
    assert sum(r.noops for r in reports) > 0  # one waited ("NoOp") while the other had a message set out
    refs = [t.ref_number for t in company.transactions("ReceivePayment")]
    assert sorted(refs) == sorted(f"FS-P{p.pk}" for p in payments)
    assert len(company.transactions("Invoice")) == 6 and len(company.records("Customer")) == 6
    assert set(Payment.objects.values_list("export_status", flat=True)) == {Payment.ExportStatus.EXPORTED}
