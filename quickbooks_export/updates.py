"""Changes after export: a customer's details edited in FieldSync reach QuickBooks as a sparse update — only when
that keeps QuickBooks right.

Billing tells us after the commit that changed a customer (billing.hooks); if the customer is in QuickBooks, a task
runs customer_update_push. It reads the QuickBooks customer (one read) and compares:
- The fields sent are the ones FieldSync holds a value for (company name, e-mail, phone, billing and shipping
  address): an empty value in FieldSync never blanks a QuickBooks field, and an address is merged into QuickBooks'
  own, part by part, because a sparse update replaces a whole address.
- If QuickBooks' SyncToken is the one stored when FieldSync last wrote the customer, nobody changed it since: the
  difference is sent. If it moved, someone changed it in QuickBooks: each field FieldSync wants to change is compared
  with what FieldSync last sent (the outbox). A field changed on both sides is never overwritten: nothing is sent and
  the conflict is recorded for a person (QuickBooksMappingAudit "Changed on both sides"). Fields only FieldSync
  changed are sent with the current SyncToken.
- A stale SyncToken at send time (5010: changed in QuickBooks between our read and our write) reads and compares
  again, at most twice, never overwriting blindly.
- Which side wins is the company's choice (QuickBooksMappingSettings.customer_details_winner): "ask" (the default)
  is the above; "FieldSync wins" sends FieldSync's value also over a detail changed in QuickBooks (audited, naming
  the details it overwrote); "QuickBooks wins" never sends, and takes each detail QuickBooks changed since FieldSync
  last sent it into FieldSync (billing.services.customer_update, without telling the export app again), at once,
  when FieldSync compares after its own change. Either way an empty value never overwrites the other side.
Exactly once, like creates: the update is written to the outbox (QuickBooksRequest kind "update") with a request id
from this installation, the customer's QuickBooks id, the SyncToken it applies to and a digest of its content,
committed, then sent; a pending one is re-sent unchanged first. QuickBooks is never called inside a transaction.

Invoices changed after export: invoice_updates.py. Not covered: display-name changes (QuickBooks' names are
unique across customers, vendors and employees; the name FieldSync created may carry a suffix).
"""

import copy
import logging

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django_q.tasks import async_task

from billing import services as billing_services
from billing.models import Customer
from fieldsync.exceptions import ApplicationError

from . import mappers
from .client import QuickBooksClient
from .errors import QuickBooksError, QuickBooksStaleObjectError
from .models import (
    Installation,
    QuickBooksConnection,
    QuickBooksMapping,
    QuickBooksMappingAudit,
    QuickBooksMappingSettings,
    QuickBooksRequest,
)
from .services import UPDATE_KIND

logger = logging.getLogger(__name__)

Kind = QuickBooksMapping.Kind
PUSH_TASK = "quickbooks_export.tasks.customer_update_push_task"
# The customer fields FieldSync keeps in QuickBooks (never DisplayName: see the module docstring).
FIELDS = ("CompanyName", "PrimaryEmailAddr", "PrimaryPhone", "BillAddr", "ShipAddr")
ADDRESS_FIELDS = ("BillAddr", "ShipAddr")
ATTEMPTS = 3  # reads and compares when QuickBooks keeps answering "stale"
Winner = QuickBooksMappingSettings.CustomerDetailsWinner
# QuickBooks' customer details -> FieldSync's fields, for "QuickBooks wins" (FieldSync keeps no shipping address).
TAKEN = {
    "CompanyName": "company_name",
    "PrimaryEmailAddr": "email",
    "PrimaryPhone": "phone",
}
TAKEN_ADDRESS = {
    "Line1": "billing_line1",
    "Line2": "billing_line2",
    "City": "billing_city",
    "CountrySubDivisionCode": "billing_region",
    "PostalCode": "billing_postal_code",
    "Country": "billing_country",
}


def _connection_of_customer(customer_id: int):
    """The current connection of the customer's business unit (its company), or None."""
    return QuickBooksConnection.objects.filter(is_current=True, business_unit__customers=customer_id)


def customer_changed_listener(customer_id: int) -> None:
    """billing.hooks listener (after commit): queue the push when the customer is in the connected QuickBooks."""
    realm_id = _connection_of_customer(customer_id).values_list("realm_id", flat=True).first()
    if (
        realm_id
        and QuickBooksMapping.objects.filter(realm_id=realm_id, kind=Kind.CUSTOMER, local_key=str(customer_id)).exists()
    ):
        async_task(PUSH_TASK, customer_id, task_name=f"customer-update-{customer_id}-{timezone.now():%H%M%S%f}")


def _value(obj: dict, field: str):
    value = obj.get(field)
    if field in ADDRESS_FIELDS and isinstance(value, dict):
        return {
            k: v
            for k, v in value.items()
            if k in ("Line1", "Line2", "City", "CountrySubDivisionCode", "PostalCode", "Country") and v
        }
    return value or None


