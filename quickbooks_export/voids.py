"""Voids: an invoice voided in FieldSync is voided in QuickBooks, once — or flagged when QuickBooks cannot.

FieldSync voids only an invoice nobody has paid (billing.invoice_void: payments on it are refunded first, see
docs/refunds.md), so by then QuickBooks' copy should carry no payment either: a reversed payment is voided or lowered
in QuickBooks by a person or by "Record it in QuickBooks for me". Billing tells us after the commit (billing.hooks);
a task then:
- reads the QuickBooks invoice; already voided (zero total, "Voided" note) → nothing to send;
- still has a payment linked (a reversal not yet entered in QuickBooks, or a deposited payment QuickBooks will not
  change — Intuit: a deposited payment must be taken out of its deposit before it can be voided) → not voided;
  recorded on the "Changed in QuickBooks" page ("Voided in FieldSync, not in QuickBooks") for a person, and the
  task does not retry blindly;
- otherwise voids it (POST /invoice?operation=void, Intuit's Invoice reference) through the outbox (QuickBooksRequest
  kind "void", a request id from the invoice's QuickBooks id and SyncToken, committed before it is sent, re-sent
  unchanged after a lost answer). The invoice's link stays, pointing at the voided QuickBooks invoice (audited).
It takes the company's export lease, so it never runs beside an export of the same company.
"""

import os
import socket
import uuid
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone
from django_q.tasks import async_task

from billing.models import Invoice

from . import mappers
from .changes import _record
from .client import QuickBooksClient
from .models import (
    Installation,
    QuickBooksChange,
    QuickBooksConnection,
    QuickBooksMapping,
    QuickBooksMappingAudit,
    QuickBooksRequest,
)
from .services import VOID_KIND, _lease_acquire, _lease_release

Kind = QuickBooksMapping.Kind
VOID_TASK = "quickbooks_export.tasks.invoice_void_push_task"


def _connection_of_invoice(invoice_id: int):
    """The current connection of the invoice's business unit (its company), or None."""
    return QuickBooksConnection.objects.filter(is_current=True, business_unit__invoices=invoice_id)


def invoice_voided_listener(invoice_id: int) -> None:
    realm_id = _connection_of_invoice(invoice_id).values_list("realm_id", flat=True).first()
    if (
        realm_id
        and QuickBooksMapping.objects.filter(realm_id=realm_id, kind=Kind.INVOICE, local_key=str(invoice_id)).exists()
    ):
        async_task(VOID_TASK, invoice_id, task_name=f"invoice-void-{invoice_id}-{timezone.now():%H%M%S%f}")


def _voided(row: dict) -> bool:
    return Decimal(str(row.get("TotalAmt", "0"))) == 0 and str(row.get("PrivateNote", "")).startswith("Voided")


def invoice_void_push(*, invoice_id: int) -> str:
    """Returns "not_exported", "busy" (an export runs: try again), "already_void", "voided" or "flagged"."""
    connection = _connection_of_invoice(invoice_id).first()
    invoice = Invoice.objects.get(pk=invoice_id)
    if connection is None or invoice.status != Invoice.Status.VOID:
        return "not_exported"
    mapping = QuickBooksMapping.objects.filter(
        realm_id=connection.realm_id, kind=Kind.INVOICE, local_key=str(invoice_id)
    ).first()
    if mapping is None:
        return "not_exported"
    holder = f"void:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    if not _lease_acquire(connection.realm_id, holder):
        return "busy"
    try:
        client = QuickBooksClient(connection)
        request = QuickBooksRequest.objects.filter(
            realm_id=connection.realm_id,
            kind=VOID_KIND,
            local_key=str(invoice_id),
            state=QuickBooksRequest.State.PENDING,
        ).first()
        if request is None:
            row = client.read("Invoice", mapping.qbo_id)
            if _voided(row):
                return "already_void"
            linked = [t for t in row.get("LinkedTxn") or [] if t.get("TxnType") == "Payment"]
            if linked:
                _record(
                    mapping,
                    QuickBooksChange.Change.VOID_BLOCKED,
                    {"status": "void", "total": "0.00"},
                    {
                        "total": Decimal(str(row.get("TotalAmt", "0"))),
                        "payments": [str(t.get("TxnId")) for t in linked],
                        "note": f"{invoice.number} still has QuickBooks payment(s) "
                        f"{', '.join(str(t.get('TxnId')) for t in linked)} applied; void or unapply them in "
                        "QuickBooks (a deposited one must first leave its deposit), then void the invoice there.",
                    },
                    "void",
                )
                return "flagged"
            request = _outbox(connection.realm_id, invoice_id, mapping.qbo_id, str(row["SyncToken"]))
        answer = client.void(
            "Invoice", id=request.payload["Id"], sync_token=request.payload["SyncToken"], request_id=request.request_id
        )
        with transaction.atomic():
            request.state, request.response = QuickBooksRequest.State.DONE, answer
            request.completed_at, request.attempts = timezone.now(), request.attempts + 1
            request.save(update_fields=["state", "response", "completed_at", "attempts"])
            QuickBooksMappingAudit.objects.create(
                realm_id=mapping.realm_id,
                kind=Kind.INVOICE,
                local_key=mapping.local_key,
                action=QuickBooksMappingAudit.Action.VOID,
                before={"qbo_id": mapping.qbo_id, "sync_token": mapping.sync_token},
                after={"sync_token": str(answer.get("SyncToken", ""))},
                note=f"{invoice.number} voided in FieldSync",
            )
            mapping.sync_token = str(answer.get("SyncToken", ""))
            mapping.save(update_fields=["sync_token", "updated_at"])
        return "voided"
    finally:
        _lease_release(connection.realm_id, holder)


def _outbox(realm_id: str, invoice_id: int, qbo_id: str, sync_token: str) -> QuickBooksRequest:
    request_id = mappers.request_id_for(Installation.current_id(), realm_id, "void", "Invoice", qbo_id, sync_token)
    try:
        with transaction.atomic():
            return QuickBooksRequest.objects.create(
                realm_id=realm_id,
                request_id=request_id,
                operation="Invoice.void",
                kind=VOID_KIND,
                local_key=str(invoice_id),
                payload={"Id": qbo_id, "SyncToken": sync_token},
            )
    except IntegrityError:
        return QuickBooksRequest.objects.get(request_id=request_id)
