"""“Record it in QuickBooks for me”: FieldSync enters a refund's QuickBooks transaction itself, exactly once.

Only where the transaction is unambiguous, and only when the connected company's mapping settings allow it
(`record_refunds_for_me`, off by default; entering it by hand stays the normal path):

- a **reversal** (bounced check, chargeback, wrong charge) of a payment FieldSync exported: the QuickBooks payment's
  line on the invoice and its total are lowered by the amount (a sparse Payment update), so QuickBooks re-opens the
  invoice by exactly what FieldSync re-opened. Money no longer owed (a Refund Receipt: which item or account is the
  office's call) and an overpayment returned (a Check to Accounts Receivable linked in Receive Payment) stay manual.

Exactly once, like every export create: the update is written to the outbox (QuickBooksRequest) with its request id
(this installation, the refund) and committed before it is sent; a click after a lost answer re-sends the stored
request unchanged, so QuickBooks answers with what it did. The stored update carries the payment's SyncToken, so
even if QuickBooks had forgotten the request id, an update already applied is refused as stale (5010) instead of
lowering the payment twice. QuickBooks is never called inside a database transaction.
"""

from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

from billing import services as billing_services
from billing.models import ManualHandlingItem, Refund
from billing.money import format_money
from fieldsync.exceptions import ApplicationError, ConflictError

from . import mappers, undo
from .client import QuickBooksClient
from .errors import QuickBooksError
from .models import (
    ExportAttempt,
    Installation,
    QuickBooksConnection,
    QuickBooksMapping,
    QuickBooksMappingAudit,
    QuickBooksMappingSettings,
    QuickBooksRequest,
)
from .services import REFUND_RECORDING_KIND

RECORDABLE_KINDS = frozenset({Refund.Kind.REVERSAL})
# How a handled item's note begins when FieldSync voided the whole payment (pages say so: recorded_as_void).
VOID_NOTE = "Recorded in QuickBooks by FieldSync: the whole payment was reversed, so"


def recorded_as_void(item: ManualHandlingItem) -> bool:
    return item.handled_note.startswith(VOID_NOTE)


def refund_recording_blocker(*, item: ManualHandlingItem, allowed: bool) -> str:
    """Why FieldSync cannot record this item for you ("" when it can). `allowed` is the company's setting."""
    if not allowed:
        return "Recording refunds in QuickBooks is turned off in the QuickBooks settings."
    if item.status != ManualHandlingItem.Status.OPEN:
        return "This item is already handled."
    refund = item.refund
    if refund is None or refund.kind not in RECORDABLE_KINDS:
        return "Only a reversed payment is recorded by FieldSync; enter this one by hand."
    if not item.payment.export_reference or item.payment.export_status != item.payment.ExportStatus.EXPORTED:
        return "The payment is not (yet) one FieldSync exported; enter this one by hand."
    return ""


def record_refunds_allowed(*, business_unit_id: int) -> bool:
    """Whether the company of the unit lets FieldSync record refunds (its mapping settings say so)."""
    connection = QuickBooksConnection.objects.filter(is_current=True, business_unit_id=business_unit_id).first()
    if connection is None:
        return False
    return QuickBooksMappingSettings.objects.filter(realm_id=connection.realm_id, record_refunds_for_me=True).exists()


