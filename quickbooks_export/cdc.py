"""Change Data Capture sweep: the safety net under webhooks, which can be late, out of order or lost.

Every 15 minutes (django-q2 schedule, migration 0007) it asks QuickBooks what changed among payments and invoices
since its stored checkpoint (QuickBooksCdcCheckpoint, per company and entity), and compares each object FieldSync
exported with FieldSync's records, from the answer itself (no further read): changes.object_check.

Intuit's limits ("Change data capture"): changedSince looks back at most 30 days, and one answer holds at most 1,000
objects. A checkpoint older than 30 days starts at the limit (older changes are for the reconciliation report). An
answer of 1,000 objects is narrowed: the sweep continues from the newest change it saw (which objects a capped answer
keeps is *unconfirmed*; the sandbox keeps the oldest), up to MAX_ROUNDS answers per run; the rest waits for the next
run. The checkpoint moves to the time the last complete answer was asked for, less a minute of overlap (clocks
differ; seeing a change twice records it once).
"""

from datetime import datetime, timedelta

from django.utils import timezone

from . import inbound
from .changes import mapped_objects, object_check
from .client import QuickBooksClient
from .errors import QuickBooksError
from .models import QuickBooksCdcCheckpoint, QuickBooksConnection

ENTITIES = ("Payment", "Invoice", "Customer")
CAP = 1000
MAX_ROUNDS = 10
WINDOW = timedelta(days=30) - timedelta(minutes=5)  # inside Intuit's 30 days, with room for clock differences
OVERLAP = timedelta(minutes=1)


def _updated(row: dict) -> datetime | None:
    text = (row.get("MetaData") or {}).get("LastUpdatedTime")
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")) if text else None
    except ValueError:
        return None


def cdc_sweep() -> int:
    """One sweep of every connected company (one per business unit). Returns how many changes it recorded. Reads
    only. A company QuickBooks refuses (e.g. it needs reconnecting) does not keep the others from being swept; its
    error is raised afterwards, so the task shows it."""
    found, failure = 0, None
    for connection in QuickBooksConnection.objects.filter(is_current=True).order_by("pk"):
        try:
            found += _sweep_company(connection)
        except QuickBooksError as exc:
            failure = failure or exc
    if failure is not None:
        raise failure
    return found


def _sweep_company(connection: QuickBooksConnection) -> int:
    client = QuickBooksClient(connection)
    found = 0
    for entity in ENTITIES:
        started = timezone.now()
        checkpoint, _ = QuickBooksCdcCheckpoint.objects.get_or_create(
            realm_id=connection.realm_id, entity=entity, defaults={"changed_since": connection.connected_at}
        )
        since = max(checkpoint.changed_since, started - WINDOW)
        next_since = None
        for _round in range(MAX_ROUNDS):
            asked_at = timezone.now()
            rows = client.cdc([entity], changed_since=since.isoformat())[entity]
            found += _compare(connection.realm_id, entity, rows)
            if len(rows) < CAP:
                next_since = asked_at - OVERLAP
                break
            newest = max((t for t in map(_updated, rows) if t is not None), default=None)
            if newest is None or newest <= since:
                break  # cannot narrow further; try again next run
            since = next_since = newest
        if next_since is not None and next_since > checkpoint.changed_since:
            checkpoint.changed_since = next_since
            checkpoint.save(update_fields=["changed_since", "updated_at"])
    return found


def _compare(realm_id: str, entity: str, rows: list[dict]) -> int:
    mappings = mapped_objects(realm_id, entity, [str(row.get("Id")) for row in rows])
    found = 0
    for row in rows:
        mapping = mappings.get(str(row.get("Id")))
        if mapping is not None:
            found += len(object_check(client=None, mapping=mapping, found_by="cdc", row=row))
    if entity == "Payment":
        # Payments keyed in QuickBooks against our invoices (inbound.py), from the answer itself.
        unmapped = [row for row in rows if str(row.get("Id")) not in mappings]
        found += len(inbound.payments_consider(realm_id=realm_id, rows=unmapped, found_by="cdc"))
    return found
