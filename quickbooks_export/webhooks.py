"""What changed in QuickBooks: Intuit's webhook notifications, received fast, checked later against QuickBooks itself.

The endpoint (POST /quickbooks/webhooks/) only verifies and stores, then answers (Intuit expects an answer within
3 seconds and retries otherwise):
- `intuit-signature` is base64(HMAC-SHA256(verifier token, raw body)) (Intuit, "Validating the notification"); it is
  compared in constant time. The token comes from the environment (QBO_WEBHOOK_VERIFIER_TOKEN); without one every
  notification is refused, since none can be trusted. A wrong or missing signature: 401, nothing stored.
- Both payload formats: the CloudEvents array Intuit moved to in 2025 (blogs.intuit.com, 2025-11-12, "Upcoming
  change to webhooks payload structure": `id`, `type` "qbo.<entity>.<operation>.v1", `time`, `intuitentityid`,
  `intuitaccountid`; field names as published there, *unconfirmed* beyond that article) and the older
  `{"eventNotifications": [{"realmId", "dataChangeEvent": {"entities": [{"name", "id", "operation",
  "lastUpdated"}]}}]}`.
- Each event is stored once (QuickBooksEvent.event_id unique, insert-or-ignore): Intuit may deliver one twice.

The check (webhook_events_check, a task queued on commit) never trusts the order or the content of notifications,
which can come late, twice or out of order: for every object named, if FieldSync exported it, it reads the object from
QuickBooks now and compares it with what FieldSync has (changes.py). A Delete followed by an older Update finds the
object gone either way.
"""

import base64
import binascii
import hashlib
import hmac
import json
import logging
from datetime import UTC, datetime

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from django_q.tasks import async_task

from .models import QuickBooksEvent

logger = logging.getLogger(__name__)

CHECK_TASK = "quickbooks_export.tasks.webhook_events_check_task"
MAX_BODY_BYTES = 1024 * 1024
ENTITIES = {"Payment", "Invoice", "Customer"}


def signature_valid(body: bytes, header: str, token: str) -> bool:
    """Whether `header` is base64(HMAC-SHA256(token, body)), compared in constant time."""
    if not token or not header:
        return False
    try:
        given = base64.b64decode(header, validate=True)
    except (binascii.Error, ValueError):
        return False
    expected = hmac.new(token.encode(), body, hashlib.sha256).digest()
    return hmac.compare_digest(given, expected)


def _when(text) -> datetime | None:
    parsed = parse_datetime(str(text or ""))
    if parsed is not None and timezone.is_naive(parsed):
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def parse_events(payload) -> list[QuickBooksEvent]:
    """The events of either format, as unsaved rows; raises ValueError when the payload is neither."""
    events = []
    if isinstance(payload, list):  # CloudEvents
        for event in payload:
            kind = str(event.get("type", "")).split(".")
            if len(kind) < 3 or kind[0] != "qbo" or not event.get("id"):
                raise ValueError("a CloudEvent without an id or a qbo.<entity>.<operation> type")
            entity = next((e for e in ENTITIES if e.lower() == kind[1].lower()), kind[1][:30])
            events.append(
                QuickBooksEvent(
                    event_id=str(event["id"])[:200],
                    realm_id=str(event.get("intuitaccountid", ""))[:32],
                    entity=entity,
                    qbo_id=str(event.get("intuitentityid", ""))[:32],
                    operation=kind[2].capitalize()[:20],
                    occurred_at=_when(event.get("time")),
                )
            )
        return events
    if isinstance(payload, dict) and isinstance(payload.get("eventNotifications"), list):
        for notification in payload["eventNotifications"]:
            realm_id = str(notification.get("realmId", ""))[:32]
            for entity in (notification.get("dataChangeEvent") or {}).get("entities") or []:
                name, qbo_id = str(entity.get("name", ""))[:30], str(entity.get("id", ""))[:32]
                operation, updated = str(entity.get("operation", ""))[:20], str(entity.get("lastUpdated", ""))
                events.append(
                    QuickBooksEvent(
                        event_id=f"{realm_id}|{name}|{qbo_id}|{operation}|{updated}"[:200],
                        realm_id=realm_id,
                        entity=name,
                        qbo_id=qbo_id,
                        operation=operation,
                        occurred_at=_when(updated),
                    )
                )
        return events
    raise ValueError("neither CloudEvents nor eventNotifications")


@csrf_exempt  # Intuit cannot send a CSRF token; the HMAC signature is the proof of origin
@require_POST
def webhook_receive(request: HttpRequest) -> HttpResponse:
    body = request.body[: MAX_BODY_BYTES + 1]
    if len(body) > MAX_BODY_BYTES:
        return JsonResponse({"error": "too large"}, status=413)
    if not signature_valid(body, request.headers.get("intuit-signature", ""), settings.QBO_WEBHOOK_VERIFIER_TOKEN):
        logger.warning("QuickBooks webhook refused: signature missing or wrong")
        return JsonResponse({"error": "signature"}, status=401)
    try:
        events = parse_events(json.loads(body))
    except (ValueError, TypeError, AttributeError):
        return JsonResponse({"error": "payload"}, status=400)
    with transaction.atomic():
        QuickBooksEvent.objects.bulk_create(events, ignore_conflicts=True)
        transaction.on_commit(lambda: async_task(CHECK_TASK, task_name=f"webhook-{timezone.now():%H%M%S%f}"))
    return HttpResponse(status=200)
