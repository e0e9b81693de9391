"""Sandbox state: companies with their entities, remembered requestid answers and statistics, and its file.

Entities are kept as the dicts QBO answers with, except that amounts are `Decimal` (they become JSON numbers on
the wire, see `to_wire`). Each company has one re-entrant lock; every read or write of its entities holds it.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

logger = logging.getLogger(__name__)

# QBO reports times in the company's zone; sandbox companies are created in US Pacific time.
COMPANY_TZ = ZoneInfo("America/Los_Angeles")

ENTITY_NAMES = (
    "Account",
    "Class",
    "CompanyInfo",
    "Customer",
    "Department",
    "Deposit",
    "Invoice",
    "Item",
    "Payment",
    "PaymentMethod",
    "Preferences",
    "RefundReceipt",
    "TaxCode",
    "TaxRate",
)


def qbo_datetime(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=COMPANY_TZ)


def qbo_time(epoch: float, *, millis: bool = False) -> str:
    """`2015-07-24T10:33:39-07:00` (MetaData) or `2015-07-24T10:33:39.110-07:00` (the answer's `time`)."""
    return qbo_datetime(epoch).isoformat(timespec="milliseconds" if millis else "seconds")


def to_wire(value: object) -> object:
    """A deep copy ready for `json.dumps`, with amounts as JSON numbers like QBO's (100.0 -> 100, 12.75 -> 12.75).

    Money never has more than 15 significant digits, so the float round-trips exactly to the decimal text.
    """
    if isinstance(value, dict):
        return {key: to_wire(item) for key, item in value.items()}
    if isinstance(value, list):
        return [to_wire(item) for item in value]
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _wire_scalar(value: object) -> object:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"cannot send {type(value).__name__}")


def dumps(body: dict) -> bytes:
    """`json.dumps(to_wire(body))`, compact, converting the amounts while encoding instead of copying the body."""
    return json.dumps(body, separators=(",", ":"), default=_wire_scalar).encode()


