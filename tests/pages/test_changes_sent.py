"""The export log's "Changes sent to QuickBooks": updates and voids FieldSync sent after export, per day."""

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from billing import services as billing_services
from quickbooks_export.invoice_updates import invoice_update_push
from quickbooks_export.models import QuickBooksRequest
from quickbooks_export.updates import customer_update_push
from tests.factories import CustomerFactory, issued_invoice, pay
from tests.quickbooks_export.export.conftest import export

pytestmark = pytest.mark.django_db


def changes_sent(client) -> str:
    html = client.get(reverse("exports:log")).content.decode()
    return html.split('id="changes-sent-heading"')[1]


def void_sent(n: int, *, days_ago: int = 0, operation: str = "Invoice.void", kind: str = "void") -> None:
    """Outbox rows of voids QuickBooks answered, as voids.py (invoices) and refund_recording.py (payments) leave."""
    for i in range(n):
        request = QuickBooksRequest.objects.create(
            realm_id="1",
            request_id=f"{kind}-{operation}-{days_ago}-{i}",
            operation=operation,
            kind=kind,
            local_key=str(1000 + i),
            payload={"Id": str(i), "SyncToken": "1"},
            state=QuickBooksRequest.State.DONE,
        )
        QuickBooksRequest.objects.filter(pk=request.pk).update(
            completed_at=timezone.now() - datetime.timedelta(days=days_ago)
        )


def test_updates_and_voids_sent_are_counted_per_day(office_client, qbo_company):
    customer = CustomerFactory(phone="555-0100")
    invoice = issued_invoice(customer=customer, amount="100.00")
    export(pay(invoice, "100.00"))
    billing_services.customer_update(customer=customer, phone="555-0199")
    assert customer_update_push(customer_id=customer.pk) == "updated"
    billing_services.invoice_edit(invoice=invoice, due_on=datetime.date(2026, 12, 1))
    assert invoice_update_push(invoice_id=invoice.pk) == "updated"
    billing_services.invoice_edit(invoice=invoice, due_on=datetime.date(2026, 12, 2))
    assert invoice_update_push(invoice_id=invoice.pk) == "updated"
    void_sent(3)
    void_sent(2, operation="Payment.void", kind="refund")  # whole reversals
    void_sent(1, operation="Payment.void", kind="undo")  # an undone export: counted on its undo, not here
    void_sent(1, operation="Payment.update", kind="refund")  # a partial reversal lowers the payment: not a void
    void_sent(1, days_ago=45)  # older than the summary

    html = changes_sent(office_client)

    row = html.split("<tbody>")[1].split("</tr>")[0]
    cells = [cell.split(">")[-1] for cell in row.split("</td>")[1:5]]
    assert cells == ["1", "2", "3", "2"]  # customers updated, invoices updated, invoices voided, payments voided
    assert html.count("<tr>") == 2  # the header and today: the 45-day-old void is outside the period


def test_nothing_sent_says_so(office_client):
    assert "Nothing changed in QuickBooks after export" in changes_sent(office_client)


def test_the_summary_costs_the_same_queries_for_one_day_and_many(office_client):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert office_client.get(reverse("exports:log")).status_code == 200
        return len(captured)

    void_sent(1)
    one = queries()
    for day in range(1, 20):
        void_sent(2, days_ago=day)
    assert queries() == one
    assert changes_sent(office_client).count("<tr>") == 21


def test_the_summary_needs_the_export_log_permission(client):
    from .conftest import make_user

    client.force_login(make_user("nobody"))
    assert client.get(reverse("exports:log")).status_code == 403
