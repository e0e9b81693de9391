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

from . import mappers
from .client import QuickBooksClient
from .errors import QuickBooksError
from .models import (
    ExportAttempt,
    Installation,
    QuickBooksConnection,
    QuickBooksMapping,
    QuickBooksMappingSettings,
    QuickBooksRequest,
)
from .services import REFUND_RECORDING_KIND

RECORDABLE_KINDS = frozenset({Refund.Kind.REVERSAL})


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


def manual_item_record_in_quickbooks(*, item_id: int, user) -> ManualHandlingItem:
    """Post the item's QuickBooks transaction once, then mark the item handled with the QuickBooks id (audited: who,
    when, the request id, an attempt on the payment's history). Raises ApplicationError when it may not (see
    refund_recording_blocker), QuickBooksError when QuickBooks refuses or does not answer (clicking again is safe)."""
    item = ManualHandlingItem.objects.select_related("refund__application__invoice", "payment__customer").get(
        pk=item_id
    )
    if blocker := refund_recording_blocker(
        item=item, allowed=record_refunds_allowed(business_unit_id=item.payment.business_unit_id)
    ):
        raise ConflictError(blocker, code="refund_recording_not_allowed")
    connection = QuickBooksConnection.objects.get(is_current=True, business_unit_id=item.payment.business_unit_id)
    refund, payment = item.refund, item.payment
    invoice = refund.application.invoice
    request_id = mappers.request_id_for(Installation.current_id(), connection.realm_id, "refund", refund.pk)
    client = QuickBooksClient(connection)

    request = QuickBooksRequest.objects.filter(request_id=request_id).first()
    if request is None:
        invoice_mapping = QuickBooksMapping.objects.filter(
            realm_id=connection.realm_id, kind=QuickBooksMapping.Kind.INVOICE, local_key=str(invoice.pk)
        ).first()
        if invoice_mapping is None:
            raise ConflictError(
                f"Invoice {invoice.number} is not linked to QuickBooks here; enter it by hand.",
                code="refund_recording_not_allowed",
            )
        qbo_payment = client.read("Payment", payment.export_reference)
        payload = _reversal_update(
            qbo_payment, invoice_qbo_id=invoice_mapping.qbo_id, amount=refund.amount, invoice_number=invoice.number
        )
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
    if request.state == QuickBooksRequest.State.FAILED:
        raise ConflictError(
            f"QuickBooks refused this earlier ({request.last_error}); enter it by hand.", code="refund_recording_failed"
        )
    if request.state == QuickBooksRequest.State.PENDING:
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
        request.save(update_fields=["state", "response", "completed_at", "attempts"])
        _attempt(item, request)
        return billing_services.manual_item_mark_handled(
            item=item,
            user=user,
            note=(
                f"Recorded in QuickBooks by FieldSync: payment {answer['Id']} lowered by "
                f"{format_money(refund.amount, payment.currency)} on invoice {invoice.number} "
                f"(request {request.request_id})."
            ),
            quickbooks_id=str(answer["Id"]),
        )


def _attempt(item: ManualHandlingItem, request: QuickBooksRequest, *, error: QuickBooksError | None = None) -> None:
    ExportAttempt.objects.create(
        payment=item.payment,
        operation=f"record refund #{item.refund_id} (update Payment)",
        object_kind="payment",
        local_key=str(item.payment_id),
        request_id=request.request_id,
        qbo_id=item.payment.export_reference,
        outcome=ExportAttempt.Outcome.ERROR if error else ExportAttempt.Outcome.OK,
        error_code=(error.qbo_code or error.code) if error else "",
        message=error.message if error else "",
    )
