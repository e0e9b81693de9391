"""People repair the links between our objects and QuickBooks': unlink, link to a different QuickBooks record, make a
stale (inactive) record active again. Every change is audited in QuickBooksMappingAudit (who, when, before/after).

QuickBooks is read or written first, outside any transaction; the mapping changes after, in one short transaction.
A payment's mapping is never changed here: the payment is in QuickBooks and stays where it is.
"""

from django.db import IntegrityError, transaction

from billing.models import Invoice
from billing.selectors import invoice_get_with_balances
from fieldsync.exceptions import ApplicationError, ConflictError

from . import holds, invoice_checks
from .client import QuickBooksClient
from .errors import QuickBooksError
from .models import InvoiceExportHold, QuickBooksMapping, QuickBooksMappingAudit

Kind = QuickBooksMapping.Kind
Action = QuickBooksMappingAudit.Action
ENTITY = {Kind.CUSTOMER: "Customer", Kind.ITEM: "Item", Kind.INVOICE: "Invoice"}
LINKABLE_ITEM_TYPES = frozenset({"Service", "NonInventory"})


def _state(mapping: QuickBooksMapping | None) -> dict:
    if mapping is None:
        return {}
    return {
        "qbo_id": mapping.qbo_id,
        "qbo_name": mapping.qbo_name,
        "sync_token": mapping.sync_token,
        "stale_reason": mapping.stale_reason,
    }


def _audit(mapping: QuickBooksMapping, *, action: str, user, before: dict, after: dict, note: str = "") -> None:
    QuickBooksMappingAudit.objects.create(
        realm_id=mapping.realm_id,
        kind=mapping.kind,
        local_key=mapping.local_key,
        action=action,
        before=before,
        after=after,
        note=note[:500],
        by=user,
    )


def _mapping(mapping_id: int) -> QuickBooksMapping:
    mapping = QuickBooksMapping.objects.filter(pk=mapping_id).first()
    if mapping is None:
        raise ApplicationError(f"No QuickBooks link #{mapping_id}.", code="unknown_mapping")
    if mapping.kind not in ENTITY:
        raise ConflictError(
            "A payment's link cannot be changed: the payment is in QuickBooks. Void it there and mark the payment by "
            "hand instead.",
            code="payment_mapping_fixed",
        )
    return mapping


def _invoice_number(mapping: QuickBooksMapping) -> str:
    number = Invoice.objects.filter(pk=int(mapping.local_key)).values_list("number", flat=True).first()
    return number or "this invoice"


def mapping_unlink(*, mapping_id: int, user, note: str = "") -> None:
    """Forget which QuickBooks record ours is; the next export links or creates it afresh. An invoice with payments
    in QuickBooks is refused (they are applied to the linked one); an invoice on hold is released (holds.py)."""
    mapping = _mapping(mapping_id)
    if mapping.kind == Kind.INVOICE:
        hold = InvoiceExportHold.objects.filter(
            realm_id=mapping.realm_id, invoice_id=int(mapping.local_key), state=InvoiceExportHold.State.OPEN
        ).first()
        if hold is not None:
            holds.invoice_hold_unlink(hold_id=hold.pk, user=user, note=note)
            return
        count, moving = holds.invoice_payments_on_their_way(
            realm_id=mapping.realm_id, invoice_id=int(mapping.local_key)
        )
        if moving:
            raise ApplicationError(
                holds.invoice_on_the_way_refusal(_invoice_number(mapping), moving, what="unlinking"),
                code="unlink_refused",
            )
        if count:
            raise ApplicationError(
                f"{count} payment{'s' if count != 1 else ''} of this invoice {'are' if count != 1 else 'is'} in "
                f"QuickBooks against invoice {mapping.qbo_id}; unlinking would leave them there.",
                code="unlink_refused",
            )
    with transaction.atomic():
        before = _state(mapping)
        mapping.delete()
        _audit(mapping, action=Action.UNLINK, user=user, before=before, after={}, note=note)


def _read_any(client: QuickBooksClient, entity: str, qbo_id: str) -> dict | None:
    """The record, inactive ones included (QuickBooks' queries answer active name-list records only by default)."""
    active = " AND Active IN (true, false)" if entity != "Invoice" else ""
    rows = client.query(f"SELECT * FROM {entity} WHERE Id = '{int(qbo_id)}'{active}")  # noqa: S608 - an integer
    return rows[0] if rows else None


def mapping_relink(*, mapping_id: int, qbo_id: str, user, note: str = "") -> QuickBooksMapping:
    """Link ours to a different QuickBooks record (read first: it must exist and be usable — an active customer, an
    active Service/Non-inventory item, an invoice of the same total — and not be linked to another of ours)."""
    mapping = _mapping(mapping_id)
    qbo_id = str(qbo_id).strip()
    if not qbo_id.isdigit():
        raise ApplicationError("Give the QuickBooks record's Id, a number (e.g. 142).", code="invalid_qbo_id")
    if mapping.kind == Kind.INVOICE:
        count, moving = holds.invoice_payments_on_their_way(
            realm_id=mapping.realm_id, invoice_id=int(mapping.local_key)
        )
        if moving:
            raise ApplicationError(
                holds.invoice_on_the_way_refusal(_invoice_number(mapping), moving, what="relinking"),
                code="relink_refused",
            )
        if count:
            raise ApplicationError(
                "Payments of this invoice are in QuickBooks against the linked invoice; it cannot be relinked.",
                code="relink_refused",
            )
    entity = ENTITY[mapping.kind]
    try:
        row = _read_any(QuickBooksClient.for_current_connection(realm_id=mapping.realm_id), entity, qbo_id)
    except QuickBooksError as exc:
        raise ApplicationError(f"QuickBooks could not be asked: {exc.message}", code="quickbooks_error") from None
    if row is None:
        raise ApplicationError(f"QuickBooks has no {entity.lower()} with Id {qbo_id}.", code="qbo_record_not_found")
    if row.get("Active", True) is False:
        raise ApplicationError(
            f"QuickBooks {entity.lower()} {qbo_id} is inactive; make it active in QuickBooks first.",
            code="qbo_record_inactive",
        )
    if mapping.kind == Kind.ITEM and row.get("Type") not in LINKABLE_ITEM_TYPES:
        raise ApplicationError(
            f"QuickBooks item {qbo_id} is a {row.get('Type')} item; only Service or Non-inventory items sell our "
            "services.",
            code="qbo_item_type",
        )
    if mapping.kind == Kind.INVOICE:
        invoice = invoice_get_with_balances(invoice_id=int(mapping.local_key))
        total, _, _ = invoice_checks.qbo_figures(row)
        if total != invoice.total:
            raise ApplicationError(
                f"QuickBooks invoice {qbo_id} totals {total}, {invoice.number} totals {invoice.total}; not linked.",
                code="qbo_invoice_total",
            )
    before = _state(mapping)
    try:
        with transaction.atomic():
            mapping.qbo_id = str(row["Id"])
            mapping.qbo_name = row.get("DisplayName") or row.get("Name") or row.get("DocNumber") or ""
            mapping.sync_token = str(row.get("SyncToken", ""))
            mapping.linked_existing = True
            mapping.stale_reason = ""
            mapping.save()
            if mapping.kind == Kind.INVOICE:
                InvoiceExportHold.objects.filter(
                    realm_id=mapping.realm_id, invoice_id=int(mapping.local_key), state=InvoiceExportHold.State.OPEN
                ).update(qbo_invoice_id=mapping.qbo_id)
            _audit(mapping, action=Action.RELINK, user=user, before=before, after=_state(mapping), note=note)
    except IntegrityError:
        raise ConflictError(
            f"QuickBooks {entity.lower()} {qbo_id} is already linked to another FieldSync {mapping.kind}.",
            code="mapping_conflict",
        ) from None
    return mapping


def mapping_reactivate(*, mapping_id: int, user) -> QuickBooksMapping:
    """Make the linked customer or item active again in QuickBooks, on purpose (sparse update Active=true)."""
    mapping = _mapping(mapping_id)
    if mapping.kind == Kind.INVOICE:
        raise ApplicationError("Invoices are not made inactive; relink or unlink it instead.", code="not_reactivatable")
    entity = ENTITY[mapping.kind]
    client = QuickBooksClient.for_current_connection(realm_id=mapping.realm_id)
    try:
        row = _read_any(client, entity, mapping.qbo_id)
        if row is None:
            raise ApplicationError(
                f"QuickBooks {entity.lower()} {mapping.qbo_id} is gone; link a different record or unlink it.",
                code="qbo_record_not_found",
            )
        if row.get("Active", True) is False:
            row = client.update(entity, {"Id": row["Id"], "SyncToken": row["SyncToken"], "Active": True})
    except QuickBooksError as exc:
        raise ApplicationError(f"QuickBooks refused: {exc.message}", code="quickbooks_error") from None
    before = _state(mapping)
    with transaction.atomic():
        mapping.sync_token, mapping.stale_reason = str(row.get("SyncToken", "")), ""
        mapping.save(update_fields=["sync_token", "stale_reason", "updated_at"])
        _audit(mapping, action=Action.REACTIVATE, user=user, before=before, after=_state(mapping))
    return mapping


def mapping_labels(mappings: list[QuickBooksMapping]) -> dict[int, str]:
    """What each mapping is on our side, in words, in at most two queries for a page."""
    from billing.models import Customer

    customers = dict(
        Customer.objects.filter(
            pk__in=[int(m.local_key) for m in mappings if m.kind == Kind.CUSTOMER and m.local_key.isdigit()]
        ).values_list("pk", "display_name")
    )
    invoices = dict(
        Invoice.objects.filter(
            pk__in=[int(m.local_key) for m in mappings if m.kind == Kind.INVOICE and m.local_key.isdigit()]
        ).values_list("pk", "number")
    )
    labels = {}
    for m in mappings:
        if m.kind == Kind.CUSTOMER:
            labels[m.pk] = customers.get(int(m.local_key), f"customer #{m.local_key}")
        elif m.kind == Kind.INVOICE:
            labels[m.pk] = invoices.get(int(m.local_key), f"invoice #{m.local_key}")
        elif m.kind == Kind.PAYMENT:
            labels[m.pk] = f"Payment #{m.local_key}"
        else:
            labels[m.pk] = m.local_key
    return labels
