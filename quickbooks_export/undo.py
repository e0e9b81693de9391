"""Undo an export (an ExportBatch, or one payment): void in QuickBooks what that export created, then let FieldSync
export it again.

What is voided: the QuickBooks payments the export created (batch items CREATED, still EXPORTED here), then each
invoice FieldSync created whose every payment in QuickBooks is being voided. Customers and items stay. Payments go
first: Intuit's Payment reference says a deposited payment cannot be voided until its deposit is removed ("If funds
for the payment have been deposited, you must delete the associated deposit object before voiding the payment
object"), and our sandbox refuses to void an invoice that still has payments applied (*unconfirmed* for QuickBooks
itself, which may instead leave those payments as unapplied credit — either way, voiding the payments first leaves
no stray credit).

Refused with the reason, before anything is sent, when:
- a payment was changed in QuickBooks since the export (its SyncToken is not the one the export stored), is already
  voided, is gone, or is in a deposit;
- an invoice to void has a payment applied in QuickBooks that is not ours to void, or a total or customer that
  differs from what was exported. (An invoice's SyncToken moves every time a payment is applied to it, so "unchanged"
  for an invoice means: same total, same customer, and only the payments being voided linked to it.)
- a payment has a refund recorded in FieldSync (its QuickBooks side is a person's to settle first).

Exactly once: each void is written to the outbox (QuickBooksRequest, kind "undo") with a request id derived from the
QuickBooks object and the SyncToken it is voided at, committed before it is sent, and re-sent unchanged after a lost
answer. A second undo of the same object finds that request and reuses its answer instead of voiding again. The runs
take the company's export lease (no export runs at the same time), use the runner's budget and backoff (_call), and
never call QuickBooks inside a transaction.

Afterwards each voided payment is NOT_EXPORTED again (billing.payment_export_undone) and its mapping, and the voided
invoices' mappings, are removed with an audit row (QuickBooksMappingAudit, action "undo").
"""

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from billing import services as billing_services
from billing.models import Invoice, Payment, PaymentApplication, Refund
from billing.money import format_money
from fieldsync.exceptions import ApplicationError, ConflictError

from . import mappers
from .client import QuickBooksClient, id_chunks
from .errors import QuickBooksAuthorizationError, QuickBooksError
from .models import (
    ExportAttempt,
    ExportBatch,
    ExportBatchItem,
    ExportUndo,
    Installation,
    QuickBooksConnection,
    QuickBooksMapping,
    QuickBooksMappingAudit,
    QuickBooksMappingSettings,
    QuickBooksRequest,
)
from .services import UNDO_KIND, _Backoff, _call, _lease_acquire, _lease_release, _LeaseLost, _Run

logger = logging.getLogger(__name__)


def _direct(send: Callable[[], dict]) -> dict:
    return send()


Kind = QuickBooksMapping.Kind
ExportStatus = Payment.ExportStatus
QUERY_IDS = 100  # ids per "WHERE Id IN (...)" read


@dataclass
class UndoPlan:
    """What an undo will void, in order, or why it cannot (`refusals`, in plain words)."""

    realm_id: str
    payments: list[dict] = field(default_factory=list)
    invoices: list[dict] = field(default_factory=list)
    # Invoices that stay in QuickBooks because other payments of theirs stay there.
    invoices_kept: list[str] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    quickbooks_reads: int = 0

    @property
    def steps(self) -> list[dict]:
        return self.payments + self.invoices


def _read_many(client: QuickBooksClient, plan: UndoPlan, entity: str, ids: list[str]) -> dict[str, dict]:
    found: dict[str, dict] = {}
    for chunk in id_chunks(entity, ids, size=QUERY_IDS):
        plan.quickbooks_reads += 1
        found.update(client.query_by_ids(entity, chunk))
    return found


def payment_in_deposit(row: dict) -> bool:
    """A payment in a bank deposit: QuickBooks links the Deposit to it (*unconfirmed* where exactly; both places
    are checked). Voiding it would fail with 6540 ("Deposited Transaction cannot be changed") anyway."""
    links = list(row.get("LinkedTxn") or [])
    for line in row.get("Line") or []:
        links.extend(line.get("LinkedTxn") or [])
    return any(link.get("TxnType") == "Deposit" for link in links)


