"""Fault injection: make the next N matching requests fail the way QuickBooks sometimes does.

Kinds: "500" and "503" (a server failure, nothing performed), "429" (throttled, nothing performed), and
"drop_after_commit" (the request is performed and committed, its requestid answer remembered, and then the
connection is closed without an answer: the case that makes naive clients post twice), and "batch_item_10000" (the
first item of the next matching batch is not performed and answers a Fault with code 10000, "An application error
has occurred while processing your request", while the other items are performed: the per-item system failure
Intuit's batch answers can carry — each item of a batch succeeds or fails on its own; *unconfirmed* whether a 10000
item was performed or not, so the sandbox takes the case that must be retried).
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import asdict, dataclass

KINDS = ("500", "503", "429", "drop_after_commit", "batch_item_10000")


@dataclass
class FaultRule:
    id: int
    kind: str
    remaining: int
    realm_id: str | None = None  # None: any company (and the OAuth endpoints)
    path_contains: str | None = None  # matched case-insensitively against the request path
    method: str | None = None

    def matches(self, *, realm_id: str | None, path: str, method: str) -> bool:
        return (
            (self.realm_id is None or self.realm_id == realm_id)
            and (self.path_contains is None or self.path_contains.lower() in path.lower())
            and (self.method is None or self.method.upper() == method)
        )


class FaultInjector:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._ids = itertools.count(1)

    def add(
        self,
        kind: str | int,
        *,
        count: int = 1,
        realm_id: str | None = None,
        path_contains: str | None = None,
        method: str | None = None,
    ) -> FaultRule:
        kind = str(kind)
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        if count < 1:
            raise ValueError("count must be at least 1")
        with self._lock:
            rule = FaultRule(next(self._ids), kind, count, realm_id, path_contains or None, method)
            self._rules.append(rule)
            return rule

    def take(self, *, realm_id: str | None, path: str, method: str, kinds: tuple[str, ...]) -> str | None:
        """Consume one use of the first matching rule of one of `kinds`; returns its kind."""
        with self._lock:
            for rule in self._rules:
                if rule.kind in kinds and rule.matches(realm_id=realm_id, path=path, method=method):
                    rule.remaining -= 1
                    if rule.remaining == 0:
                        self._rules.remove(rule)
                    return rule.kind
        return None

    def list(self) -> list[dict]:
        with self._lock:
            return [asdict(rule) for rule in self._rules]

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
