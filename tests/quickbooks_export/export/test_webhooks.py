"""What changed in QuickBooks, by webhook: signed notifications in both of Intuit's formats, stored once, checked
against QuickBooks itself (so late, duplicated or out-of-order notifications cannot mislead)."""

import base64
import hashlib
import hmac
import json
from decimal import Decimal

import pytest
from django.urls import reverse
from django_q.models import OrmQ

from quickbooks_export.changes import webhook_events_check
from quickbooks_export.models import QuickBooksChange, QuickBooksEvent
from quickbooks_export.webhooks import CHECK_TASK
from tests.factories import issued_invoice, pay

from .conftest import export

pytestmark = pytest.mark.django_db
TOKEN = "verifier-token-for-tests"
URL = reverse("quickbooks_export:webhooks")


@pytest.fixture(autouse=True)
def verifier_token(settings):
    settings.QBO_WEBHOOK_VERIFIER_TOKEN = TOKEN


def sign(body: bytes, token: str = TOKEN) -> str:
    return base64.b64encode(hmac.new(token.encode(), body, hashlib.sha256).digest()).decode()


def post(client, payload, *, signature: str | None = None):
    body = json.dumps(payload).encode()
    return client.post(
        URL, body, content_type="application/json", headers={"intuit-signature": signature or sign(body)}
    )


def cloud_event(realm_id: str, entity: str, qbo_id: str, operation: str, *, event_id: str, time: str) -> dict:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "intuit.dsnBgbseACLLRZNxo2dfc4evmEJdxde58xeeYcZliOU=",
        "type": f"qbo.{entity.lower()}.{operation.lower()}.v1",
        "datacontenttype": "application/json",
        "time": time,
        "intuitentityid": qbo_id,
        "intuitaccountid": realm_id,
        "data": {},
    }


def legacy(realm_id: str, entity: str, qbo_id: str, operation: str, *, updated: str) -> dict:
    return {
        "eventNotifications": [
            {
                "realmId": realm_id,
                "dataChangeEvent": {
                    "entities": [{"name": entity, "id": qbo_id, "operation": operation, "lastUpdated": updated}]
                },
            }
        ]
    }


@pytest.fixture
def exported_payment(qbo_company):
    payment = pay(issued_invoice(amount="100.00", number="INV-5001"), "100.00")
    export(payment)
    payment.refresh_from_db()
    return payment


def test_a_forged_signature_is_refused_and_nothing_is_stored(client, qbo_company):
    payload = [cloud_event(qbo_company.realm_id, "Payment", "1", "Deleted", event_id="e1", time="2026-12-04T10:00:00Z")]
    body = json.dumps(payload).encode()

    assert post(client, payload, signature=sign(body, token="someone-elses-token")).status_code == 401
    assert post(client, payload, signature="not base64 at all!").status_code == 401
    assert client.post(URL, body, content_type="application/json").status_code == 401  # no signature
    assert not QuickBooksEvent.objects.exists() and not OrmQ.objects.exists()


def test_without_a_verifier_token_every_notification_is_refused(client, settings, qbo_company):
    settings.QBO_WEBHOOK_VERIFIER_TOKEN = ""
    payload = legacy(qbo_company.realm_id, "Payment", "1", "Delete", updated="2026-12-04T10:00:00.000Z")
    body = json.dumps(payload).encode()
    assert post(client, payload, signature=sign(body, token="")).status_code == 401
    assert not QuickBooksEvent.objects.exists()


def test_a_payment_deleted_in_quickbooks_is_found_by_webhook(
    client, qbo_company, exported_payment, django_capture_on_commit_callbacks
):
    qbo_company.server.delete_entity(qbo_company.realm_id, "Payment", exported_payment.export_reference)
    payload = [
        cloud_event(
            qbo_company.realm_id,
            "Payment",
            exported_payment.export_reference,
            "Deleted",
            event_id="evt-1",
            time="2026-12-04T10:00:00Z",
        )
    ]

    with django_capture_on_commit_callbacks(execute=True):
        assert post(client, payload).status_code == 200
    assert [row.task["func"] for row in OrmQ.objects.all()] == [CHECK_TASK]  # only queued: the answer is fast
    assert webhook_events_check() == 1

    [change] = QuickBooksChange.objects.all()
    assert (change.change, change.kind, change.local_key, change.found_by) == (
        "deleted",
        "payment",
        str(exported_payment.pk),
        "webhook",
    )
    assert Decimal(change.ours["total"]) == Decimal("100.00") and change.theirs == {}
    assert QuickBooksEvent.objects.get().state == "checked"


def test_duplicate_and_out_of_order_notifications_record_one_change_as_quickbooks_has_it_now(
    client, qbo_company, exported_payment
):
    qbo_id = exported_payment.export_reference
    qbo_company.server.edit_entity(qbo_company.realm_id, "Payment", qbo_id, {"PrivateNote": "edited"})
    qbo_company.server.delete_entity(qbo_company.realm_id, "Payment", qbo_id)
    deleted = cloud_event(qbo_company.realm_id, "Payment", qbo_id, "Deleted", event_id="d", time="2026-12-04T10:05:00Z")
    updated = cloud_event(qbo_company.realm_id, "Payment", qbo_id, "Updated", event_id="u", time="2026-12-04T10:00:00Z")

    for payload in ([deleted], [deleted], [updated]):  # the delete twice, then the older update, late
        assert post(client, payload).status_code == 200
    old_format = legacy(qbo_company.realm_id, "Payment", qbo_id, "Delete", updated="2026-12-04T10:05:00.000Z")
    assert post(client, old_format).status_code == 200
    assert post(client, old_format).status_code == 200

    assert QuickBooksEvent.objects.count() == 3  # d, u and the older format's one: duplicates stored once
    assert webhook_events_check() == 1
    assert list(QuickBooksChange.objects.values_list("change", flat=True)) == ["deleted"]
    assert webhook_events_check() == 0  # nothing pending any more


def test_an_amount_and_a_void_changed_in_quickbooks_are_found(client, qbo_company, exported_payment):
    [invoice] = qbo_company.entities("Invoice")
    qbo_company.server.edit_entity(
        qbo_company.realm_id, "Payment", exported_payment.export_reference, {"TotalAmt": 110}
    )
    events = [
        cloud_event(
            qbo_company.realm_id, "Payment", exported_payment.export_reference, "Updated", event_id="p", time=""
        ),
        cloud_event(qbo_company.realm_id, "Invoice", invoice["Id"], "Updated", event_id="i", time=""),
        cloud_event(qbo_company.realm_id, "Customer", "999", "Updated", event_id="c", time=""),
    ]
    assert post(client, events).status_code == 200

    webhook_events_check()

    change = QuickBooksChange.objects.get(kind="payment")
    assert change.change == "amount" and Decimal(change.theirs["total"]) == Decimal("110")
    assert not QuickBooksChange.objects.filter(kind="invoice").exists()  # the invoice still totals 100.00
    assert QuickBooksEvent.objects.get(event_id="c").state == "ignored"  # not something FieldSync exported


def test_a_payload_of_neither_format_is_refused(client, qbo_company):
    assert post(client, {"hello": "world"}).status_code == 400
    assert client.get(URL).status_code == 405