def _desired(customer: Customer, current: dict) -> dict:
    """What QuickBooks should hold for FIELDS, from FieldSync's non-empty values over QuickBooks' own."""
    ours = mappers.customer_payload(customer, display_name="")
    desired = {}
    for field in FIELDS:
        if field not in ours:
            continue  # empty in FieldSync: QuickBooks keeps what it has
        if field in ADDRESS_FIELDS:
            merged = dict(_value(current, field) or {})
            merged.update(ours[field])
            desired[field] = merged
        else:
            desired[field] = ours[field]
    return desired


def _last_sent(realm_id: str, customer_id: int) -> dict | None:
    """What FieldSync last wrote to this customer in QuickBooks (its create or latest update), or None (linked)."""
    ours = Q(kind=Kind.CUSTOMER, local_key=str(customer_id)) | Q(kind=UPDATE_KIND, local_key=f"customer:{customer_id}")
    request = (
        QuickBooksRequest.objects.filter(ours, realm_id=realm_id, state=QuickBooksRequest.State.DONE)
        .order_by("-completed_at", "-id")
        .first()
    )
    return request.payload if request is not None else None


def customer_update_push(*, customer_id: int) -> str:
    """Send the customer's changed details to QuickBooks when that is safe. Returns what happened, in a word:
    "not_exported", "unchanged", "updated", "conflict" (recorded for a person; nothing sent) or "quickbooks_wins"
    (the company's setting: nothing sent, QuickBooks' changed details taken into FieldSync). Raises QuickBooksError
    when QuickBooks cannot be reached or refuses (the task is retried by django-q2; the outbox keeps it once)."""
    connection = _connection_of_customer(customer_id).first()
    if connection is None:
        return "not_exported"
    mapping = QuickBooksMapping.objects.filter(
        realm_id=connection.realm_id, kind=Kind.CUSTOMER, local_key=str(customer_id)
    ).first()
    if mapping is None or mapping.stale_reason:
        return "not_exported"
    customer = Customer.objects.get(pk=customer_id)
    winner = (
        QuickBooksMappingSettings.objects.filter(realm_id=connection.realm_id)
        .values_list("customer_details_winner", flat=True)
        .first()
    ) or Winner.ASK
    client = QuickBooksClient(connection)
    pending = QuickBooksRequest.objects.filter(
        realm_id=connection.realm_id,
        kind=UPDATE_KIND,
        local_key=f"customer:{customer_id}",
        state=QuickBooksRequest.State.PENDING,
    ).first()
    overwritten = ""  # FieldSync wins: what it sent over a change made in QuickBooks, in words, for the audit
    for _ in range(ATTEMPTS):
        if pending is None:
            current = client.read("Customer", mapping.qbo_id)
            if winner == Winner.QUICKBOOKS:
                return _take_from_quickbooks(connection.realm_id, mapping, customer, current)
            payload, conflict = _compare(
                connection.realm_id, mapping, customer, current, fieldsync_wins=winner == Winner.FIELDSYNC
            )
            if conflict and winner == Winner.FIELDSYNC:
                overwritten, conflict = conflict, ""
            if conflict:
                _audit(mapping, QuickBooksMappingAudit.Action.CHANGE_CONFLICT, current, payload, note=conflict)
                return "conflict"
            if payload is None:
                return "unchanged"
            pending = _outbox(connection.realm_id, customer_id, mapping, payload)
        try:
            answer = client.update("Customer", pending.payload, request_id=pending.request_id)
        except QuickBooksStaleObjectError:
            # Changed in QuickBooks between our read and our write: close this one and compare again.
            _close(pending, error="5010: changed in QuickBooks meanwhile; compared again")
            pending = None
            continue
        except QuickBooksError as exc:
            if not exc.retryable:
                _close(pending, error=f"{exc.qbo_code or exc.code}: {exc.message}")
            raise
        with transaction.atomic():
            _close(pending, answer=answer)
            before = {"qbo_id": mapping.qbo_id, "sync_token": mapping.sync_token}
            mapping.sync_token = str(answer.get("SyncToken", ""))
            mapping.save(update_fields=["sync_token", "updated_at"])
            _audit(mapping, QuickBooksMappingAudit.Action.UPDATE_CUSTOMER, before, pending.payload, note=overwritten)
        return "updated"
    return _give_up(mapping)


def _give_up(mapping: QuickBooksMapping) -> str:
    note = "QuickBooks kept changing while FieldSync compared; check the customer in both and save it again."
    _audit(mapping, QuickBooksMappingAudit.Action.CHANGE_CONFLICT, {}, {}, note=note)
    return "conflict"