def _reversal_update(qbo_payment: dict, *, invoice_qbo_id: str, amount: Decimal, invoice_number: str) -> dict:
    """The sparse update that lowers the payment's line on the invoice, and its total, by `amount`."""
    lines, lowered = [], False
    for line in qbo_payment.get("Line", []):
        linked = {(t.get("TxnType"), str(t.get("TxnId"))) for t in line.get("LinkedTxn", [])}
        if not lowered and ("Invoice", invoice_qbo_id) in linked:
            applied = Decimal(str(line["Amount"]))
            if applied < amount:
                raise ApplicationError(
                    f"QuickBooks payment {qbo_payment['Id']} applies only {format_money(applied)} to invoice "
                    f"{invoice_number}, less than the {format_money(amount)} to reverse; enter it by hand.",
                    code="quickbooks_payment_differs",
                )
            lowered = True
            if applied == amount:
                continue  # the whole line goes
            line = {**line, "Amount": str(applied - amount)}
        lines.append(line)
    if not lowered:
        raise ApplicationError(
            f"QuickBooks payment {qbo_payment['Id']} is not applied to invoice {invoice_number}; enter it by hand.",
            code="quickbooks_payment_differs",
        )
    return {
        "Id": qbo_payment["Id"],
        "SyncToken": qbo_payment["SyncToken"],
        "sparse": True,
        "Line": lines,
        "TotalAmt": str(Decimal(str(qbo_payment["TotalAmt"])) - amount),
    }


def _open_reversal_items(item: ManualHandlingItem) -> list[ManualHandlingItem]:
    """The item, then the payment's other open items of reversals FieldSync may record (a split payment reversed on
    each of its invoices has one per refund): together they may reverse the whole payment."""
    others = (
        ManualHandlingItem.objects.filter(
            payment_id=item.payment_id,
            status=ManualHandlingItem.Status.OPEN,
            refund__kind__in=RECORDABLE_KINDS,
            refund__handling=Refund.Handling.QUICKBOOKS,
        )
        .exclude(pk=item.pk)
        .select_related("refund__application__invoice")
        .order_by("pk")
    )
    return [item, *others]


def _plan(connection, items: list[ManualHandlingItem], qbo_payment: dict) -> tuple[dict, list[ManualHandlingItem]]:
    """The sparse update that lowers the payment by the first item's reversal, and the items it settles; or, when
    the first item's reversal with the payment's other open ones leaves nothing of the QuickBooks payment (no line,
    total 0.00), None and every one of them: the whole payment is reversed, and it is voided instead."""
    invoice_ids = dict(
        QuickBooksMapping.objects.filter(
            realm_id=connection.realm_id,
            kind=QuickBooksMapping.Kind.INVOICE,
            local_key__in=[str(i.refund.application.invoice_id) for i in items],
        ).values_list("local_key", "qbo_id")
    )
    lowered, settled = qbo_payment, []
    for item in items:
        invoice = item.refund.application.invoice
        if str(invoice.pk) not in invoice_ids:
            if not settled:
                raise ConflictError(
                    f"Invoice {invoice.number} is not linked to QuickBooks here; enter it by hand.",
                    code="refund_recording_not_allowed",
                )
            break
        try:
            lowered = _reversal_update(
                lowered,
                invoice_qbo_id=invoice_ids[str(invoice.pk)],
                amount=item.refund.amount,
                invoice_number=invoice.number,
            )
        except ApplicationError:
            if not settled:
                raise
            break
        settled.append(item)
        if len(settled) == 1:
            first_update = lowered
    if not lowered["Line"] and Decimal(lowered["TotalAmt"]) == 0:
        return None, settled
    return first_update, settled[:1]


def _flag(item: ManualHandlingItem, message: str, code: str) -> None:
    """QuickBooks cannot take FieldSync's void as things are: nothing is sent, the item stays open for a person,
    and the payment's history says why."""
    ExportAttempt.objects.create(
        payment=item.payment,
        operation=f"record refund #{item.refund_id} (void Payment)",
        object_kind="payment",
        local_key=str(item.payment_id),
        qbo_id=item.payment.export_reference,
        outcome=ExportAttempt.Outcome.ERROR,
        error_code=code,
        message=message,
    )
    raise ConflictError(message, code=code)