def _payments_to_undo(*, batch_id: int | None, payment_id: int | None) -> list[int]:
    if batch_id is not None:
        return list(
            ExportBatchItem.objects.filter(batch_id=batch_id, outcome=ExportBatchItem.Outcome.CREATED)
            .filter(payment__export_status=ExportStatus.EXPORTED)
            .order_by("payment_id")
            .values_list("payment_id", flat=True)
        )
    return list(Payment.objects.filter(pk=payment_id, export_status=ExportStatus.EXPORTED).values_list("pk", flat=True))


def _invoices_exported_alone(*, batch_id: int | None) -> list[int]:
    """Invoices with nothing to pay that this export created on their own (no payment: services' invoice-only
    items). They are voided like the invoices of undone payments, after them."""
    if batch_id is None:
        return []
    return list(
        ExportBatchItem.objects.filter(
            batch_id=batch_id, invoice__isnull=False, outcome=ExportBatchItem.Outcome.CREATED
        ).values_list("invoice_id", flat=True)
    )


def export_undo_plan(*, batch_id: int | None = None, payment_id: int | None = None) -> UndoPlan:
    """Check QuickBooks and say exactly what an undo would void (reads only; batched: one query per 100 objects).

    Raises QuickBooksNotConnectedError when no company is connected, QuickBooksError when QuickBooks cannot be read.
    """
    # The company of the payments' business unit (a batch holds one unit's payments).
    of_unit = Payment.objects.filter(
        Q(export_items__batch_id=batch_id) if batch_id is not None else Q(pk=payment_id)
    ).values("business_unit_id")[:1]
    connection = QuickBooksConnection.objects.filter(is_current=True, business_unit_id__in=of_unit).first()
    if connection is None:
        raise ConflictError("QuickBooks is not connected; connect it before undoing an export.", code="not_connected")
    plan = UndoPlan(realm_id=connection.realm_id)
    if batch_id is not None and not ExportBatch.objects.filter(pk=batch_id, realm_id=connection.realm_id).exists():
        plan.refusals.append(f"Export #{batch_id} went to another QuickBooks company than the one connected now.")
        return plan
    payment_ids = _payments_to_undo(batch_id=batch_id, payment_id=payment_id)
    alone_ids = _invoices_exported_alone(batch_id=batch_id)
    if alone_ids:  # still linked: not undone (or unlinked) since
        alone_ids = [
            int(key)
            for key in QuickBooksMapping.objects.filter(
                realm_id=plan.realm_id, kind=Kind.INVOICE, local_key__in=[str(pk) for pk in alone_ids]
            ).values_list("local_key", flat=True)
        ]
    if not payment_ids and not alone_ids:
        plan.refusals.append("Nothing to undo: none of its payments is in QuickBooks from FieldSync any more.")
        return plan
    payments = {p.pk: p for p in Payment.objects.select_related("customer").filter(pk__in=payment_ids)}
    refunded = set(Refund.objects.filter(payment_id__in=payment_ids).values_list("payment_id", flat=True))
    for pk in sorted(refunded):
        plan.refusals.append(
            f"Payment #{pk} has a refund recorded; settle the refund in QuickBooks by hand instead of undoing."
        )
    mappings = {
        m.local_key: m
        for m in QuickBooksMapping.objects.filter(
            realm_id=plan.realm_id, kind=Kind.PAYMENT, local_key__in=[str(pk) for pk in payment_ids]
        )
    }
    # Invoices of these payments, and every payment of theirs that is in QuickBooks (one query each).
    applications = list(
        PaymentApplication.objects.filter(payment_id__in=payment_ids).values_list("payment_id", "invoice_id")
    )
    invoice_ids = sorted({invoice_id for _, invoice_id in applications} | set(alone_ids))
    invoices = {i.pk: i for i in Invoice.objects.filter(pk__in=invoice_ids)}
    in_quickbooks_by_invoice: dict[int, set[int]] = {}
    for pay_id, inv_id in PaymentApplication.objects.filter(
        invoice_id__in=invoice_ids,
        payment__export_status__in=[ExportStatus.EXPORTED, ExportStatus.EXPORTED_MANUALLY, ExportStatus.IN_QUICKBOOKS],
    ).values_list("payment_id", "invoice_id"):
        in_quickbooks_by_invoice.setdefault(inv_id, set()).add(pay_id)
    invoice_mappings = {
        m.local_key: m
        for m in QuickBooksMapping.objects.filter(
            realm_id=plan.realm_id, kind=Kind.INVOICE, local_key__in=[str(pk) for pk in invoice_ids]
        )
    }
    customer_mappings = dict(
        QuickBooksMapping.objects.filter(
            realm_id=plan.realm_id,
            kind=Kind.CUSTOMER,
            local_key__in=[str(i.customer_id) for i in invoices.values()],
        ).values_list("local_key", "qbo_id")
    )

    client = QuickBooksClient(connection)
    qbo_payment_ids = [mappings[str(pk)].qbo_id for pk in payment_ids if str(pk) in mappings]
    qbo_payments = _read_many(client, plan, "Payment", qbo_payment_ids)
    for pk in payment_ids:
        payment, mapping = payments[pk], mappings.get(str(pk))
        label = f"Payment #{pk} from {payment.customer.display_name}, {format_money(payment.amount, payment.currency)}"
        if mapping is None:
            plan.refusals.append(f"{label}: FieldSync has no link to its QuickBooks payment; undo it by hand.")
            continue
        row = qbo_payments.get(mapping.qbo_id)
        if row is None:
            plan.refusals.append(f"{label}: QuickBooks payment {mapping.qbo_id} is no longer in QuickBooks.")
        elif Decimal(str(row.get("TotalAmt", "0"))) == 0 or str(row.get("PrivateNote", "")).startswith("Voided"):
            plan.refusals.append(f"{label}: QuickBooks payment {mapping.qbo_id} is already voided.")
        elif payment_in_deposit(row):
            plan.refusals.append(
                f"{label}: QuickBooks payment {mapping.qbo_id} is in a bank deposit; QuickBooks voids it only after "
                "it is taken out of the deposit."
            )
        elif str(row["SyncToken"]) != mapping.sync_token:
            plan.refusals.append(
                f"{label}: QuickBooks payment {mapping.qbo_id} was changed in QuickBooks since the export; "
                "check it there instead of undoing."
            )
        else:
            plan.payments.append(
                {
                    "entity": "Payment",
                    "qbo_id": mapping.qbo_id,
                    "sync_token": str(row["SyncToken"]),
                    "local_key": str(pk),
                    "label": label,
                    "amount": str(Decimal(str(row["TotalAmt"]))),
                }
            )

    undone = set(payment_ids)
    candidates = []
    for inv_id in invoice_ids:
        invoice, mapping = invoices[inv_id], invoice_mappings.get(str(inv_id))
        if mapping is None or mapping.linked_existing:
            continue  # not created by FieldSync: stays
        if in_quickbooks_by_invoice.get(inv_id, set()) - undone:
            plan.invoices_kept.append(f"{invoice.number} (other payments of it stay in QuickBooks)")
            continue
        candidates.append((invoice, mapping))
    qbo_invoices = _read_many(client, plan, "Invoice", [m.qbo_id for _, m in candidates])
    ours = {step["qbo_id"] for step in plan.payments} | {
        mappings[str(pk)].qbo_id for pk in undone if str(pk) in mappings
    }
    for invoice, mapping in candidates:
        label = f"Invoice {invoice.number}"
        row = qbo_invoices.get(mapping.qbo_id)
        if row is None:
            plan.refusals.append(f"{label}: QuickBooks invoice {mapping.qbo_id} is no longer in QuickBooks.")
            continue
        linked = {str(t.get("TxnId")) for t in row.get("LinkedTxn") or [] if t.get("TxnType") == "Payment"}
        if linked - ours:
            plan.refusals.append(
                f"{label}: QuickBooks invoice {mapping.qbo_id} has a payment FieldSync did not export "
                f"({', '.join(sorted(linked - ours))}); undo it by hand."
            )
        elif (row.get("CustomerRef") or {}).get("value") != customer_mappings.get(str(invoice.customer_id)):
            plan.refusals.append(f"{label}: its customer was changed in QuickBooks since the export.")
        else:
            plan.invoices.append(
                {
                    "entity": "Invoice",
                    "qbo_id": mapping.qbo_id,
                    "sync_token": str(row["SyncToken"]),
                    "local_key": str(invoice.pk),
                    "label": f"{label}, {format_money(Decimal(str(row['TotalAmt'])), invoice.currency)}",
                    "amount": str(Decimal(str(row["TotalAmt"]))),
                }
            )
    return plan