class CompanyStats:
    """What tests and benchmarks ask about: requests performed, 429s served, injected faults, replays."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self.counts[name] += amount

    def as_dict(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counts)


class Company:
    """One QuickBooks company (realm). Derived indexes are rebuilt by `accounting.rebuild_indexes`."""

    def __init__(self, realm_id: str, name: str, created_at: float, profile: str = "us-ast") -> None:
        self.realm_id = realm_id
        self.name = name
        self.created_at = created_at
        self.profile = profile  # a key of profiles.PROFILES: the kind of company (country, tax, currency)
        self.lock = threading.RLock()
        self.entities: dict[str, dict[str, dict]] = {name: {} for name in ENTITY_NAMES}
        self.counters: dict[str, int] = {}
        self.next_doc_number = 1001
        # requestid -> (HTTP status, body bytes) of the original answer, oldest first.
        self.requestids: OrderedDict[str, tuple[int, bytes]] = OrderedDict()
        # Derived from payments: invoice id -> {payment id: amount applied}.
        self.applications: dict[str, dict[str, Decimal]] = {}
        # Derived: entity -> {casefolded unique name or DocNumber: id}, so uniqueness checks stay O(1).
        self.unique: dict[str, dict[str, str]] = {}
        # Deleted transactions, for Change Data Capture: entity -> {id: when (epoch)}.
        self.deleted: dict[str, dict[str, float]] = {}
        # Changes not yet notified by webhook: (entity, id, operation, when). Not persisted.
        self.events: list[tuple[str, str, str, float]] = []
        self.stats = CompanyStats()
        # Bumped by `touch()` after each change, so the data file re-encodes only companies that changed.
        self.version = 0
        self._encoded: tuple[int, str] | None = None  # (version, snapshot as JSON text)
        # requestid -> (its answer's body, [requestid, status, body] as JSON text): answers never change, so each
        # is encoded once (they are as big as the entities: a batch answer holds up to 30 of them).
        self._encoded_requestids: dict[str, tuple[bytes, str]] = {}

    def next_id(self, sequence: str) -> str:
        self.counters[sequence] = self.counters.get(sequence, 0) + 1
        return str(self.counters[sequence])

    def remember(self, requestid: str, status: int, body: bytes, retention: int) -> None:
        self.requestids[requestid] = (status, body)
        while len(self.requestids) > retention:
            self.requestids.popitem(last=False)

    def touch(self) -> None:
        """Note a change of this company (its data-file text must be encoded again)."""
        with self.lock:
            self.version += 1

    def snapshot(self) -> dict:
        with self.lock:
            return copy.deepcopy(self._state())

    def snapshot_json(self) -> str:
        """`snapshot()` as JSON text (amounts as {"$decimal": ...}), encoded under the lock without a deep copy, and
        kept until the next `touch()`: a data-file write re-encodes only the companies that changed."""
        with self.lock:
            if self._encoded is None or self._encoded[0] != self.version:
                state = self._state()
                del state["requestids"]
                cache, self._encoded_requestids = self._encoded_requestids, {}
                for key, (status, body) in self.requestids.items():
                    kept = cache.get(key)
                    if kept is None or kept[0] is not body:
                        kept = (body, json.dumps([key, status, body.decode()]))
                    self._encoded_requestids[key] = kept
                requestids = ", ".join(text for _, text in self._encoded_requestids.values())
                self._encoded = (self.version, f'{dumps_stored(state)[:-1]}, "requestids": [{requestids}]}}')
            return self._encoded[1]

    def _state(self) -> dict:
        """What the data file keeps of this company; shares the live objects: the caller holds the lock."""
        return {
            "realm_id": self.realm_id,
            "name": self.name,
            "created_at": self.created_at,
            "profile": self.profile,
            "entities": self.entities,
            "counters": dict(self.counters),
            "next_doc_number": self.next_doc_number,
            "requestids": [[key, status, body.decode()] for key, (status, body) in self.requestids.items()],
            "deleted": self.deleted,
        }

    @classmethod
    def restore(cls, data: dict) -> Company:
        company = cls(data["realm_id"], data["name"], data["created_at"], data.get("profile", "us-ast"))
        for name, entities in data["entities"].items():
            company.entities[name] = entities
        company.counters = dict(data["counters"])
        company.next_doc_number = data["next_doc_number"]
        for key, status, body in data["requestids"]:
            company.requestids[key] = (status, body.encode())
        company.deleted = data.get("deleted", {})
        return company


class Store:
    """All companies, by realm id."""

    def __init__(self) -> None:
        self._companies: dict[str, Company] = {}
        self._lock = threading.Lock()

    def add(self, company: Company) -> None:
        with self._lock:
            self._companies[company.realm_id] = company

    def get(self, realm_id: str) -> Company | None:
        with self._lock:
            return self._companies.get(realm_id)

    def all(self) -> list[Company]:
        with self._lock:
            return sorted(self._companies.values(), key=lambda company: company.created_at)

    def clear(self) -> None:
        with self._lock:
            self._companies.clear()


# --- The data file ---


def _encode(value: object) -> object:
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    raise TypeError(f"cannot store {type(value).__name__}")


def dumps_stored(value: object) -> str:
    """JSON text as the data file keeps it: amounts as {"$decimal": "12.75"}, so they come back as Decimal."""
    return json.dumps(value, default=_encode)


def _decode(obj: dict) -> object:
    if len(obj) == 1 and "$decimal" in obj:
        return Decimal(obj["$decimal"])
    return obj


class DataFile:
    """Keeps the sandbox state in a JSON file, so a restarted sandbox still knows its companies and tokens.

    Writes happen on a background thread after changes: changes arriving together are written once, and a write
    follows the previous one by at least `interval` seconds and at least WRITE_SHARE_INVERSE times as long as that
    write took (encoding a big company costs CPU the sandbox's callers need; the file is a convenience for restarts,
    not QuickBooks behaviour). `close()` (the server stopping, SIGTERM or Ctrl-C for `manage.py qbo_sandbox`) always
    writes the latest state. Each write replaces the file atomically, so a crash leaves the previous version.
    `text()` gives the file's content (the companies' JSON text, re-encoded only when they changed).
    """

    WRITE_SHARE_INVERSE = 50  # writing takes at most ~2 % of one core

    def __init__(self, path: str | Path, text: Callable[[], str], delay: float = 0.05, interval: float = 2.0) -> None:
        self.path = Path(path)
        self._text = text
        self._delay = delay
        self._interval = interval
        self._dirty = threading.Event()
        self._stopping = threading.Event()
        self._write_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="qbo-sandbox-data-file", daemon=True)

    def load(self) -> dict | None:
        if not self.path.exists():
            return None
        return json.loads(self.path.read_text(encoding="utf-8"), object_hook=_decode)

    def start(self) -> None:
        self._thread.start()

    def mark_dirty(self) -> None:
        self._dirty.set()

    def close(self) -> None:
        self._stopping.set()
        self._dirty.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self.write()

    def write(self) -> None:
        with self._write_lock:
            text = self._text()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_name(self.path.name + ".tmp")
            temporary.write_text(text, encoding="utf-8")
            os.replace(temporary, self.path)

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._dirty.wait()
            # Let changes that arrive together be written once; stop at once when closing (close() writes).
            if self._stopping.wait(self._delay):
                return
            self._dirty.clear()
            started = time.monotonic()
            try:
                self.write()
            except OSError:
                logger.exception("could not write the sandbox data file %s", self.path)
            took = time.monotonic() - started
            pause = max(self._interval, took * self.WRITE_SHARE_INVERSE) - took - self._delay
            if pause > 0 and self._stopping.wait(pause):
                return
