"""Detect what changed in QuickBooks for what FieldSync exported: deleted, voided, another amount, another customer.

Fed by webhook notifications (webhooks.py). Each object named is read from QuickBooks now (never judged from the
notification, which may be late, duplicated or out of order) and compared with FieldSync's records; a difference is
kept as one open QuickBooksChange per object and kind of change, with both versions.
"""

from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

from billing import selectors as billing_selectors
from billing.models import Payment, Refund

from .client import QuickBooksClient
from .errors import QuickBooksObjectNotFoundError
from .models import QuickBooksChange, QuickBooksConnection, QuickBooksEvent, QuickBooksMapping

Kind = QuickBooksMapping.Kind
Change = QuickBooksChange.Change
KIND_OF = {"Payment": Kind.PAYMENT, "Invoice": Kind.INVOICE}
CHUNK = 200


def webhook_events_check() -> int:
    """Check the objects of pending events (a chunk at a time). Returns how many changes were found."""
    found = 0
    connection = QuickBooksConnection.objects.filter(is_current=True).first()
    while True:
        events = list(QuickBooksEvent.objects.filter(state=QuickBooksEvent.State.PENDING).order_by("id")[:CHUNK])
        if not events:
            return found
        mapped = {}
        if connection is not None:
            for mapping in QuickBooksMapping.objects.filter(
                realm_id=connection.realm_id,
                kind__in=list(KIND_OF.values()),
                qbo_id__in={e.qbo_id for e in events if e.realm_id == connection.realm_id},
            ):
                mapped[(mapping.kind, mapping.qbo_id)] = mapping
        client = QuickBooksClient(connection) if connection is not None else None
        checked, ignored, seen = [], [], set()
        for event in events:
            mapping = mapped.get((KIND_OF.get(event.entity), event.qbo_id))
            if mapping is None or event.realm_id != connection.realm_id:
                ignored.append(event.pk)
                continue
            checked.append(event.pk)
            if (mapping.kind, mapping.qbo_id) in seen:
                continue  # duplicates and later events of the same object: one read says how it is now
            seen.add((mapping.kind, mapping.qbo_id))
            found += len(object_check(client=client, mapping=mapping, found_by="webhook"))
        now = timezone.now()
        QuickBooksEvent.objects.filter(pk__in=checked).update(state=QuickBooksEvent.State.CHECKED, checked_at=now)
        QuickBooksEvent.objects.filter(pk__in=ignored).update(state=QuickBooksEvent.State.IGNORED, checked_at=now)


def voided_in_quickbooks(row: dict) -> bool:
    # Intuit: a void zeroes the amounts and prepends "Voided" to PrivateNote.
    return Decimal(str(row.get("TotalAmt", "0"))) == 0 and str(row.get("PrivateNote", "")).startswith("Voided")


def mapped_objects(realm_id: str, entity: str, qbo_ids: list[str]) -> dict[str, QuickBooksMapping]:
    """QuickBooks Id -> mapping, for the objects of `entity` FieldSync exported (one query)."""
    kind = KIND_OF.get(entity)
    if kind is None or not qbo_ids:
        return {}
    rows = QuickBooksMapping.objects.filter(realm_id=realm_id, kind=kind, qbo_id__in=qbo_ids)
    return {m.qbo_id: m for m in rows}


def object_check(
    *, client: QuickBooksClient | None, mapping: QuickBooksMapping, found_by: str, row: dict | None = None
) -> list[QuickBooksChange]:
    """Compare one exported Payment or Invoice as QuickBooks has it (`row` from a Change Data Capture answer, or
    read now with `client`) with FieldSync's, and record each difference."""
    entity = "Payment" if mapping.kind == Kind.PAYMENT else "Invoice"
    if mapping.kind == Kind.PAYMENT:
        local = Payment.objects.get(pk=int(mapping.local_key))
    else:
        local = billing_selectors.invoice_get_with_balances(invoice_id=int(mapping.local_key))
    ours = {"total": local.amount if mapping.kind == Kind.PAYMENT else local.total}
    customer_qbo_id = (
        QuickBooksMapping.objects.filter(
            realm_id=mapping.realm_id, kind=Kind.CUSTOMER, local_key=str(local.customer_id)
        )
        .values_list("qbo_id", flat=True)
        .first()
    )
    ours["customer"] = customer_qbo_id or ""
    if row is None:
        try:
            row = client.read(entity, mapping.qbo_id)
        except QuickBooksObjectNotFoundError:
            return _record(mapping, Change.DELETED, ours, {}, found_by)
    if row.get("status") == "Deleted":
        return _record(mapping, Change.DELETED, ours, {}, found_by)
    theirs = {"total": Decimal(str(row.get("TotalAmt", "0"))), "customer": (row.get("CustomerRef") or {}).get("value")}
    theirs["sync_token"] = str(row.get("SyncToken", ""))
    changes = []
    if voided_in_quickbooks(row):
        return _record(mapping, Change.VOIDED, ours, theirs, found_by)
    comparable = mapping.kind == Kind.INVOICE or not Refund.objects.filter(payment_id=local.pk).exists()
    if comparable and theirs["total"] != ours["total"]:
        changes += _record(mapping, Change.AMOUNT, ours, theirs, found_by)
    if ours["customer"] and theirs["customer"] != ours["customer"]:
        changes += _record(mapping, Change.CUSTOMER, ours, theirs, found_by)
    return changes