def export_undo_start(*, user, batch_id: int | None = None, payment_id: int | None = None) -> ExportUndo:
    """Check again (QuickBooks reads, outside any transaction), record the undo and queue its run.

    Raises ConflictError with every reason when the undo is refused; nothing is recorded then."""
    plan = export_undo_plan(batch_id=batch_id, payment_id=payment_id)
    if plan.refusals:
        raise ConflictError(
            "Cannot undo: " + " ".join(plan.refusals), code="undo_refused", extra={"reasons": plan.refusals}
        )
    with transaction.atomic():
        # Two clicks at once: the batch's (or payment's) row lock makes the second see the first's undo.
        if batch_id is not None:
            list(ExportBatch.objects.select_for_update().filter(pk=batch_id).values_list("pk", flat=True))
        else:
            list(Payment.objects.select_for_update().filter(pk=payment_id).values_list("pk", flat=True))
        if ExportUndo.objects.filter(
            batch_id=batch_id, payment_id=payment_id, state__in=[ExportUndo.State.QUEUED, ExportUndo.State.RUNNING]
        ).exists():
            raise ConflictError("This export is already being undone.", code="undo_running")
        undo = ExportUndo.objects.create(
            realm_id=plan.realm_id, batch_id=batch_id, payment_id=payment_id, plan=plan.steps, created_by=user
        )
        transaction.on_commit(lambda: _enqueue(undo.pk))
    return undo