def _compare(
    realm_id: str, mapping: QuickBooksMapping, customer: Customer, current: dict, *, fieldsync_wins: bool = False
) -> tuple[dict | None, str]:
    """(sparse update to send or None, conflict reason or ""). FieldSync wins: the update is returned with the
    conflict, as the words of what it overwrites."""
    desired = _desired(customer, current)
    changed = {f: v for f, v in desired.items() if _value(current, f) != _value(desired, f)}
    if not changed:
        return None, ""
    if str(current["SyncToken"]) != mapping.sync_token:
        sent = _last_sent(realm_id, customer.pk)
        both = [f for f in changed if sent is None or _value(sent, f) != _value(current, f)]
        if both and fieldsync_wins:
            return {"Id": mapping.qbo_id, "SyncToken": str(current["SyncToken"]), "sparse": True, **changed}, (
                f"FieldSync wins: {customer.display_name} was also changed in QuickBooks ({', '.join(both)}); "
                "FieldSync's details were sent over it."
            )
        if both:
            return copy.deepcopy(changed), (
                f"{customer.display_name} was changed in QuickBooks since FieldSync last sent it "
                f"({', '.join(both)}); FieldSync did not overwrite it. Check both and decide which is right."
            )
    return {"Id": mapping.qbo_id, "SyncToken": str(current["SyncToken"]), "sparse": True, **changed}, ""


def _quickbooks_details(current: dict) -> dict:
    """QuickBooks' non-empty customer details as FieldSync's fields (an empty one never overwrites FieldSync)."""
    details = {}
    for field, ours in TAKEN.items():
        value = current.get(field)
        if isinstance(value, dict):
            value = value.get("Address") or value.get("FreeFormNumber")
        if value:
            details[ours] = str(value).lower() if ours == "email" else str(value)
    for part, ours in TAKEN_ADDRESS.items():
        value = (current.get("BillAddr") or {}).get(part)
        if value and not (ours == "billing_country" and len(str(value)) != 2):  # FieldSync keeps two-letter codes
            details[ours] = str(value)
    return details


def _take_from_quickbooks(realm_id: str, mapping: QuickBooksMapping, customer: Customer, current: dict) -> str:
    """QuickBooks wins: nothing is sent. Each detail QuickBooks changed since FieldSync last sent it (every detail
    QuickBooks holds, for a customer FieldSync linked rather than created) is taken into FieldSync; a detail only
    FieldSync changed stays in FieldSync, unsent. One audit row says both."""
    sent = _last_sent(realm_id, customer.pk)
    changed_there = [f for f in FIELDS if sent is None or _value(sent, f) != _value(current, f)]
    theirs = _quickbooks_details({f: current[f] for f in changed_there if f in current})
    taken = {field: value for field, value in theirs.items() if getattr(customer, field) != value}
    wanted = _desired(customer, current)
    unsent = [f for f in wanted if _value(current, f) != _value(wanted, f) and f not in changed_there]
    if not taken and not unsent:
        return "unchanged"
    before = {field: getattr(customer, field) for field in taken}
    note = "QuickBooks wins (the company's setting)."
    if unsent:
        note += f" FieldSync's change of {', '.join(unsent)} was not sent."
    if taken:
        try:
            billing_services.customer_update(customer=customer, notify=False, **taken)
        except ApplicationError as exc:  # e.g. an e-mail FieldSync cannot hold: nothing taken, a person decides
            taken, note = {}, f"{note} QuickBooks' details could not be taken into FieldSync: {exc.message}"
    QuickBooksMappingAudit.objects.create(
        realm_id=mapping.realm_id,
        kind=mapping.kind,
        local_key=mapping.local_key,
        action=QuickBooksMappingAudit.Action.QUICKBOOKS_WINS,
        before=before,
        after=taken,
        note=note[:500],
    )
    return "quickbooks_wins"


def _outbox(realm_id: str, customer_id: int, mapping: QuickBooksMapping, payload: dict) -> QuickBooksRequest:
    request_id = mappers.request_id_for(
        Installation.current_id(),
        realm_id,
        "update",
        "Customer",
        mapping.qbo_id,
        payload["SyncToken"],
        mappers.payload_digest(payload),
    )
    try:
        with transaction.atomic():
            return QuickBooksRequest.objects.create(
                realm_id=realm_id,
                request_id=request_id,
                operation="Customer.update",
                kind=UPDATE_KIND,
                local_key=f"customer:{customer_id}",
                payload=payload,
            )
    except IntegrityError:
        return QuickBooksRequest.objects.get(request_id=request_id)


def _close(request: QuickBooksRequest, *, answer: dict | None = None, error: str = "") -> None:
    request.attempts += 1
    request.completed_at = timezone.now()
    if error:
        request.state, request.last_error = QuickBooksRequest.State.FAILED, error
    else:
        request.state, request.response = QuickBooksRequest.State.DONE, answer
    request.save(update_fields=["attempts", "completed_at", "state", "response", "last_error"])


def _audit(mapping: QuickBooksMapping, action: str, before: dict, after: dict, *, note: str = "") -> None:
    QuickBooksMappingAudit.objects.create(
        realm_id=mapping.realm_id,
        kind=mapping.kind,
        local_key=mapping.local_key,
        action=action,
        before={k: v for k, v in before.items() if k in (*FIELDS, "qbo_id", "sync_token", "SyncToken")},
        after=after,
        note=note[:500],
    )
