"""The ways out of an invoice hold (see models.InvoiceExportHold and invoice_checks.py), for the payment page and API.

- "Update the QuickBooks invoice to match FieldSync": a sparse update of the QuickBooks invoice with our lines and tax,
  under its current SyncToken; QuickBooks recomputes, and we compare its answer again (it may compute tax itself and
  keep its own figure: then the hold stays, saying so).
- "Check again": one read of the QuickBooks invoice; when it now matches and can take the payments, the hold is
  released and its payments are queued for export.
- "Unlink": forget the invoice's mapping (audited) so the next export links or creates it afresh; refused while any
  payment of the invoice is already in QuickBooks (those are applied to the linked invoice).

Each talks to QuickBooks outside any transaction, then records what it learned in one short transaction. Every
action writes a QuickBooksMappingAudit row (who, when, before/after).
"""

from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from billing import selectors as billing_selectors
from billing import services as billing_services
from billing.models import Payment
from fieldsync.exceptions import ApplicationError, ConflictError

from . import invoice_checks, mappers
from .client import QuickBooksClient
from .errors import QuickBooksError
from .invoice_updates import invoice_update_body
from .models import (
    ExportBatch,
    InvoiceExportHold,
    QuickBooksMapping,
    QuickBooksMappingAudit,
)

ExportStatus = Payment.ExportStatus
Kind = QuickBooksMapping.Kind


class HoldStillApplies(ConflictError):
    code = "hold_still_applies"


def _open_hold(hold_id: int) -> InvoiceExportHold:
    hold = InvoiceExportHold.objects.select_related("invoice").filter(pk=hold_id).first()
    if hold is None:
        raise ApplicationError(f"No QuickBooks hold #{hold_id}.", code="unknown_hold")
    if hold.state != InvoiceExportHold.State.OPEN:
        raise ConflictError(
            f"The hold of {hold.invoice.number} was already released; there is nothing to do.", code="hold_released"
        )
    return hold


def invoice_payments_on_their_way(*, realm_id: str, invoice_id: int) -> tuple[int, int]:
    """(payments of the invoice in QuickBooks, payments of it on their way there) — while either is non-zero the
    invoice's link must stay: those payments are (or may be, once the outbox replays an unanswered create) applied to
    the linked QuickBooks invoice, and a new link would make the next export create a second one."""
    from .services import _payments_in_pending_requests

    ids = set(Payment.objects.filter(applications__invoice_id=invoice_id).values_list("pk", flat=True))
    in_qbo = set(
        int(key)
        for key in QuickBooksMapping.objects.filter(
            realm_id=realm_id, kind=Kind.PAYMENT, local_key__in=[str(pk) for pk in ids]
        ).values_list("local_key", flat=True)
    )
    moving = set(
        Payment.objects.filter(
            pk__in=ids - in_qbo, export_status__in=[ExportStatus.QUEUED, ExportStatus.EXPORTING]
        ).values_list("pk", flat=True)
    ) | ((ids - in_qbo) & _payments_in_pending_requests(realm_id))
    return len(in_qbo), len(moving)


def invoice_on_the_way_refusal(number: str, moving: int, *, what: str) -> str:
    return (
        f"{moving} payment{'s' if moving != 1 else ''} of {number} {'are' if moving != 1 else 'is'} on "
        f"{'their' if moving != 1 else 'its'} way to QuickBooks (queued or being exported) and may already be "
        f"applied to the linked QuickBooks invoice; {what} now would make the next export create a second invoice. "
        "Wait until the export has finished, then try again."
    )


def _held_payments(hold: InvoiceExportHold) -> list[Payment]:
    ids = Payment.objects.filter(
        applications__invoice_id=hold.invoice_id, export_status=ExportStatus.ON_HOLD
    ).values_list("pk", flat=True)
    return billing_selectors.payments_for_export(payment_ids=list(ids))


def _amount_to_post(hold: InvoiceExportHold, payments: list[Payment]) -> Decimal:
    return sum(
        (amount for p in payments for inv, amount in mappers.payment_net_applications(p) if inv.pk == hold.invoice_id),
        Decimal("0.00"),
    )


def _invoice_with_total(hold: InvoiceExportHold):
    return billing_selectors.invoice_get_with_balances(invoice_id=hold.invoice_id)


def _read(client: QuickBooksClient, qbo_id: str) -> dict | None:
    rows = client.query(f"SELECT * FROM Invoice WHERE Id = {mappers.quote(qbo_id)}")
    return rows[0] if rows else None


def _audit(hold, *, action: str, user, before: dict, after: dict, note: str = "", api_client=None) -> None:
    if api_client is not None:  # no person did it: the audit says which API client (by stays empty)
        note = f"By API client {api_client.name}." + (f" {note}" if note else "")
    QuickBooksMappingAudit.objects.create(
        realm_id=hold.realm_id,
        kind=Kind.INVOICE,
        local_key=str(hold.invoice_id),
        action=action,
        before=before,
        after=after,
        note=note[:500],
        by=user,
    )


