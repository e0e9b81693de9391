"""The sandbox's webhooks end to end: a payment deleted by hand in QuickBooks makes the sandbox send a signed
notification (each format, sent twice by its duplicate switch); FieldSync's endpoint takes it once and finds the
deletion. A small receiver stands between them so the test, not a live server thread, hands the notification on."""

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.urls import reverse

from quickbooks_export.changes import webhook_events_check
from quickbooks_export.models import QuickBooksChange, QuickBooksEvent
from quickbooks_export.webhooks import signature_valid
from tests.factories import issued_invoice, pay

from .conftest import connect, export

pytestmark = pytest.mark.django_db
TOKEN = "sandbox-verifier-token"


@pytest.fixture
def receiver():
    """A local HTTP endpoint that keeps what it receives: [(signature, body)]."""
    received: list[tuple[str, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.headers.get("intuit-signature", ""), body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.received = received
    server.url = f"http://127.0.0.1:{server.server_address[1]}/"
    yield server
    server.shutdown()


def deletions(received: list) -> list[tuple[str, bytes]]:
    return [(signature, body) for signature, body in received if b"elete" in body]


def wait_for_deletions(received: list, count: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while len(deletions(received)) < count and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.mark.parametrize("fmt", ["cloudevents", "legacy"])
def test_a_payment_deleted_by_hand_is_notified_signed_and_found_once(
    fmt, receiver, qbo_sandbox_factory, settings, client
):
    settings.QBO_WEBHOOK_VERIFIER_TOKEN = TOKEN
    server = qbo_sandbox_factory(
        webhook_url=receiver.url, webhook_verifier_token=TOKEN, webhook_format=fmt, webhook_duplicate=True
    )
    company = connect(server, settings)
    payment = pay(issued_invoice(amount="60.00"), "60.00")
    export(payment)
    payment.refresh_from_db()
    assert deletions(receiver.received) == []  # the export's own notifications are creates and updates

    server.delete_entity(company.realm_id, "Payment", payment.export_reference)
    wait_for_deletions(receiver.received, 2)

    notified = deletions(receiver.received)
    assert len(notified) == 2  # the duplicate switch: Intuit may deliver one notification twice
    for signature, body in notified:
        assert signature_valid(body, signature, TOKEN)
        response = client.post(
            reverse("quickbooks_export:webhooks"),
            body,
            content_type="application/json",
            headers={"intuit-signature": signature},
        )
        assert response.status_code == 200
    assert QuickBooksEvent.objects.filter(entity="Payment", operation__in=["Deleted", "Delete"]).count() == 1
    assert webhook_events_check() == 1
    assert QuickBooksChange.objects.get().change == "deleted"


def test_the_drop_switch_sends_nothing(receiver, qbo_sandbox_factory, settings):
    server = qbo_sandbox_factory(webhook_url=receiver.url, webhook_verifier_token=TOKEN, webhook_drop=True)
    connect(server, settings)
    export(pay(issued_invoice(amount="60.00"), "60.00"))
    time.sleep(0.5)
    assert receiver.received == []