def _void_request(connection, items: list[ManualHandlingItem], qbo_payment: dict) -> QuickBooksRequest:
    """The void of the whole payment, after the checks that it is still FieldSync's to void (flagged otherwise)."""
    item, payment = items[0], items[0].payment
    qbo_id = str(qbo_payment["Id"])
    if undo.payment_in_deposit(qbo_payment):
        _flag(
            item,
            f"QuickBooks payment {qbo_id} is in a bank deposit: QuickBooks cannot void it until it is taken out of "
            "the deposit (Intuit, Payment reference). FieldSync sent nothing. Remove it from the deposit in "
            "QuickBooks and press again, or void it there by hand and mark this handled.",
            "quickbooks_payment_deposited",
        )
    mapping = QuickBooksMapping.objects.filter(
        realm_id=connection.realm_id, kind=QuickBooksMapping.Kind.PAYMENT, local_key=str(payment.pk)
    ).first()
    if mapping is None or mapping.sync_token != str(qbo_payment["SyncToken"]):
        _flag(
            item,
            f"QuickBooks payment {qbo_id} was changed in QuickBooks since FieldSync last wrote it (SyncToken "
            f"{qbo_payment['SyncToken']}, FieldSync knew {mapping.sync_token if mapping else 'none'}): FieldSync "
            "will not void it over someone's change. Check it in QuickBooks, then void it there and mark this "
            "handled.",
            "quickbooks_payment_changed",
        )
    return undo.void_outbox_request(
        installation_id=Installation.current_id(),
        realm_id=connection.realm_id,
        entity="Payment",
        qbo_id=qbo_id,
        sync_token=str(qbo_payment["SyncToken"]),
        kind=REFUND_RECORDING_KIND,
        local_key=str(item.refund_id),
    )


def manual_item_record_in_quickbooks(*, item_id: int, user) -> ManualHandlingItem:
    """Post the item's QuickBooks transaction once, then mark the item handled with the QuickBooks id (audited: who,
    when, the request id, an attempt on the payment's history).

    A reversal of part of the payment lowers the QuickBooks payment (a sparse update). A reversal that, with the
    payment's other open reversals, takes back the WHOLE payment voids it instead (Intuit: POST
    /payment?operation=update&include=void; QuickBooks zeroes it and re-opens its invoices), and closes each of
    those items — unless QuickBooks' payment is in a bank deposit, or was changed there since FieldSync last wrote
    it (its SyncToken): then nothing is sent and ConflictError says why (the items stay open for a person).
    Raises ApplicationError when it may not (see refund_recording_blocker), QuickBooksError when QuickBooks refuses
    or does not answer (clicking again is safe: the stored request is re-sent with its request id)."""
    item = ManualHandlingItem.objects.select_related("refund__application__invoice", "payment__customer").get(
        pk=item_id
    )
    if blocker := refund_recording_blocker(
        item=item, allowed=record_refunds_allowed(business_unit_id=item.payment.business_unit_id)
    ):
        raise ConflictError(blocker, code="refund_recording_not_allowed")
    connection = QuickBooksConnection.objects.get(is_current=True, business_unit_id=item.payment.business_unit_id)
    refund, payment = item.refund, item.payment
    client = QuickBooksClient(connection)

    request = (
        QuickBooksRequest.objects.filter(realm_id=connection.realm_id, kind=REFUND_RECORDING_KIND)
        .filter(local_key=str(refund.pk))
        .order_by("-id")
        .first()
    )
    items = [item]
    if request is None:
        qbo_payment = client.read("Payment", payment.export_reference)
        payload, items = _plan(connection, _open_reversal_items(item), qbo_payment)
        if payload is None:
            request = _void_request(connection, items, qbo_payment)
        else:
            request_id = mappers.request_id_for(Installation.current_id(), connection.realm_id, "refund", refund.pk)
            try:
                with transaction.atomic():
                    request = QuickBooksRequest.objects.create(
                        realm_id=connection.realm_id,
                        request_id=request_id,
                        operation="Payment.update",
                        kind=REFUND_RECORDING_KIND,
                        local_key=str(refund.pk),
                        payload=payload,
                    )
            except IntegrityError:  # a second click at the same moment: send what the first one stored
                request = QuickBooksRequest.objects.get(request_id=request_id)
    elif request.operation == "Payment.void":
        items = _open_reversal_items(item)  # the void settles every open reversal of the payment
    voiding = request.operation == "Payment.void"
    if request.state == QuickBooksRequest.State.FAILED:
        raise ConflictError(
            f"QuickBooks refused this earlier ({request.last_error}); enter it by hand.", code="refund_recording_failed"
        )
    if voiding:
        try:
            answer = undo.void_outbox_send(request, client=client)
        except QuickBooksError as exc:
            _attempt(item, request, error=exc)
            raise
    elif request.state == QuickBooksRequest.State.PENDING:
        try:
            answer = client.update("Payment", request.payload, request_id=request.request_id)
        except QuickBooksError as exc:
            if not exc.retryable:
                request.state, request.last_error = QuickBooksRequest.State.FAILED, f"{exc.code}: {exc.message}"
                request.completed_at = timezone.now()
                request.save(update_fields=["state", "last_error", "completed_at"])
            _attempt(item, request, error=exc)
            raise
        request.state, request.response, request.completed_at = QuickBooksRequest.State.DONE, answer, timezone.now()
        request.attempts += 1
    else:
        answer = request.response
    with transaction.atomic():
        if not voiding:
            request.save(update_fields=["state", "response", "completed_at", "attempts"])
        _attempt(item, request)
        _remember_sync_token(connection, payment, answer, voided=voiding, refund_id=refund.pk)
        handled = None
        for settled in items:
            if voiding:
                note = f"{VOID_NOTE} QuickBooks payment {answer['Id']} was voided (request {request.request_id})."
            else:
                note = (
                    f"Recorded in QuickBooks by FieldSync: payment {answer['Id']} lowered by "
                    f"{format_money(refund.amount, payment.currency)} on invoice "
                    f"{refund.application.invoice.number} (request {request.request_id})."
                )
            closed = billing_services.manual_item_mark_handled(
                item=settled, user=user, note=note, quickbooks_id=str(answer["Id"])
            )
            handled = handled or closed
        return handled


