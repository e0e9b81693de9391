"""The sandbox's webhooks: after each write, a signed change notification POSTed to the configured URL.

Signed as Intuit signs them: `intuit-signature` = base64(HMAC-SHA256(verifier token, body)). Two formats: the
CloudEvents array Intuit moved to in 2025 (blogs.intuit.com, 2025-11-12; `type` "qbo.<entity>.<operation>.v1",
`intuitentityid`, `intuitaccountid`, `time`, `id`) and the older eventNotifications / dataChangeEvent format.
One notification per write, sent from a background thread (never inside the company's lock); switches in the config
send it late (webhook_delay seconds), twice (webhook_duplicate) or not at all (webhook_drop), as Intuit's delivery
can. How Intuit groups changes into notifications is *unconfirmed*: the sandbox sends each write on its own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import threading
import time
import urllib.request
import uuid

from .config import SandboxConfig
from .store import qbo_time

logger = logging.getLogger(__name__)
PAST_TENSE = {"Create": "created", "Update": "updated", "Delete": "deleted", "Void": "voided", "Merge": "merged"}


def payload(fmt: str, realm_id: str, events: list[tuple[str, str, str, float]]) -> bytes:
    if fmt == "legacy":
        entities = [
            {"name": name, "id": entity_id, "operation": operation, "lastUpdated": qbo_time(when)}
            for name, entity_id, operation, when in events
        ]
        body: object = {"eventNotifications": [{"realmId": realm_id, "dataChangeEvent": {"entities": entities}}]}
    else:
        body = [
            {
                "specversion": "1.0",
                "id": str(uuid.uuid4()),
                "source": "intuit.sandbox",
                "type": f"qbo.{name.lower()}.{PAST_TENSE.get(operation, operation.lower())}.v1",
                "datacontenttype": "application/json",
                "time": qbo_time(when),
                "intuitentityid": entity_id,
                "intuitaccountid": realm_id,
                "data": {},
            }
            for name, entity_id, operation, when in events
        ]
    return json.dumps(body).encode()


def sign(body: bytes, token: str) -> str:
    return base64.b64encode(hmac.new(token.encode(), body, hashlib.sha256).digest()).decode()


def emit(config: SandboxConfig, realm_id: str, events: list[tuple[str, str, str, float]]) -> None:
    if config.webhook_drop:
        return
    body = payload(config.webhook_format, realm_id, events)
    headers = {"Content-Type": "application/json", "intuit-signature": sign(body, config.webhook_verifier_token)}

    def send() -> None:
        if config.webhook_delay:
            time.sleep(config.webhook_delay)
        for _ in range(2 if config.webhook_duplicate else 1):
            request = urllib.request.Request(config.webhook_url, data=body, headers=headers, method="POST")  # noqa: S310
            try:
                with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - a configured local URL
                    response.read()
            except OSError as exc:
                logger.warning("Sandbox webhook to %s failed: %s", config.webhook_url, exc)

    threading.Thread(target=send, name="sandbox-webhook", daemon=True).start()