def _figures(row: dict | None) -> dict:
    if row is None:
        return {}
    total, tax, balance = invoice_checks.qbo_figures(row)
    return {"qbo_id": str(row.get("Id", "")), "total": total, "tax": tax, "balance": balance}


def _conclude(
    hold: InvoiceExportHold, row: dict | None, *, user, action: str, before: dict, api_client=None
) -> ExportBatch:
    """Release the hold and queue its payments when QuickBooks' invoice `row` can now take them; otherwise record
    the new figures and raise HoldStillApplies with what is still wrong."""
    invoice = _invoice_with_total(hold)
    payments = _held_payments(hold)
    problem = invoice_checks.invoice_problem(invoice, row, amount_to_post=_amount_to_post(hold, payments))
    with transaction.atomic():
        _audit(
            hold,
            action=action,
            user=user,
            before=before,
            after=_figures(row),
            note=problem.message if problem else "",
            api_client=api_client,
        )
        if problem is not None:
            InvoiceExportHold.objects.filter(pk=hold.pk).update(
                reason=problem.reason,
                message=problem.message,
                qbo_total=problem.qbo_total,
                qbo_tax=problem.qbo_tax,
                qbo_balance=problem.qbo_balance,
                tax_detail=problem.tax_detail,
                checked_at=timezone.now(),
            )
        else:
            return _release(hold, user=user, note=f"{QuickBooksMappingAudit.Action(action).label}: QuickBooks matches")
    raise HoldStillApplies(problem.message, extra={"hold": hold.pk, "reason": problem.reason})


@transaction.atomic
def _release(hold: InvoiceExportHold, *, user, note: str, queue: bool = True) -> ExportBatch | None:
    from .services import export_batch_start

    released = InvoiceExportHold.objects.filter(pk=hold.pk, state=InvoiceExportHold.State.OPEN).update(
        state=InvoiceExportHold.State.RELEASED, released_at=timezone.now(), released_by=user, release_note=note[:300]
    )
    if not released:
        raise ConflictError(f"The hold of {hold.invoice.number} was already released.", code="hold_released")
    payment_ids = list(
        Payment.objects.filter(
            applications__invoice_id=hold.invoice_id, export_status=ExportStatus.ON_HOLD
        ).values_list("pk", flat=True)
    )
    moved = billing_services.payment_export_status_bulk_transition(
        payment_ids=payment_ids,
        to_status=ExportStatus.NOT_EXPORTED,
        expected_from=[ExportStatus.ON_HOLD],
        note=f"Hold of {hold.invoice.number} released: {note}",
        user=user,
    )
    if not queue or not moved:
        return None
    return export_batch_start(
        payments=moved,
        selection=f"payments of {hold.invoice.number} after its QuickBooks hold was released",
        user=user,
        source=ExportBatch.Source.RETRY,
    )


def invoice_hold_check_again(*, hold_id: int, user=None, api_client=None) -> ExportBatch:
    """Read the QuickBooks invoice again (one request). Matches now: the hold is released and its payments are queued
    for export (the returned batch). Still different: the hold keeps the new figures and HoldStillApplies says why."""
    hold = _open_hold(hold_id)
    row = _read(QuickBooksClient.for_current_connection(realm_id=hold.realm_id), hold.qbo_invoice_id)
    before = {"qbo_id": hold.qbo_invoice_id, "total": hold.qbo_total, "tax": hold.qbo_tax, "balance": hold.qbo_balance}
    return _conclude(
        hold, row, user=user, action=QuickBooksMappingAudit.Action.CHECK_AGAIN, before=before, api_client=api_client
    )


def invoice_hold_update_quickbooks(*, hold_id: int, user=None, api_client=None) -> ExportBatch:
    """Send our lines and tax to the QuickBooks invoice (sparse update under its current SyncToken), then compare what
    QuickBooks answers. Raises HoldStillApplies when QuickBooks still computes another total (e.g. it computes sales
    tax itself and does not take ours), and ApplicationError when the invoice cannot be updated (gone, or paid in
    QuickBooks: changing an invoice with payments applied is left to the accountant)."""
    hold = _open_hold(hold_id)
    if hold.reason == InvoiceExportHold.Reason.NOT_FOUND:
        raise ApplicationError(
            f"QuickBooks no longer has the invoice {hold.invoice.number} was linked to; unlink it instead.",
            code="hold_not_updatable",
        )
    client = QuickBooksClient.for_current_connection(realm_id=hold.realm_id)
    current = _read(client, hold.qbo_invoice_id)
    if current is None:
        return _conclude(
            hold, None, user=user, action=QuickBooksMappingAudit.Action.UPDATE_INVOICE, before={}, api_client=api_client
        )
    total, _, balance = invoice_checks.qbo_figures(current)
    if balance != total:
        raise ApplicationError(
            f"QuickBooks invoice {hold.qbo_invoice_id} already has payments applied "
            f"({total - balance} of {total}); FieldSync does not change an invoice that is partly paid in QuickBooks. "
            "Fix it in QuickBooks, then check again.",
            code="hold_not_updatable",
        )
    invoice = (
        billing_selectors.invoice_with_balances()
        .select_related("customer")
        .prefetch_related("lines")
        .get(pk=hold.invoice_id)
    )
    body = invoice_update_body(
        client=client, realm_id=hold.realm_id, invoice=invoice, current=current, error_code="hold_not_updatable"
    )
    # The dates are not part of a hold (it is about the total); they go with a change after export (invoice_updates).
    update = {"Id": current["Id"], "SyncToken": current["SyncToken"]}
    update.update({k: v for k, v in body.items() if k not in ("TxnDate", "DueDate")})
    before = _figures(current) | {"sync_token": str(current.get("SyncToken", ""))}
    try:
        row = client.update("Invoice", update)
    except QuickBooksError as exc:
        _audit(
            hold,
            action=QuickBooksMappingAudit.Action.UPDATE_INVOICE,
            user=user,
            before=before,
            after={},
            note=exc.message,
            api_client=api_client,
        )
        raise ApplicationError(
            f"QuickBooks refused the update of invoice {hold.qbo_invoice_id}: {exc.message}", code="hold_update_refused"
        ) from None
    QuickBooksMapping.objects.filter(realm_id=hold.realm_id, kind=Kind.INVOICE, qbo_id=row["Id"]).update(
        sync_token=str(row.get("SyncToken", ""))
    )
    return _conclude(
        hold, row, user=user, action=QuickBooksMappingAudit.Action.UPDATE_INVOICE, before=before, api_client=api_client
    )