def _remember_sync_token(connection, payment, answer: dict, *, voided: bool, refund_id: int) -> None:
    """FieldSync's own change is no one else's: the payment's link takes QuickBooks' new SyncToken (a later void
    compares with it); a void is audited on the link, which stays, to the voided QuickBooks payment."""
    mapping = QuickBooksMapping.objects.filter(
        realm_id=connection.realm_id, kind=QuickBooksMapping.Kind.PAYMENT, local_key=str(payment.pk)
    ).first()
    if mapping is None:
        return
    before = {"qbo_id": mapping.qbo_id, "sync_token": mapping.sync_token}
    mapping.sync_token = str(answer.get("SyncToken", mapping.sync_token))
    mapping.save(update_fields=["sync_token", "updated_at"])
    if voided:
        QuickBooksMappingAudit.objects.create(
            realm_id=connection.realm_id,
            kind=QuickBooksMapping.Kind.PAYMENT,
            local_key=str(payment.pk),
            action=QuickBooksMappingAudit.Action.VOID,
            before=before,
            after={"qbo_id": mapping.qbo_id, "sync_token": mapping.sync_token},
            note=f"The whole payment was reversed in FieldSync (refund #{refund_id}).",
        )


def _attempt(item: ManualHandlingItem, request: QuickBooksRequest, *, error: QuickBooksError | None = None) -> None:
    verb = "void" if request.operation == "Payment.void" else "update"
    ExportAttempt.objects.create(
        payment=item.payment,
        operation=f"record refund #{item.refund_id} ({verb} Payment)",
        object_kind="payment",
        local_key=str(item.payment_id),
        request_id=request.request_id,
        qbo_id=item.payment.export_reference,
        outcome=ExportAttempt.Outcome.ERROR if error else ExportAttempt.Outcome.OK,
        error_code=(error.qbo_code or error.code) if error else "",
        message=error.message if error else "",
    )