def _enqueue(undo_id: int, *, delay: float = 0.0) -> None:
    from .tasks import enqueue_undo_run

    enqueue_undo_run(undo_id, delay=delay)


def void_outbox_request(
    *, installation_id: str, realm_id: str, entity: str, qbo_id: str, sync_token: str, kind: str, local_key: str
) -> QuickBooksRequest:
    """The outbox row of one void of a QuickBooks object at one SyncToken: found (an earlier void of the same object
    at the same SyncToken, whoever wrote it: an undo, or a reversal recorded by refund_recording.py) or written and
    committed. Its request id depends on the object and the SyncToken only, so two paths never void twice."""
    request_id = mappers.request_id_for(installation_id, realm_id, "void", entity, qbo_id, sync_token)
    existing = QuickBooksRequest.objects.filter(request_id=request_id).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            return QuickBooksRequest.objects.create(
                realm_id=realm_id,
                request_id=request_id,
                operation=f"{entity}.void",
                kind=kind,
                local_key=local_key,
                payload={"Id": qbo_id, "SyncToken": sync_token},
            )
    except IntegrityError:
        return QuickBooksRequest.objects.get(request_id=request_id)


def void_outbox_send(
    request: QuickBooksRequest, *, client: QuickBooksClient, call: Callable[[Callable[[], dict]], dict] = _direct
) -> dict:
    """Send one void from the outbox (or reuse its recorded answer), re-sent unchanged with its request id after a
    lost answer; `call` wraps the send (the runner's budget and backoff). Raises ApplicationError (code
    void_refused) when QuickBooks refused it before, QuickBooksError when it refuses now (recorded: never re-sent)."""
    entity = request.operation.removesuffix(".void")
    if request.state == QuickBooksRequest.State.DONE:
        return request.response
    if request.state == QuickBooksRequest.State.FAILED:
        raise ApplicationError(request.last_error, code="void_refused")
    try:
        answer = call(
            lambda: client.void(
                entity,
                id=request.payload["Id"],
                sync_token=request.payload["SyncToken"],
                request_id=request.request_id,
            )
        )
    except QuickBooksError as exc:
        if not exc.retryable and not isinstance(exc, QuickBooksAuthorizationError):
            request.state, request.last_error = (
                QuickBooksRequest.State.FAILED,
                f"{exc.qbo_code or exc.code}: {exc.message}",
            )
            request.completed_at, request.attempts = timezone.now(), request.attempts + 1
            request.save(update_fields=["state", "last_error", "completed_at", "attempts"])
        raise
    request.state, request.response = QuickBooksRequest.State.DONE, answer
    request.completed_at, request.attempts = timezone.now(), request.attempts + 1
    request.save(update_fields=["state", "response", "completed_at", "attempts"])
    return answer


def _void(run: _Run, undo: ExportUndo, step: dict, sync_token: str) -> dict:
    """Send one void of an undo (or reuse its recorded answer). Raises QuickBooksError when QuickBooks refuses."""
    request = void_outbox_request(
        installation_id=run.installation_id,
        realm_id=run.realm_id,
        entity=step["entity"],
        qbo_id=step["qbo_id"],
        sync_token=sync_token,
        kind=UNDO_KIND,
        local_key=f"{undo.pk}:{step['entity']}:{step['qbo_id']}",
    )
    return void_outbox_send(request, client=run.client, call=lambda send: _call(run, send))


def _forget_mapping(undo: ExportUndo, kind: str, local_key: str, answer: dict) -> None:
    mapping = QuickBooksMapping.objects.filter(realm_id=undo.realm_id, kind=kind, local_key=local_key).first()
    if mapping is None:
        return
    QuickBooksMappingAudit.objects.create(
        realm_id=undo.realm_id,
        kind=kind,
        local_key=local_key,
        action=QuickBooksMappingAudit.Action.UNDO,
        before={"qbo_id": mapping.qbo_id, "qbo_name": mapping.qbo_name, "sync_token": mapping.sync_token},
        after={"voided_sync_token": str(answer.get("SyncToken", ""))},
        note=f"Undo #{undo.pk}",
        by=undo.created_by,
    )
    mapping.delete()


def export_undo_run(*, undo_id: int) -> str:
    """Void the undo's objects in order, once each. Returns "done", "stopped" (needs a person: reason on the undo),
    "busy" (an export runs for the company: tried again shortly) or "backoff" (QuickBooks busy: tried again later)."""
    undo = ExportUndo.objects.get(pk=undo_id)
    if undo.state in (ExportUndo.State.DONE, ExportUndo.State.STOPPED):
        return undo.state
    holder = f"undo:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    if not _lease_acquire(undo.realm_id, holder):
        _enqueue(undo.pk, delay=5.0)
        return "busy"
    try:
        connection = QuickBooksConnection.objects.filter(is_current=True, realm_id=undo.realm_id).first()
        if connection is None:
            return _stop(undo, "QuickBooks is no longer connected to this company; nothing more was voided.")
        ExportUndo.objects.filter(pk=undo.pk).update(state=ExportUndo.State.RUNNING)
        run = _Run(
            realm_id=undo.realm_id,
            client=QuickBooksClient(connection),
            holder=holder,
            deadline=time.monotonic() + settings.EXPORT_RUN_SECONDS,
            mapping_settings=QuickBooksMappingSettings(realm_id=undo.realm_id),
            installation_id=Installation.current_id(),
        )
        for step in undo.plan:
            undo_step = _undo_payment if step["entity"] == "Payment" else _undo_invoice
            stopped = undo_step(run, undo, step)
            if stopped:
                return _stop(undo, stopped)
        undo.state, undo.finished_at = ExportUndo.State.DONE, timezone.now()
        undo.save(update_fields=["state", "finished_at"])
        return "done"
    except _Backoff as exc:
        ExportUndo.objects.filter(pk=undo.pk).update(state=ExportUndo.State.QUEUED)
        _enqueue(undo.pk, delay=exc.delay)
        return "backoff"
    except _LeaseLost:
        return "lease_lost"
    finally:
        _lease_release(undo.realm_id, holder)