def _still_counts_in_quickbooks(row: dict | None) -> bool:
    """Whether QuickBooks' invoice `row` still counts in its books: not deleted (None) and not voided (QuickBooks
    keeps a voided invoice with its amounts zeroed and "Voided" in PrivateNote; ours never totals zero)."""
    if row is None:
        return False
    total, _, balance = invoice_checks.qbo_figures(row)
    return bool(total or balance)


def invoice_hold_unlink(*, hold_id: int, user=None, note: str = "", api_client=None) -> InvoiceExportHold:
    """Forget which QuickBooks invoice ours is (audited) and release the hold; its payments go back to "not exported"
    so the next export links or creates the invoice afresh. Refused while a payment of the invoice is in QuickBooks
    or on its way there, and while QuickBooks still has the linked invoice (one read, outside any transaction): with
    custom transaction numbers off the next export would create a second invoice beside it, counting the sale twice
    in QuickBooks' receivables. A differing invoice is voided or deleted in QuickBooks first."""
    hold = _open_hold(hold_id)
    _refuse_unlink_while_payments_need_the_link(hold)
    try:
        row = _read(QuickBooksClient.for_current_connection(realm_id=hold.realm_id), hold.qbo_invoice_id)
    except QuickBooksError as exc:
        raise ApplicationError(
            f"FieldSync could not ask QuickBooks whether invoice {hold.qbo_invoice_id} is still there ({exc.message}); "
            "nothing was unlinked. Try again later.",
            code="unlink_refused",
        ) from None
    if _still_counts_in_quickbooks(row):
        raise ApplicationError(
            f"QuickBooks still has invoice {hold.qbo_invoice_id} for {hold.invoice.number}; unlinking it now would "
            "make the next export create a second invoice beside it. Void or delete it in QuickBooks first, then "
            "unlink — or update it to match FieldSync, or fix it in QuickBooks and check again.",
            code="unlink_refused",
        )
    return _unlink(hold, user=user, note=note, api_client=api_client)


def _refuse_unlink_while_payments_need_the_link(hold: InvoiceExportHold) -> None:
    in_qbo, moving = invoice_payments_on_their_way(realm_id=hold.realm_id, invoice_id=hold.invoice_id)
    if moving:
        raise ApplicationError(
            invoice_on_the_way_refusal(hold.invoice.number, moving, what="unlinking"), code="unlink_refused"
        )
    if in_qbo:
        raise ApplicationError(
            f"{in_qbo} payment{'s' if in_qbo != 1 else ''} of {hold.invoice.number} "
            f"{'are' if in_qbo != 1 else 'is'} already in QuickBooks against invoice {hold.qbo_invoice_id}; "
            "unlinking would leave them there. Fix the invoice in QuickBooks and check again instead.",
            code="unlink_refused",
        )


@transaction.atomic
def _unlink(hold: InvoiceExportHold, *, user, note: str, api_client=None) -> InvoiceExportHold:
    hold = _open_hold(hold.pk)
    _refuse_unlink_while_payments_need_the_link(hold)  # again, now inside the transaction that unlinks
    mapping = (
        QuickBooksMapping.objects.select_for_update()
        .filter(realm_id=hold.realm_id, kind=Kind.INVOICE, local_key=str(hold.invoice_id))
        .first()
    )
    before = (
        {"qbo_id": mapping.qbo_id, "qbo_name": mapping.qbo_name, "sync_token": mapping.sync_token} if mapping else {}
    )
    if mapping is not None:
        mapping.delete()
    _audit(
        hold,
        action=QuickBooksMappingAudit.Action.UNLINK,
        user=user,
        before=before,
        after={},
        note=note,
        api_client=api_client,
    )
    _release(hold, user=user, note=note or "Unlinked from the QuickBooks invoice", queue=False)
    hold.refresh_from_db()
    return hold