def _record(mapping: QuickBooksMapping, change: str, ours: dict, theirs: dict, found_by: str) -> list[QuickBooksChange]:
    try:
        with transaction.atomic():
            return [
                QuickBooksChange.objects.create(
                    realm_id=mapping.realm_id,
                    kind=mapping.kind,
                    local_key=mapping.local_key,
                    qbo_id=mapping.qbo_id,
                    change=change,
                    ours=ours,
                    theirs=theirs,
                    found_by=found_by,
                )
            ]
    except IntegrityError:
        return []  # already open for this object: found before


# --- A person decides ----------------------------------------------------------------------------------------------

Resolution = QuickBooksChange.Resolution
RESENDABLE = frozenset({Change.DELETED, Change.VOIDED})


@transaction.atomic
def change_resolve(*, change_id: int, resolution: str, user, note: str = "") -> QuickBooksChange:
    """Close an open change with a person's decision (who, when, note: the audit).

    - accept: QuickBooks' version stands; FieldSync's records are left for the person to adjust (nothing is sent).
    - resend: only for a payment deleted or voided in QuickBooks: FieldSync forgets the QuickBooks payment (link
      removed, audited) and the payment is "not exported" again, so the next export (or automatic export) sends it.
    - ignore: nothing changes anywhere.
    Raises ApplicationError (what to do instead) and changes nothing when the decision does not fit."""
    from billing import services as billing_services
    from fieldsync.exceptions import ApplicationError, ConflictError

    from .models import QuickBooksMappingAudit

    change = QuickBooksChange.objects.select_for_update().get(pk=change_id)
    if change.state != QuickBooksChange.State.OPEN:
        raise ConflictError("Someone already dealt with this change.", code="change_resolved")
    if resolution not in Resolution.values:
        raise ApplicationError(f"“{resolution}” is not a decision this page offers.", code="invalid_resolution")
    if resolution == Resolution.RESEND:
        if change.kind != Kind.PAYMENT or change.change not in RESENDABLE:
            raise ApplicationError(
                "Only a payment deleted or voided in QuickBooks can be sent again; change the other records in "
                "QuickBooks or accept its version.",
                code="not_resendable",
            )
        mapping = QuickBooksMapping.objects.filter(
            realm_id=change.realm_id, kind=Kind.PAYMENT, local_key=change.local_key, qbo_id=change.qbo_id
        ).first()
        billing_services.payment_export_undone(
            payment_id=int(change.local_key),
            note=f"{change.get_change_display()}: to be sent again (change #{change.pk})",
            user=user,
        )
        if mapping is not None:
            QuickBooksMappingAudit.objects.create(
                realm_id=change.realm_id,
                kind=Kind.PAYMENT,
                local_key=change.local_key,
                action=QuickBooksMappingAudit.Action.UNLINK,
                before={"qbo_id": mapping.qbo_id, "sync_token": mapping.sync_token},
                note=f"{change.get_change_display()}; sent again (change #{change.pk})",
                by=user,
            )
            mapping.delete()
    change.state, change.resolution = QuickBooksChange.State.RESOLVED, resolution
    change.resolved_by, change.resolved_at, change.note = user, timezone.now(), note[:500]
    change.full_clean()
    change.save(update_fields=["state", "resolution", "resolved_by", "resolved_at", "note"])
    return change