def _stop(undo: ExportUndo, reason: str) -> str:
    undo.refresh_from_db(fields=["voided_payments", "voided_invoices"])
    undo.state, undo.message, undo.finished_at = ExportUndo.State.STOPPED, reason, timezone.now()
    undo.save(update_fields=["state", "message", "finished_at"])
    return "stopped"


def _undo_payment(run: _Run, undo: ExportUndo, step: dict) -> str:
    payment_id = int(step["local_key"])
    if not Payment.objects.filter(pk=payment_id, export_status=ExportStatus.EXPORTED).exists():
        return ""  # an earlier run (or another undo) already finished this one
    try:
        answer = _void(run, undo, step, step["sync_token"])
    except ApplicationError as exc:
        _attempt(payment_id, step, error=exc)
        return (
            f"QuickBooks would not void payment {step['qbo_id']} ({step['label']}): {exc.message} "
            f"{undo.voided_payments} payment(s) and {undo.voided_invoices} invoice(s) were voided before it; "
            "the rest is unchanged."
        )
    with transaction.atomic():
        billing_services.payment_export_undone(
            payment_id=payment_id, note=f"Voided in QuickBooks by undo #{undo.pk}", user=undo.created_by
        )
        _forget_mapping(undo, Kind.PAYMENT, step["local_key"], answer)
        _attempt(payment_id, step)
        undo.voided_payments += 1
        undo.save(update_fields=["voided_payments"])
    return ""


def _undo_invoice(run: _Run, undo: ExportUndo, step: dict) -> str:
    if not QuickBooksMapping.objects.filter(
        realm_id=undo.realm_id, kind=Kind.INVOICE, local_key=step["local_key"], qbo_id=step["qbo_id"]
    ).exists():
        return ""  # already voided and unlinked by an earlier run
    # Voiding its payments moved the invoice's SyncToken (and Balance): read it now and void it at that token, but
    # only if nothing but our voids happened to it.
    try:
        row = _call(run, lambda: run.client.read("Invoice", step["qbo_id"]))
    except QuickBooksError as exc:
        if exc.retryable:
            raise
        return f"QuickBooks invoice {step['qbo_id']} could not be read: {exc.message}"
    linked = [t for t in row.get("LinkedTxn") or [] if t.get("TxnType") == "Payment"]
    if linked or Decimal(str(row.get("Balance", "0"))) != Decimal(str(row.get("TotalAmt", "0"))):
        return (
            f"{step['label']}: QuickBooks invoice {step['qbo_id']} still has a payment applied after its FieldSync "
            "payments were voided; void or unapply it there by hand."
        )
    try:
        answer = _void(run, undo, step, str(row["SyncToken"]))
    except ApplicationError as exc:
        return f"QuickBooks would not void invoice {step['qbo_id']} ({step['label']}): {exc.message}"
    with transaction.atomic():
        _forget_mapping(undo, Kind.INVOICE, step["local_key"], answer)
        undo.voided_invoices += 1
        undo.save(update_fields=["voided_invoices"])
    return ""


def _attempt(payment_id: int, step: dict, *, error: ApplicationError | None = None) -> None:
    ExportAttempt.objects.create(
        payment_id=payment_id,
        operation="void Payment (undo of the export)",
        object_kind=Kind.PAYMENT,
        local_key=step["local_key"],
        qbo_id=step["qbo_id"],
        outcome=ExportAttempt.Outcome.ERROR if error else ExportAttempt.Outcome.OK,
        error_code=(getattr(error, "qbo_code", "") or error.code) if error else "",
        message=error.message if error else "",
    )
