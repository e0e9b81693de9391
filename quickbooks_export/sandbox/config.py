"""Configuration and clock of the QuickBooks Online sandbox."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

DAY = 24 * 3600

Clock = Callable[[], float]
"""Returns the current time as epoch seconds; `time.time` in real use, a `ManualClock` in tests."""


@dataclass
class SandboxConfig:
    """Everything that can differ between two sandboxes. Defaults mirror QuickBooks Online production."""

    client_id: str = "fieldsync-local"
    client_secret: str = "fieldsync-local-secret"
    access_token_ttl: int = 3600
    refresh_token_ttl: int = 100 * DAY
    # QBO.md: every refresh returns a new refresh token and the old one dies about 24 h later.
    rotated_refresh_grace: int = DAY
    # Intuit does not publish the lifetime of an authorization code (*unconfirmed*); a few minutes is the usual value.
    authorization_code_ttl: int = 300
    requests_per_minute: int = 500
    max_in_flight: int = 10
    batch_per_minute: int = 40
    latency_ms: int = 0
    data_file: str | Path | None = None
    # How many requestid responses a company remembers. Intuit does not publish the retention (*unconfirmed*);
    # the oldest are forgotten first.
    requestid_retention: int = 100_000
    # The kind of company (profiles.PROFILES) and seed that companies created through the consent page, the
    # /_sandbox/companies endpoint or authorize() without a realm get when they do not name one.
    company_profile: str = "us-ast"
    company_seed: str | None = None
    # Webhooks (sandbox/webhooks.py): where to POST signed change notifications ("" = none), the verifier token that
    # signs them, the format ("cloudevents" or "legacy" eventNotifications), and switches to send them late, twice, or
    # not at all (what Intuit's delivery can do).
    webhook_url: str = ""
    webhook_verifier_token: str = ""
    webhook_format: str = "cloudevents"
    webhook_delay: float = 0.0
    webhook_duplicate: bool = False
    webhook_drop: bool = False


class ManualClock:
    """A clock that only moves when told to, so tests can cross a 60 s window or a 24 h grace instantly."""

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds
