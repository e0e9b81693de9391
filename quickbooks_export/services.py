"""Export orchestration: put each exportable payment, with its customer, items and invoice, into QuickBooks once.

How exactly-once holds, whatever fails:
- Starting an export only records intent: an ExportBatch, one ExportBatchItem per payment, and the payment's export
  status QUEUED (a compare-and-set, so two clicks, two batches or an API call and a page at once queue a payment once).
  The work is a django-q2 task enqueued on commit.
- One runner per company at a time (ExportRunnerLease). The runner drains every pending item of the company, thirty
  payments at a time: it claims them (QUEUED -> EXPORTING), makes sure customer, items and invoices exist, then posts
  the payments. A task delivered twice, or a second worker, finds the lease taken and leaves.
- Every object is looked up in the mapping table before anything is created; those it does not hold are looked up in
  QuickBooks a batch at a time (lookups.py: Intuit meters reads). Every create is first written to the
  outbox (QuickBooksRequest: request id + body) and committed, then sent. A timeout, a 5xx, a dropped connection or a
  killed worker leaves the outbox row PENDING; it is only ever re-sent unchanged, with the same request id, so
  QuickBooks answers with what it did the first time instead of doing it again.
- A worker that dies mid-chunk leaves its payments EXPORTING with their items pending and its lease expiring; the next
  runner takes the lease, replays the outbox and carries on. Nothing is lost and nothing stays EXPORTING.
- Throttling (429) and unavailability (5xx, network) are retried with backoff inside the run and, past that, the run
  hands over to a later task. A 401 refreshes the token once (client.py); a connection that needs reconnecting pauses
  the company's batches with a reason. A validation fault is permanent: the payment is FAILED with QuickBooks' code and
  words, and can be retried once fixed.
- Requests are paced by the company's shared budget (limiter.py) and creates travel in batches of 30.
- A pending create older than EXPORT_OUTBOX_LOOKUP_AFTER_SECONDS is never re-sent blindly (QuickBooks does not say
  how long it remembers a request id): its objects are looked up by FieldSync's markers and adopted if found. Request
  ids carry this installation's random id and a digest of the content. Outbox and mapping writes happen only under
  the runner's live lease. A replayed request that cannot be recorded is closed with its reason, never retried
  forever.
- Refunds (docs/refunds.md): the fully-paid rule is checked again inside the claim, under the payments' and
  invoices' row locks. A refund recorded before the claim is netted out of what is posted; one recorded after it
  (the payment EXPORTING) is handed to a person and the payment is posted as claimed, never both. If the claim ends
  without the payment in QuickBooks, billing takes the hand-over back (the refund is netted, the item closes
  itself, with the reason).

- An invoice with nothing to pay ($0.00, no payment) goes on its own (an item with `invoice` instead of `payment`):
  after the company's pending payments, through the same customer, item and invoice steps, its QuickBooks TotalAmt
  checked to be 0.00. Its claim is the runner's lease plus the mapping (docs/invoices_with_nothing_to_pay.md).

QuickBooks is never called inside a database transaction, and no row lock is held across a call.
"""

import logging
import os
import socket
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from billing import selectors as billing_selectors
from billing import services as billing_services
from billing.models import BusinessUnit, Customer, Invoice, Payment, PaymentApplication
from billing.money import format_money
from fieldsync.exceptions import ApplicationError
from fieldsync.observability import get_request_id

from . import company, invoice_checks, limiter, mappers, tracking
from . import selectors as export_selectors
from .client import QUERY_PAGE_SIZE, QuickBooksClient, error_from_fault
from .errors import (
    QuickBooksAuthorizationError,
    QuickBooksDuplicateNameError,
    QuickBooksError,
    QuickBooksNotConnectedError,
    QuickBooksObjectNotFoundError,
    QuickBooksThrottledError,
)
from .lookups import LOOKAHEAD_PAYMENTS, LookupCache
from .models import (
    ExportAttempt,
    ExportBatch,
    ExportBatchItem,
    ExportRunnerLease,
    Installation,
    InvoiceExportHold,
    QuickBooksConnection,
    QuickBooksMapping,
    QuickBooksMappingSettings,
    QuickBooksRequest,
    QuickBooksTaxCodeMapping,
)

logger = logging.getLogger(__name__)

ExportStatus = Payment.ExportStatus
Outcome = ExportBatchItem.Outcome
Kind = QuickBooksMapping.Kind

REFUND_RECORDING_KIND = "refund"  # QuickBooksRequest.kind of "Record it in QuickBooks for me" (refund_recording.py)
UNDO_KIND = "undo"  # QuickBooksRequest.kind of the voids of an undone export (undo.py)
UPDATE_KIND = "update"  # QuickBooksRequest.kind of sparse updates after export (updates.py)
VOID_KIND = "void"  # QuickBooksRequest.kind of voids of invoices voided in FieldSync (voids.py)
CHUNK_SIZE = 30  # payments claimed at a time; also QuickBooks' batch size
BATCH_SIZE = 30
# Waits between attempts of one request that QuickBooks throttled or could not answer, within one run.
RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0, 15.0)

# Statuses from which a payment may be queued for export.
QUEUEABLE = (ExportStatus.NOT_EXPORTED, ExportStatus.FAILED)
IN_QUICKBOOKS = (ExportStatus.EXPORTED, ExportStatus.EXPORTED_MANUALLY, ExportStatus.IN_QUICKBOOKS)


# --- Starting exports ---------------------------------------------------------------------------------------------


def _current_connection(business_unit_id: int) -> QuickBooksConnection:
    """The connection of the unit whose payments are exported: each unit exports to its own company."""
    connection = QuickBooksConnection.objects.filter(is_current=True, business_unit_id=business_unit_id).first()
    if connection is None:
        raise QuickBooksNotConnectedError(
            "QuickBooks is not connected. Connect a company on the QuickBooks page before exporting."
        )
    return connection


def _requested_by(user, api_client) -> str:
    if api_client is not None:
        return f"API client {api_client.name}"
    if user is not None:
        return user.get_full_name() or user.get_username()
    return ""


def _ids_of(payments: "QuerySet[Payment] | Iterable[int]") -> list[int]:
    if isinstance(payments, QuerySet):
        return list(payments.order_by().values_list("pk", flat=True))
    return sorted({int(pk) for pk in payments})


@transaction.atomic
def export_batch_start(
    *,
    payments: "QuerySet[Payment] | Iterable[int]" = (),
    invoices: "QuerySet[Invoice] | Iterable[int]" = (),
    selection: str,
    user=None,
    api_client=None,
    source: str = ExportBatch.Source.PAGE,
) -> ExportBatch:
    """Ask for payments, and invoices with nothing to pay, to be exported. Returns at once; the work runs in the
    background.

    Each selected payment, and every payment sharing an invoice with it (an invoice goes to QuickBooks with all its
    payments), gets an item in the batch: held payments are SKIPPED with their reason, payments already in QuickBooks
    are LINKED, the rest are queued. Each selected invoice (a $0.00 invoice with no payment: it goes on its own,
    invoice-only) gets a pending item; one that has something to pay, or payments, is refused with the reason and
    nothing is queued. The batch goes to the QuickBooks company of the business unit of its payments and invoices.
    Raises QuickBooksNotConnectedError when that unit has no company connected, and ApplicationError for an empty
    selection, an unknown id, an invoice that cannot go on its own or records of several units.
    """
    selected = _ids_of(payments)
    invoice_ids = _ids_of(invoices)
    if not selected and not invoice_ids:
        raise ApplicationError("Select at least one payment to export.", code="empty_selection")
    invoice_units = _refuse_invoices_not_alone(invoice_ids)
    known: dict[int, int] = {}
    for start in range(0, len(selected), 2000):
        known.update(
            Payment.objects.filter(pk__in=selected[start : start + 2000]).values_list("pk", "business_unit_id")
        )
    if missing := [pk for pk in selected if pk not in known]:
        raise ApplicationError(
            f"No payment with id {', '.join(map(str, missing[:10]))}.",
            code="unknown_payment",
            extra={"missing": missing},
        )
    if len(units := set(known.values()) | set(invoice_units.values())) > 1:
        raise ApplicationError(
            "These payments or invoices belong to several business units, each with its own QuickBooks company; "
            "export one unit's at a time.",
            code="several_business_units",
        )
    connection = _current_connection(units.pop())

    all_ids = billing_selectors.payment_ids_with_invoice_partners(payment_ids=selected)
    readiness = billing_selectors.payment_export_readiness_map(payment_ids=all_ids)
    statuses: dict[int, str] = {}
    for start in range(0, len(all_ids), 2000):
        statuses.update(Payment.objects.filter(pk__in=all_ids[start : start + 2000]).values_list("pk", "export_status"))

    hold_reasons = _open_hold_reasons(connection.realm_id, all_ids, statuses)
    batch = ExportBatch.objects.create(
        created_by=user,
        requested_by=_requested_by(user, api_client),
        source=source,
        selection=selection[:300],
        realm_id=connection.realm_id,
        waiting_reason="QuickBooks needs reconnecting." if connection.needs_reconnect else "",
    )
    selected_set = set(selected)
    items, to_queue = [], []
    for pk in all_ids:
        status, ready = statuses[pk], readiness[pk]
        item = ExportBatchItem(batch=batch, payment_id=pk, added_with_invoice=pk not in selected_set)
        if status in IN_QUICKBOOKS:
            item.outcome, item.message = Outcome.LINKED, "Already in QuickBooks."
        elif status == ExportStatus.EXCLUDED:
            item.outcome, item.message = Outcome.SKIPPED, "Marked “do not export”."
        elif status == ExportStatus.ON_HOLD:
            item.outcome, item.message = Outcome.HELD, hold_reasons.get(pk, "On hold.")
        elif not ready.exportable:
            item.outcome, item.message = Outcome.SKIPPED, ready.held_reason
        elif status in QUEUEABLE:
            to_queue.append(pk)
        # QUEUED or EXPORTING: another batch has it; the runner reports the result here too.
        items.append(item)
    # An invoice exported on its own is claimed by the company's runner (one at a time, under its lease) and created
    # only when the mapping has none: two batches asking for it at once get one QuickBooks invoice (_export_invoices).
    items += [ExportBatchItem(batch=batch, invoice_id=pk) for pk in invoice_ids]
    ExportBatchItem.objects.bulk_create(items, batch_size=2000)
    billing_services.payment_export_status_bulk_transition(
        payment_ids=to_queue,
        to_status=ExportStatus.QUEUED,
        expected_from=QUEUEABLE,
        note=f"Export #{batch.pk}",
        user=user,
    )
    if not ExportBatchItem.objects.filter(batch=batch, outcome=Outcome.PENDING).exists():
        batch.status, batch.finished_at = ExportBatch.Status.FINISHED, timezone.now()
        batch.save(update_fields=["status", "finished_at"])
    else:
        _enqueue_run(batch.realm_id)
    return batch


def _refuse_invoices_not_alone(invoice_ids: list[int]) -> dict[int, int]:
    """Refuse, before anything is written, an unknown invoice or one that cannot go to QuickBooks on its own.
    Returns invoice id -> its business unit's id."""
    if not invoice_ids:
        return {}
    known = dict(Invoice.objects.filter(pk__in=invoice_ids).values_list("pk", "business_unit_id"))
    if missing := [pk for pk in invoice_ids if pk not in known]:
        raise ApplicationError(
            f"No invoice with id {', '.join(map(str, missing[:10]))}.",
            code="unknown_invoice",
            extra={"missing": missing},
        )
    refusals = billing_selectors.invoice_only_export_refusals(invoice_ids=invoice_ids)
    if refusals:
        first = refusals[min(refusals)]
        more = f" ({len(refusals) - 1} more selected invoices cannot go either.)" if len(refusals) > 1 else ""
        raise ApplicationError(
            f"{first}{more}",
            code="invoice_has_something_to_pay",
            extra={"refusals": {str(pk): message for pk, message in refusals.items()}},
        )
    return known


def _open_hold_reasons(realm_id: str, payment_ids: list[int], statuses: dict[int, str]) -> dict[int, str]:
    """payment id -> the reason of the open hold on one of its invoices, for on-hold payments (one query)."""
    on_hold = [pk for pk in payment_ids if statuses.get(pk) == ExportStatus.ON_HOLD]
    if not on_hold:
        return {}
    reasons: dict[int, str] = {}
    rows = InvoiceExportHold.objects.filter(
        realm_id=realm_id, state=InvoiceExportHold.State.OPEN, invoice__applications__payment_id__in=on_hold
    ).values_list("invoice__applications__payment_id", "message")
    for payment_id, message in rows:
        reasons.setdefault(payment_id, f"On hold: {message}")
    return reasons


def export_payment_start(*, payment_id: int, user=None, api_client=None, source=ExportBatch.Source.PAGE) -> ExportBatch:
    """Export one payment (with the payments sharing its invoice)."""
    return export_batch_start(
        payments=[payment_id], selection=f"payment #{payment_id}", user=user, api_client=api_client, source=source
    )


def export_invoice_start(*, invoice_id: int, user=None, api_client=None, source=ExportBatch.Source.PAGE) -> ExportBatch:
    """Export one invoice with nothing to pay ($0.00, no payment) on its own: customer, items, the invoice."""
    number = Invoice.objects.filter(pk=invoice_id).values_list("number", flat=True).first()
    return export_batch_start(
        invoices=[invoice_id],
        selection=f"invoice {number or f'#{invoice_id}'} (nothing to pay)",
        user=user,
        api_client=api_client,
        source=source,
    )


def export_all_exportable_start(
    *, user=None, api_client=None, source=ExportBatch.Source.PAGE, business_unit: BusinessUnit | None = None
) -> ExportBatch:
    """Every payment of `business_unit` (default: the only unit) the fully-paid rule lets go, and every invoice of it
    with nothing to pay not in its QuickBooks company yet."""
    unit = business_unit or billing_services.business_unit_default()
    candidates = billing_selectors.payment_filter_exportable(
        Payment.objects.filter(export_status__in=QUEUEABLE, business_unit=unit)
    )
    connection = _current_connection(unit.pk)
    invoices = export_selectors.invoices_to_export_alone(realm_id=connection.realm_id)
    return export_batch_start(
        payments=candidates,
        invoices=invoices,
        selection="everything exportable",
        user=user,
        api_client=api_client,
        source=source,
    )


def export_batch_retry_failed(*, batch_id: int, user=None, api_client=None) -> ExportBatch:
    """Queue again every payment of a batch that failed and has not been exported since, and every invoice with
    nothing to pay that failed there and is not in QuickBooks yet."""
    failed = Payment.objects.filter(
        export_items__batch_id=batch_id, export_items__outcome=Outcome.FAILED, export_status=ExportStatus.FAILED
    )
    batch = ExportBatch.objects.get(pk=batch_id)
    failed_invoices = export_selectors.invoices_to_export_alone(realm_id=batch.realm_id).filter(
        export_items__batch_id=batch_id, export_items__outcome=Outcome.FAILED
    )
    if not failed.exists() and not failed_invoices.exists():
        raise ApplicationError(f"Export #{batch_id} has no failed payments left to retry.", code="nothing_to_retry")
    return export_batch_start(
        payments=failed,
        invoices=failed_invoices,
        selection=f"retry of the failed payments of Export #{batch_id}",
        user=user,
        api_client=api_client,
        source=ExportBatch.Source.RETRY,
    )


def export_payment_retry(*, payment_id: int, user=None, api_client=None) -> ExportBatch:
    payment = Payment.objects.get(pk=payment_id)
    if payment.export_status != ExportStatus.FAILED:
        raise ApplicationError(
            f"Payment #{payment_id} is {payment.get_export_status_display().lower()}, not failed.", code="not_failed"
        )
    return export_batch_start(
        payments=[payment_id],
        selection=f"retry of payment #{payment_id}",
        user=user,
        api_client=api_client,
        source=ExportBatch.Source.RETRY,
    )


def payment_mark_exported_manually(*, payment_id: int, user, note: str = "") -> Payment:
    """For a payment someone already keyed into QuickBooks: it will never be exported by FieldSync."""
    return billing_services.payment_export_status_transition(
        payment_id=payment_id,
        to_status=ExportStatus.EXPORTED_MANUALLY,
        note=note or "Marked as exported by hand",
        user=user,
    )


def payment_exclude(*, payment_id: int, user, note: str = "") -> Payment:
    return billing_services.payment_export_status_transition(
        payment_id=payment_id, to_status=ExportStatus.EXCLUDED, note=note or "Marked “do not export”", user=user
    )


def payment_include(*, payment_id: int, user) -> Payment:
    return billing_services.payment_export_status_transition(
        payment_id=payment_id, to_status=ExportStatus.NOT_EXPORTED, note="Export allowed again", user=user
    )


def _enqueue_run(realm_id: str, *, delay: float = 0.0) -> None:
    """Start (or nudge) the company's runner once the current transaction commits."""
    from .tasks import enqueue_export_run

    request_id = get_request_id()  # now: the commit may come after the request's context is gone
    transaction.on_commit(lambda: enqueue_export_run(realm_id, delay=delay, request_id=request_id))


# --- The runner ---------------------------------------------------------------------------------------------------


class _LeaseLost(Exception):
    """Another runner took this company over (our lease expired): stop at once and touch nothing more."""


class _Backoff(Exception):
    """QuickBooks kept throttling or failing within this run: hand over to a later run."""

    def __init__(self, error: QuickBooksError, delay: float):
        super().__init__(error.message)
        self.error = error
        self.delay = delay


@dataclass
class _Run:
    realm_id: str
    client: QuickBooksClient
    holder: str
    deadline: float
    mapping_settings: QuickBooksMappingSettings
    sleep: Callable[[float], None] = time.sleep
    attempts: list[ExportAttempt] = field(default_factory=list)
    # payment id -> (error code, message) for payments that cannot be exported in this chunk
    failures: dict[int, tuple[str, str]] = field(default_factory=dict)
    # payment id -> (reason code, message) for payments held because QuickBooks' invoice cannot take them
    holds: dict[int, tuple[str, str]] = field(default_factory=dict)
    # payment id -> why it waits: it shares an invoice (maybe through split payments) with a payment held or failed,
    # so posting it would leave that invoice partly paid in QuickBooks. Goes back to "not exported", not posted.
    waiting: dict[int, str] = field(default_factory=dict)
    # payment id -> the number of the invoice whose check held it in this chunk (names it in the waiting reasons).
    held_by: dict[int, str] = field(default_factory=dict)
    # QuickBooks Id -> the Invoice as QuickBooks answered a create (or its replay) in this run, not yet paid against:
    # what the checks before posting payments use instead of reading it again.
    invoice_rows: dict[str, dict] = field(default_factory=dict)
    batch_by_payment: dict[int, int] = field(default_factory=dict)
    # Whose ids the steps below carry (failures, attempts): "payment", or "invoice" in a chunk of invoices exported on
    # their own (_export_invoices), whose batches are in batch_by_invoice.
    owner: str = "payment"
    batch_by_invoice: dict[int, int] = field(default_factory=dict)
    # Invoices with nothing to pay this run has worked on: each gets one go per run (what it left pending waits for
    # the next run instead of spinning).
    invoices_tried: set[int] = field(default_factory=set)
    requests_sent: int = 0
    # Payments of the next chunk whose customers and items may be looked up early (see _work_ahead).
    ahead: list[Payment] | None = None
    working_ahead: bool = False
    # This installation's random id, part of every request id (see models.Installation).
    installation_id: str = ""
    # A batch item QuickBooks could not process for now (5xx / 10000 in its Fault): retried later, never failed.
    transient: QuickBooksError | None = None
    # The company as read before this run (company.py); None when QuickBooks would not tell.
    profile: object = None
    # Our tax rate id -> QuickBooks TaxCode Id (QuickBooksTaxCodeMapping), read once per run.
    tax_codes: dict[int, str] | None = None
    # The QuickBooks class and location chosen per unit and per job type (tracking.py), read once per run.
    unit_tracking: tracking.TrackingChoices = field(default_factory=tracking.TrackingChoices)
    # Customers, items and invoices looked up by e-mail, name and number in batches (lookups.py), for this run.
    lookups: LookupCache = field(default_factory=LookupCache)


def export_run(*, realm_id: str, run_seconds: float | None = None, sleep: Callable[[float], None] = time.sleep) -> str:
    """Drain the company's pending export items for up to `run_seconds`. Returns what happened, in a word:
    "busy" (another runner holds the company), "drained", "continuing" (time is up; a follow-up is queued),
    "backoff" (QuickBooks is throttling or down; a follow-up is queued later) or "waiting" (needs a person)."""
    run_seconds = settings.EXPORT_RUN_SECONDS if run_seconds is None else run_seconds
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    if not _lease_acquire(realm_id, holder):
        return "busy"
    result, delay = "drained", 0.0
    try:
        connection = QuickBooksConnection.objects.filter(is_current=True, realm_id=realm_id).first()
        if connection is None:
            _set_waiting(realm_id, "QuickBooks is no longer connected to this company; reconnect to export.")
            return "waiting"
        run = _Run(
            realm_id=realm_id,
            client=QuickBooksClient(connection),
            holder=holder,
            deadline=time.monotonic() + run_seconds,
            mapping_settings=QuickBooksMappingSettings.objects.prefetch_related("payment_methods")
            .filter(realm_id=realm_id)
            .first()
            or QuickBooksMappingSettings(realm_id=realm_id),
            sleep=sleep,
            installation_id=Installation.current_id(),
        )
        _replay_outbox(run)
        run.profile = _company_profile(run)
        company.company_currency_check(run.profile)
        run.unit_tracking = tracking.tracking_choices_for_realm(realm_id=realm_id)
        while True:
            if time.monotonic() >= run.deadline:
                result = "continuing"
                break
            if payment_ids := _next_payment_ids(realm_id):
                _export_chunk(run, payment_ids)
            elif invoice_ids := _next_invoice_ids(realm_id, skip=run.invoices_tried):
                _export_invoices(run, invoice_ids)
            else:
                break
        _set_waiting(realm_id, "")
    except QuickBooksAuthorizationError as exc:
        _set_waiting(realm_id, f"Paused: {exc.message}")
        result = "waiting"
    except QuickBooksNotConnectedError as exc:
        _set_waiting(realm_id, f"Paused: {exc.message}")
        result = "waiting"
    except (company.CurrencyMismatch, company.CompanyUnreadable) as exc:
        _set_waiting(realm_id, f"Refused: {exc.message}")
        result = "waiting"
    except _Backoff as exc:
        _set_waiting(realm_id, f"QuickBooks is busy; trying again in {exc.delay:.0f} s. ({exc.error.message})")
        result, delay = "backoff", exc.delay
    except _LeaseLost:
        logger.warning("Export runner %s lost company %s to another runner; stopping", holder, realm_id)
        return "lease_lost"
    finally:
        _lease_release(realm_id, holder)
        _finish_batches(realm_id)
    if result in ("continuing", "backoff") or (result == "drained" and _has_pending(realm_id)):
        from .tasks import enqueue_export_run

        enqueue_export_run(realm_id, delay=delay)
    return result


def _company_profile(run: _Run):
    """The company's profile, read again when older than a few minutes (three metered reads at most per run)."""
    try:
        return _call(run, lambda: company.company_profile_current(client=run.client))
    except QuickBooksError as exc:
        if exc.retryable or isinstance(exc, QuickBooksAuthorizationError):
            raise
        logger.warning("Could not read the company profile of %s: %s", run.realm_id, exc.message)
        # Never fail open: the currency check needs a profile. The one read before (however old) still says the
        # company's home currency; with none at all, nothing is sent.
        stored = company.company_profile_get(realm_id=run.realm_id)
        if stored is None:
            raise company.CompanyUnreadable(
                f"QuickBooks would not tell the company's settings (its home currency among them): {exc.message}. "
                "Nothing was sent. Read the company again on the QuickBooks page, or reconnect it."
            ) from None
        return stored


def _lease_acquire(realm_id: str, holder: str) -> bool:
    now = timezone.now()
    ExportRunnerLease.objects.get_or_create(realm_id=realm_id)
    taken = ExportRunnerLease.objects.filter(
        Q(expires_at__isnull=True) | Q(expires_at__lt=now), realm_id=realm_id
    ).update(holder=holder, expires_at=now + timedelta(seconds=settings.EXPORT_LEASE_SECONDS))
    return bool(taken)


def _lease_renew(realm_id: str, holder: str) -> bool:
    return bool(
        ExportRunnerLease.objects.filter(realm_id=realm_id, holder=holder).update(
            expires_at=timezone.now() + timedelta(seconds=settings.EXPORT_LEASE_SECONDS)
        )
    )


def _hold_lease(run: "_Run") -> None:
    """Called inside the transaction of every outbox and mapping write: only the runner whose lease is still live may
    write. A runner that stalled past its lease (its successor may have exported the same payments meanwhile) writes
    nothing and stops, so it can never leave a pending create, or a mapping, for work another runner did."""
    held = (
        ExportRunnerLease.objects.select_for_update()
        .filter(realm_id=run.realm_id, holder=run.holder, expires_at__gt=timezone.now())
        .exists()
    )
    if not held:
        raise _LeaseLost


def _lease_release(realm_id: str, holder: str) -> None:
    ExportRunnerLease.objects.filter(realm_id=realm_id, holder=holder).update(holder="", expires_at=None)


def _pending_items(realm_id: str):
    return ExportBatchItem.objects.filter(outcome=Outcome.PENDING, batch__realm_id=realm_id)


def _has_pending(realm_id: str) -> bool:
    return _pending_items(realm_id).exists()


def _next_payment_ids(realm_id: str, *, skip: set[int] = frozenset(), limit: int = CHUNK_SIZE) -> list[int]:
    """The next payments to work on: oldest batch first and, within it, grouped by customer. Grouping spreads the
    customers to find or create evenly over the chunks, so looking them up ahead fits in the waits for QuickBooks'
    batch budget (see _work_ahead) instead of piling up in the first chunks."""
    ids: list[int] = []
    pending = (
        _pending_items(realm_id)
        .filter(payment__isnull=False)
        .exclude(payment_id__in=skip)
        .order_by("batch_id", "payment__customer_id", "id")
    )
    for payment_id in pending.values_list("payment_id", flat=True)[: limit * 4]:
        if payment_id not in ids:
            ids.append(payment_id)
            if len(ids) == limit:
                break
    return ids


def _set_waiting(realm_id: str, reason: str) -> None:
    ExportBatch.objects.filter(realm_id=realm_id).exclude(status=ExportBatch.Status.FINISHED).exclude(
        waiting_reason=reason
    ).update(waiting_reason=reason[:300])


def _finish_batches(realm_id: str) -> None:
    open_batches = ExportBatch.objects.filter(realm_id=realm_id).exclude(status=ExportBatch.Status.FINISHED)
    open_batches.exclude(items__outcome=Outcome.PENDING).update(
        status=ExportBatch.Status.FINISHED, finished_at=timezone.now(), waiting_reason=""
    )


def _resolve_items(
    payment_id: int | None,
    outcome: str,
    *,
    message: str = "",
    error_code: str = "",
    qbo_id: str = "",
    invoice_id: int | None = None,
):
    """Settle every pending item of a payment (or, with `invoice_id`, of an invoice exported on its own). The oldest
    batch gets the outcome; later batches that asked for the same one learn it was already being exported (so two
    overlapping batches never count it twice)."""
    subject = {"payment_id": payment_id} if invoice_id is None else {"invoice_id": invoice_id}
    pending = list(ExportBatchItem.objects.filter(**subject, outcome=Outcome.PENDING).order_by("id"))
    for index, item in enumerate(pending):
        item.outcome, item.message, item.error_code, item.qbo_id = outcome, message, error_code, qbo_id
        if index and outcome == Outcome.CREATED:
            item.outcome = Outcome.LINKED
            item.message = f"Sent to QuickBooks by Export #{pending[0].batch_id}."
    ExportBatchItem.objects.bulk_update(pending, ["outcome", "message", "error_code", "qbo_id", "updated_at"])


def _export_chunk(run: _Run, payment_ids: list[int]) -> None:
    statuses = dict(Payment.objects.filter(pk__in=payment_ids).values_list("pk", "export_status"))
    run.batch_by_payment = dict(
        _pending_items(run.realm_id)
        .filter(payment_id__in=payment_ids)
        .order_by("-id")
        .values_list("payment_id", "batch_id")
    )
    ExportBatch.objects.filter(pk__in=set(run.batch_by_payment.values()), status=ExportBatch.Status.QUEUED).update(
        status=ExportBatch.Status.RUNNING, started_at=timezone.now()
    )
    for payment_id, status in statuses.items():
        if status in IN_QUICKBOOKS:
            mapping = QuickBooksMapping.objects.filter(
                realm_id=run.realm_id, kind=Kind.PAYMENT, local_key=str(payment_id)
            ).first()
            _resolve_items(
                payment_id, Outcome.LINKED, message="Already in QuickBooks.", qbo_id=mapping.qbo_id if mapping else ""
            )
        elif status not in (ExportStatus.QUEUED, ExportStatus.EXPORTING):
            label = ExportStatus(status).label.lower()
            _resolve_items(payment_id, Outcome.SKIPPED, message=f"No longer queued: it is {label}.")

    # The rule may have changed since the payment was queued (a refund re-opened its invoice): check again, except
    # for payments QuickBooks already holds (a create replayed from the outbox): those are exported, whatever now.
    candidates = [pk for pk, status in statuses.items() if status in (ExportStatus.QUEUED, ExportStatus.EXPORTING)]
    in_quickbooks = {int(key) for key in _mapped(run, Kind.PAYMENT, [str(pk) for pk in candidates])}
    readiness = billing_selectors.payment_export_readiness_map(payment_ids=candidates)
    for payment_id in candidates:
        if payment_id not in in_quickbooks and not readiness[payment_id].exportable:
            if statuses[payment_id] == ExportStatus.EXPORTING:
                billing_services.payment_export_status_transition(
                    payment_id=payment_id, to_status=ExportStatus.QUEUED, note="Recovered a stale claim"
                )
            billing_services.payment_export_status_transition(
                payment_id=payment_id, to_status=ExportStatus.NOT_EXPORTED, note=readiness[payment_id].held_reason
            )
            _resolve_items(payment_id, Outcome.SKIPPED, message=readiness[payment_id].held_reason)
    ready = [pk for pk in candidates if pk in in_quickbooks or readiness[pk].exportable]
    ready = _skip_nothing_left(ready, in_quickbooks, statuses)
    # The claim: QUEUED -> EXPORTING. A payment left EXPORTING by a runner that died is ours now (we hold the lease).
    # The rule is checked again inside the claim, under the payments' and invoices' row locks (a refund recorded
    # since the check above is seen there); QuickBooks' own payments are claimed whatever the rule says now.
    claimed = billing_services.payment_export_claim(
        payment_ids=[pk for pk in ready if statuses[pk] == ExportStatus.QUEUED and pk not in in_quickbooks],
        note="Claimed by the export runner",
    )
    claimed += billing_services.payment_export_status_bulk_transition(
        payment_ids=[pk for pk in ready if statuses[pk] == ExportStatus.QUEUED and pk in in_quickbooks],
        to_status=ExportStatus.EXPORTING,
        expected_from=[ExportStatus.QUEUED],
        note="Claimed by the export runner (already in QuickBooks)",
    )
    claimed += [pk for pk in ready if statuses[pk] == ExportStatus.EXPORTING]
    if not claimed:
        return

    run.failures = {}
    run.holds = {}
    run.waiting = {}
    run.held_by = {}
    run.ahead = None
    run.transient = None
    payments = billing_selectors.payments_for_export(payment_ids=claimed)
    try:
        _look_up_in_batches(run, payments)
        customer_ids = _ensure_customers(run, payments)
        item_ids = _ensure_items(run, payments)
        invoice_ids = _ensure_invoices(run, payments, customer_ids, item_ids)
        _ensure_payments(run, payments, customer_ids, invoice_ids)
    except _LeaseLost:
        raise  # the payments belong to the runner that took over
    except (_Backoff, QuickBooksAuthorizationError, QuickBooksNotConnectedError):
        _settle_chunk(run, claimed, interrupted=True)
        raise
    except (QuickBooksError, ApplicationError) as exc:
        # A permanent refusal outside the per-object handling (a query QuickBooks rejects, a mapping conflict): fail
        # what is not in QuickBooks yet, with the reason, instead of retrying the same chunk forever.
        logger.warning("Export chunk for company %s failed: %s", run.realm_id, exc.message)
        _fail(run, claimed, exc, "Export")
    except Exception:
        _settle_chunk(run, claimed, interrupted=True)  # a bug or a crash: nothing is lost, the sweep runs it again
        raise
    _settle_chunk(run, claimed, interrupted=False)
    if run.transient is not None:
        # Like a 5xx on the whole request: hand over to a later run, which sends what is left again.
        raise _Backoff(run.transient, delay=RETRY_DELAYS[1])


NOTHING_LEFT = "Nothing left to post: refunds took back the whole payment, and QuickBooks has no $0 payment."


def _skip_nothing_left(ready: list[int], in_quickbooks: set[int], statuses: dict[int, str]) -> list[int]:
    """A payment whose amount left after refunds is zero is never posted (a $0 payment with no lines): it is marked
    "do not export" with the reason, so it is not queued again; a person can allow it again. One query."""
    if not ready:
        return ready
    rows = billing_selectors.payment_with_amounts(Payment.objects.filter(pk__in=ready)).values_list(
        "pk", "amount", "amount_refunded"
    )
    empty = [pk for pk, amount, refunded in rows if pk not in in_quickbooks and amount - refunded <= 0]
    for payment_id in empty:
        if statuses[payment_id] == ExportStatus.EXPORTING:
            billing_services.payment_export_status_transition(
                payment_id=payment_id, to_status=ExportStatus.QUEUED, note="Recovered a stale claim"
            )
        billing_services.payment_export_status_transition(
            payment_id=payment_id, to_status=ExportStatus.NOT_EXPORTED, note=NOTHING_LEFT
        )
        billing_services.payment_export_status_transition(
            payment_id=payment_id, to_status=ExportStatus.EXCLUDED, note=NOTHING_LEFT
        )
        _resolve_items(payment_id, Outcome.SKIPPED, message=NOTHING_LEFT)
    return [pk for pk in ready if pk not in set(empty)]


def _settle_chunk(run: _Run, claimed: list[int], *, interrupted: bool) -> None:
    """Record each claimed payment's outcome. Payments neither exported nor failed go back to QUEUED, items pending."""
    mappings = {
        int(m.local_key): m
        for m in QuickBooksMapping.objects.filter(
            realm_id=run.realm_id, kind=Kind.PAYMENT, local_key__in=[str(pk) for pk in claimed]
        )
    }
    in_flight = _payments_in_pending_requests(run.realm_id)
    for payment_id in claimed:
        with transaction.atomic():
            if payment_id in mappings:
                mapping = mappings[payment_id]
                billing_services.payment_export_status_transition(
                    payment_id=payment_id,
                    to_status=ExportStatus.EXPORTED,
                    export_reference=mapping.qbo_id,
                    note=f"QuickBooks payment {mapping.qbo_id}",
                )
                outcome = Outcome.LINKED if mapping.linked_existing else Outcome.CREATED
                _resolve_items(payment_id, outcome, qbo_id=mapping.qbo_id)
            elif payment_id in run.holds:
                code, message = run.holds[payment_id]
                billing_services.payment_export_status_transition(
                    payment_id=payment_id, to_status=ExportStatus.ON_HOLD, note=message
                )
                _resolve_items(payment_id, Outcome.HELD, message=message, error_code=code)
            elif payment_id in run.failures:
                code, message = run.failures[payment_id]
                billing_services.payment_export_status_transition(
                    payment_id=payment_id, to_status=ExportStatus.FAILED, note=message
                )
                _resolve_items(payment_id, Outcome.FAILED, message=message, error_code=code)
            elif payment_id in run.waiting:
                # Not posted, not held itself: back to "not exported" with the reason; when the payment it waits
                # for is released or retried, the export brings it along (payment_ids_with_invoice_partners).
                message = run.waiting[payment_id]
                billing_services.payment_export_status_transition(
                    payment_id=payment_id, to_status=ExportStatus.QUEUED, note=message
                )
                billing_services.payment_export_status_transition(
                    payment_id=payment_id, to_status=ExportStatus.NOT_EXPORTED, note=message
                )
                _resolve_items(payment_id, Outcome.SKIPPED, message=message, error_code="waiting_for_invoice")
            elif payment_id in in_flight:
                pass  # its create may have reached QuickBooks: it stays EXPORTING until the outbox is replayed
            else:
                billing_services.payment_export_status_transition(
                    payment_id=payment_id,
                    to_status=ExportStatus.QUEUED,
                    note="Waiting for QuickBooks" if interrupted else "Not finished in this run",
                )
    ExportAttempt.objects.bulk_create(run.attempts, batch_size=1000)
    run.attempts = []


def _payments_in_pending_requests(realm_id: str) -> set[int]:
    """Payments in an outbox batch not yet answered: QuickBooks may already hold them, so a refund must be flagged
    (billing treats EXPORTING as "may be in QuickBooks")."""
    ids: set[int] = set()
    for payload in QuickBooksRequest.objects.filter(
        realm_id=realm_id, state=QuickBooksRequest.State.PENDING, operation="batch"
    ).values_list("payload", flat=True):
        for item in payload["BatchItemRequest"]:
            kind, local_key = _parse_batch_item_id(item["bId"])
            if kind == Kind.PAYMENT:
                ids.add(int(local_key))
    return ids


# --- Talking to QuickBooks ----------------------------------------------------------------------------------------


def _attempt(run: _Run, owner_ids: Iterable[int], **fields) -> None:
    """Log a call for each payment it was made for (or, in a chunk of invoices exported on their own, each invoice)."""
    for owner_id in owner_ids:
        if run.owner == "invoice":
            attempt = ExportAttempt(invoice_id=owner_id, batch_id=run.batch_by_invoice.get(owner_id), **fields)
        else:
            attempt = ExportAttempt(payment_id=owner_id, batch_id=run.batch_by_payment.get(owner_id), **fields)
        run.attempts.append(attempt)


def _call(run: _Run, send: Callable[[], object], *, batch: bool = False):
    """Send one request within the company's budget, retrying throttling and outages with backoff.

    Raises _Backoff when QuickBooks keeps refusing within this run (the outbox keeps any create pending), and lets
    permanent and authorization errors through.
    """
    waited = False
    for delay in (*RETRY_DELAYS, None):
        # Every request is made under a live lease: a runner that stalled past it must not race its successor.
        if not _lease_renew(run.realm_id, run.holder):
            raise _LeaseLost
        # While a batch waits for the company's batch budget, look up the next payments' customers and items.
        limiter.acquire(run.realm_id, batch=batch, while_waiting=(lambda: _work_ahead(run)) if batch else None)
        run.requests_sent += 1
        try:
            answer = send()
            if waited:
                _set_waiting(run.realm_id, "")
            return answer
        except QuickBooksError as exc:
            if not exc.retryable:
                raise
            wait = RETRY_DELAYS[-1] if delay is None else delay
            if isinstance(exc, QuickBooksThrottledError):
                wait = max(wait, min(exc.retry_after, settings.EXPORT_MAX_RETRY_AFTER_SECONDS))
            if delay is None or time.monotonic() + wait > run.deadline:
                raise _Backoff(exc, delay=wait) from exc
            logger.info("QuickBooks answered %s; retrying in %.1f s", exc.code, wait)
            # Said on the batch's page from the first wait, not only once this run gives up (30 s later).
            _set_waiting(run.realm_id, f"QuickBooks is busy; trying again in {wait:.0f} s. ({exc.message})")
            waited = True
            run.sleep(wait)
    raise AssertionError("unreachable")


def _record_mapping(run: _Run, kind: str, local_key: str, obj: dict, *, linked: bool) -> QuickBooksMapping:
    name = obj.get("DisplayName") or obj.get("Name") or obj.get("DocNumber") or ""
    try:
        with transaction.atomic():
            _hold_lease(run)
            mapping, _ = QuickBooksMapping.objects.update_or_create(
                realm_id=run.realm_id,
                kind=kind,
                local_key=local_key,
                defaults={
                    "qbo_id": str(obj["Id"]),
                    "sync_token": str(obj.get("SyncToken", "")),
                    "qbo_name": name,
                    "linked_existing": linked,
                },
            )
    except IntegrityError:
        # Another of our objects already maps to this QuickBooks object: keep the first link, never merge silently.
        raise ApplicationError(
            f"QuickBooks {kind} {obj['Id']} is already linked to another FieldSync {kind}.", code="mapping_conflict"
        ) from None
    return mapping


def _record_mappings(run: _Run, rows: list[tuple[str, str, dict]]) -> None:
    """Record the mappings of the objects one batch created, (kind, local key, QuickBooks object) each, in one
    statement: what _record_mapping does for each (an upsert on the object, refused if the QuickBooks object is
    already another's), without its three to nine statements per object."""
    if not rows:
        return
    mappings = [
        QuickBooksMapping(
            realm_id=run.realm_id,
            kind=kind,
            local_key=local_key,
            qbo_id=str(obj["Id"]),
            sync_token=str(obj.get("SyncToken", "")),
            qbo_name=obj.get("DisplayName") or obj.get("Name") or obj.get("DocNumber") or "",
            linked_existing=False,
        )
        for kind, local_key, obj in rows
    ]
    try:
        with transaction.atomic():
            _hold_lease(run)
            QuickBooksMapping.objects.bulk_create(
                mappings,
                update_conflicts=True,
                unique_fields=["realm_id", "kind", "local_key"],
                update_fields=["qbo_id", "sync_token", "qbo_name", "linked_existing", "updated_at"],
            )
    except IntegrityError:
        # Another of our objects already maps to one of these QuickBooks objects: keep the first link, as
        # _record_mapping does; the caller's transaction (the outbox answer) rolls back with it.
        taken = [
            f"{kind} {obj['Id']}"
            for kind, _, obj in rows
            if QuickBooksMapping.objects.filter(realm_id=run.realm_id, kind=kind, qbo_id=str(obj["Id"])).exists()
        ]
        raise ApplicationError(
            f"QuickBooks {', '.join(taken) or 'objects'} already linked to other FieldSync records.",
            code="mapping_conflict",
        ) from None


def _outbox_request(run: _Run, *, operation: str, kind: str, local_key: str, payload: dict) -> QuickBooksRequest:
    """The request to send for this object: a pending one is re-sent unchanged; otherwise a new one is written."""
    pending = QuickBooksRequest.objects.filter(
        realm_id=run.realm_id, kind=kind, local_key=local_key, state=QuickBooksRequest.State.PENDING
    ).first()
    if pending is not None:
        return pending
    generation = QuickBooksRequest.objects.filter(realm_id=run.realm_id, kind=kind, local_key=local_key).count()
    with transaction.atomic():
        _hold_lease(run)
        return QuickBooksRequest.objects.create(
            realm_id=run.realm_id,
            request_id=mappers.request_id_for(
                run.installation_id, run.realm_id, kind, local_key, generation, mappers.payload_digest(payload)
            ),
            operation=operation,
            kind=kind,
            local_key=local_key,
            payload=payload,
        )


def _finish_request(
    run: _Run, request: QuickBooksRequest, *, response=None, error: QuickBooksError | None = None
) -> None:
    """Record a request's answer; under the run's live lease (see _hold_lease)."""
    with transaction.atomic():
        _hold_lease(run)
        request.attempts += 1
        request.completed_at = timezone.now()
        if error is None:
            request.state, request.response = QuickBooksRequest.State.DONE, response
        else:
            request.state, request.last_error = QuickBooksRequest.State.FAILED, f"{error.code}: {error.message}"
        request.save(update_fields=["attempts", "completed_at", "state", "response", "last_error"])


def _create_one(
    run: _Run, *, entity: str, kind: str, local_key: str, payload: dict, payment_ids: list[int]
) -> QuickBooksMapping:
    """Create one object exactly once (outbox + request id) and return its mapping. Raises QuickBooksError on a
    permanent refusal. The outbox row turns DONE in the same transaction that records the mapping, so no crash can
    leave an object created in QuickBooks that FieldSync neither maps nor will replay."""
    request = _outbox_request(run, operation=entity, kind=kind, local_key=local_key, payload=payload)
    try:
        obj = _call(run, lambda: run.client.create(entity, request.payload, request_id=request.request_id))
    except QuickBooksError as exc:
        if not exc.retryable and not isinstance(exc, QuickBooksAuthorizationError):
            _finish_request(run, request, error=exc)
            _attempt(
                run,
                payment_ids,
                operation=f"create {entity}",
                object_kind=kind,
                local_key=local_key,
                request_id=request.request_id,
                outcome=ExportAttempt.Outcome.ERROR,
                error_code=exc.qbo_code or exc.code,
                message=exc.message,
            )
        raise
    with transaction.atomic():
        _finish_request(run, request, response=obj)
        mapping = _record_mapping(run, kind, local_key, obj, linked=False)
    _attempt(
        run,
        payment_ids,
        operation=f"create {entity}",
        object_kind=kind,
        local_key=local_key,
        request_id=request.request_id,
        qbo_id=mapping.qbo_id,
        outcome=ExportAttempt.Outcome.OK,
    )
    return mapping


def _batch_item_error(item: dict) -> QuickBooksError:
    errors = [
        {
            "code": str(error.get("code", "")),
            "message": error.get("Message", "") or error.get("message", ""),
            "detail": error.get("Detail", "") or error.get("detail", ""),
            "element": error.get("element", ""),
        }
        for error in (item.get("Fault") or {}).get("Error", [])
    ]
    # A system failure inside one item (10000, or a 5xx code) is QuickBooks failing for now, not a refusal: it is
    # mapped like the same failure of a whole request (retryable), never recorded as a permanent failure.
    transient = any(str(e["code"]) == "10000" or str(e["code"]).startswith("5") for e in errors)
    return error_from_fault(errors, http_status=503 if transient else 400)


def _create_many(
    run: _Run, *, entity: str, kind: str, entries: list[tuple[str, dict]]
) -> dict[str, dict | QuickBooksError]:
    """Create objects in batches of 30 through the outbox. Returns local key -> QuickBooks object or its error.

    A pending batch is always re-sent whole and unchanged (same request id), so a lost answer never creates twice.
    """
    results: dict[str, dict | QuickBooksError] = {}
    for start in range(0, len(entries), BATCH_SIZE):
        chunk = entries[start : start + BATCH_SIZE]
        bids = [_batch_item_id(kind, local_key) for local_key, _ in chunk]
        request = _batch_request(
            run,
            bids,
            [
                {"bId": bid, "operation": "create", entity: payload}
                for bid, (_, payload) in zip(bids, chunk, strict=True)
            ],
        )
        results.update(_send_batch(run, request))
    return results


# Intuit: with a requestid on the batch, each bId may hold only 10 characters. Ours: one letter + our primary key.
_BID_PREFIX = {Kind.INVOICE: "i", Kind.PAYMENT: "p"}
_BID_KIND = {prefix: kind for kind, prefix in _BID_PREFIX.items()}


def _batch_item_id(kind: str, local_key: str) -> str:
    bid = _BID_PREFIX[kind] + local_key
    if len(bid) > 10:
        raise ValueError(f"batch item id {bid} is longer than QuickBooks allows")
    return bid


def _parse_batch_item_id(bid: str) -> tuple[str, str]:
    return _BID_KIND[bid[0]], bid[1:]


def _batch_request(run: _Run, bids: list[str], items: list[dict]) -> QuickBooksRequest:
    generation = 0
    while True:
        request_id = mappers.request_id_for(
            run.installation_id, run.realm_id, "batch", generation, mappers.payload_digest(items), *bids
        )
        existing = QuickBooksRequest.objects.filter(request_id=request_id).first()
        if existing is None:
            with transaction.atomic():
                _hold_lease(run)
                return QuickBooksRequest.objects.create(
                    realm_id=run.realm_id,
                    request_id=request_id,
                    operation="batch",
                    payload={"BatchItemRequest": items},
                )
        if existing.state == QuickBooksRequest.State.PENDING:
            return existing
        generation += 1


def _send_batch(run: _Run, request: QuickBooksRequest) -> dict[str, dict | QuickBooksError]:
    """Send (or re-send) a batch from the outbox; returns local key -> created object or the item's error.

    The outbox row turns DONE in the same transaction that maps every object QuickBooks created, so a crash can never
    leave a created object unmapped and not to be replayed (which would post it again under a new request id). A
    permanent refusal of the whole batch fails each of its items and closes the row: it must not block the outbox.
    """
    items = request.payload["BatchItemRequest"]
    try:
        answers = _call(run, lambda: run.client.batch(items, request_id=request.request_id), batch=True)
    except QuickBooksError as exc:
        if exc.retryable or isinstance(exc, QuickBooksAuthorizationError):
            raise
        _finish_request(run, request, error=exc)
        return {_parse_batch_item_id(item["bId"])[1]: exc for item in items}
    results: dict[str, dict | QuickBooksError] = {}
    created: list[tuple[str, str, dict]] = []
    entities: list[str] = []
    with transaction.atomic():
        _finish_request(run, request, response=answers)
        for answer in answers:
            kind, local_key = _parse_batch_item_id(answer["bId"])
            if "Fault" in answer:
                results[local_key] = _batch_item_error(answer)
            else:
                entity = next(key for key in answer if key != "bId")
                results[local_key] = answer[entity]
                created.append((kind, local_key, answer[entity]))
                entities.append(entity)
        _record_mappings(run, created)
    for entity, (_, _, obj) in zip(entities, created, strict=True):
        _remember_answer(run, entity, obj)
    return results


def _replay_outbox(run: _Run) -> None:
    """Before any new work: settle every request a previous run wrote but did not see answered. A recent one is
    re-sent unchanged (same request id: QuickBooks answers with what it did the first time). One older than
    EXPORT_OUTBOX_LOOKUP_AFTER_SECONDS is never re-sent blindly, since QuickBooks may have forgotten its request id:
    each object is looked up by FieldSync's own marker and adopted if found (see _adopt_or_release). A request whose
    answer cannot be recorded (a permanent error) is closed with the reason and its payments fail: it never blocks
    the company's later exports. Afterwards no create of this company is in doubt."""
    pending = QuickBooksRequest.objects.filter(realm_id=run.realm_id, state=QuickBooksRequest.State.PENDING).exclude(
        # re-sent by their own click (refund_recording.py) or task (undo.py, updates.py), never by the runner
        kind__in=(REFUND_RECORDING_KIND, UNDO_KIND, UPDATE_KIND, VOID_KIND)
    )
    stale_before = timezone.now() - timedelta(seconds=settings.EXPORT_OUTBOX_LOOKUP_AFTER_SECONDS)
    for request in pending.order_by("id"):
        try:
            if request.created_at < stale_before:
                _adopt_or_release(run, request)
            elif request.operation == "batch":
                _send_batch(run, request)
            else:
                _replay_one(run, request)
        except ApplicationError as exc:
            if isinstance(exc, QuickBooksError) and (exc.retryable or isinstance(exc, QuickBooksAuthorizationError)):
                raise
            _replay_failed(run, request, exc)


def _replay_one(run: _Run, request: QuickBooksRequest) -> None:
    try:
        obj = _call(run, lambda r=request: run.client.create(r.operation, r.payload, request_id=r.request_id))
    except QuickBooksError as exc:
        if exc.retryable or isinstance(exc, QuickBooksAuthorizationError):
            raise
        _finish_request(run, request, error=exc)
        return
    with transaction.atomic():
        _finish_request(run, request, response=obj)
        _record_mapping(run, request.kind, request.local_key, obj, linked=False)
    _remember_answer(run, request.operation, obj)


def _request_objects(request: QuickBooksRequest) -> list[tuple[str, str, str, dict]]:
    """(mapping kind, local key, entity, payload) of each create a request carries."""
    if request.operation != "batch":
        return [(request.kind, request.local_key, request.operation, request.payload)]
    result = []
    for item in request.payload["BatchItemRequest"]:
        kind, local_key = _parse_batch_item_id(item["bId"])
        entity = next(key for key in item if key not in ("bId", "operation"))
        result.append((kind, local_key, entity, item[entity]))
    return result


def _payment_ids_of(request: QuickBooksRequest) -> list[int]:
    return [int(key) for kind, key, _, _ in _request_objects(request) if kind == Kind.PAYMENT]


def _replay_failed(run: _Run, request: QuickBooksRequest, error: ApplicationError) -> None:
    """Close a request whose answer cannot be recorded, and fail its payments with the reason (a person looks)."""
    logger.warning("Outbox request %s of company %s closed: %s", request.request_id, run.realm_id, error.message)
    with transaction.atomic():
        _hold_lease(run)
        request.state, request.completed_at = QuickBooksRequest.State.FAILED, timezone.now()
        request.last_error = f"{error.code}: {error.message}"
        request.save(update_fields=["state", "completed_at", "last_error"])
    message = f"QuickBooks answered, but FieldSync could not record it: {error.message}"
    for payment_id in _payment_ids_of(request):
        with transaction.atomic():
            try:
                billing_services.payment_export_status_transition(
                    payment_id=payment_id,
                    to_status=ExportStatus.FAILED,
                    expected_from=[ExportStatus.EXPORTING],
                    note=message,
                )
            except billing_services.IllegalExportTransition:
                continue
            _resolve_items(payment_id, Outcome.FAILED, message=message, error_code=getattr(error, "code", ""))


def _find_by_marker(run: _Run, kind: str, local_key: str, payload: dict) -> dict | None:
    """The object a create made, found in QuickBooks by what FieldSync wrote into it, or None."""
    if kind == Kind.PAYMENT:
        customer = (payload.get("CustomerRef") or {}).get("value", "")
        where = f"CustomerRef = {mappers.quote(str(customer))} AND TxnDate = {mappers.quote(payload['TxnDate'])}"
        rows = _call(run, lambda: run.client.query(f"SELECT * FROM Payment WHERE {where}"))
        rows = [row for row in rows if mappers.has_payment_marker(row, local_key)]
    elif kind == Kind.INVOICE:
        if payload.get("DocNumber"):
            where = f"DocNumber = {mappers.quote(payload['DocNumber'])}"
        else:
            # Custom transaction numbers off: QuickBooks numbered it; our number is only in its PrivateNote, which
            # QuickBooks' query language cannot filter on, so narrow by customer (and date) and compare the note.
            customer = (payload.get("CustomerRef") or {}).get("value", "")
            where = f"CustomerRef = {mappers.quote(str(customer))}"
            if payload.get("TxnDate"):
                where += f" AND TxnDate = {mappers.quote(payload['TxnDate'])}"
        rows = _call(run, lambda: run.client.query(f"SELECT * FROM Invoice WHERE {where}"))
        rows = [row for row in rows if row.get("PrivateNote") == payload.get("PrivateNote")]
    elif kind == Kind.CUSTOMER:
        # A customer carries no marker: its name alone may be another party's. Only the exact payload counts (name
        # and e-mail, none on both sides when ours had none: mappers.is_same_party), and never a QuickBooks customer
        # another of ours is linked to — the rules of the ordinary link (_link_or_create_customer).
        name = mappers.quote(payload["DisplayName"])
        rows = _call(run, lambda: run.client.query(f"SELECT * FROM Customer WHERE DisplayName = {name}"))
        email = ((payload.get("PrimaryEmailAddr") or {}).get("Address") or "").strip().lower()
        rows = [row for row in rows if mappers.qbo_email(row) == email]
        taken = _qbo_ids_mapped_to_others(run, kind, [str(row["Id"]) for row in rows], local_key)
        rows = [row for row in rows if str(row["Id"]) not in taken]
    else:
        # Nor does an item: the name must hold an active item of the type we create (an Inventory item of the same
        # name, or an inactive one, is never ours: _link_or_create_item), not linked to another of our services.
        name = mappers.quote(payload["Name"])
        rows = _call(run, lambda: run.client.query(f"SELECT * FROM Item WHERE Name = {name}"))
        rows = [
            row
            for row in rows
            if row.get("Type") == payload.get("Type", "Service")
            and row.get("Type") in LINKABLE_ITEM_TYPES
            and row.get("Active", True) is not False
        ]
        taken = _qbo_ids_mapped_to_others(run, kind, [str(row["Id"]) for row in rows], local_key)
        rows = [row for row in rows if str(row["Id"]) not in taken]
    return rows[0] if rows else None


def _adopt_or_release(run: _Run, request: QuickBooksRequest) -> None:
    """An old unanswered request: adopt every object QuickBooks holds (found by marker), then close the request.
    Objects not found were never created: they go through the ordinary find-or-create steps again, under a new
    request id, with today's payload (so a refund netted meanwhile is taken into account once)."""
    adopted, missing = {}, []
    for kind, local_key, _, payload in _request_objects(request):
        if QuickBooksMapping.objects.filter(realm_id=run.realm_id, kind=kind, local_key=local_key).exists():
            continue
        found = _find_by_marker(run, kind, local_key, payload)
        if found is None:
            missing.append(f"{kind} {local_key}")
            continue
        _record_mapping(run, kind, local_key, found, linked=False)
        adopted[f"{kind} {local_key}"] = str(found["Id"])
    with transaction.atomic():
        _hold_lease(run)
        request.state, request.completed_at = QuickBooksRequest.State.DONE, timezone.now()
        request.response = {"looked_up": True, "adopted": adopted, "not_found": missing}
        request.last_error = (
            f"No answer seen for over {settings.EXPORT_OUTBOX_LOOKUP_AFTER_SECONDS / 60:.0f} minutes: looked up in "
            f"QuickBooks by FieldSync's marker instead of re-sending; adopted {len(adopted)}, not found "
            f"{len(missing)} (created again if still needed)."
        )
        request.save(update_fields=["state", "completed_at", "response", "last_error"])
    logger.info("Outbox request %s looked up: adopted %s, not found %s", request.request_id, adopted, missing)


def _remember_answer(run: _Run, entity: str, obj: dict) -> None:
    """Keep a created invoice as QuickBooks answered (its TotalAmt and Balance need no read before paying it); forget
    an invoice as soon as a payment is posted against it (its Balance has changed)."""
    if entity == "Invoice":
        run.invoice_rows[str(obj["Id"])] = obj
    elif entity == "Payment":
        for line in obj.get("Line") or []:
            for linked in line.get("LinkedTxn") or []:
                run.invoice_rows.pop(str(linked.get("TxnId")), None)


def _mapped(run: _Run, kind: str, keys: Iterable[str]) -> dict[str, QuickBooksMapping]:
    keys = list(keys)
    return {
        m.local_key: m for m in QuickBooksMapping.objects.filter(realm_id=run.realm_id, kind=kind, local_key__in=keys)
    }


def _fail(run: _Run, payment_ids: Iterable[int], error: QuickBooksError | ApplicationError, what: str) -> None:
    code = getattr(error, "qbo_code", "") or error.code
    for payment_id in payment_ids:
        run.failures.setdefault(payment_id, (code, f"{what}: {error.message}"))


def _work_ahead(run: _Run) -> bool:
    """Resolve one customer or item of the next chunk's payments; False when there is nothing (more) to do.

    Safe to do early: a customer or item, once linked or created, is recorded in the mapping table and reused, and
    nothing about the payments themselves changes. Errors are left for the chunk itself to meet and record.
    """
    if run.working_ahead:
        return False
    if run.ahead is None:
        claimed = set(run.batch_by_payment)
        upcoming = [pk for pk in _next_payment_ids(run.realm_id, skip=claimed)]
        run.ahead = billing_selectors.payments_for_export(payment_ids=upcoming) if upcoming else []
    if not run.ahead:
        return False
    run.working_ahead = True
    saved_attempts, saved_failures = run.attempts, run.failures
    run.attempts, run.failures = [], {}
    try:
        if _resolve_one_ahead(run):
            return True
        run.ahead = []
        return False
    except (QuickBooksError, ApplicationError, _Backoff):
        run.ahead = []
        return False
    finally:
        run.attempts, run.failures = saved_attempts, saved_failures
        run.working_ahead = False


def _resolve_one_ahead(run: _Run) -> bool:
    needs = _lookup_needs(run, run.ahead)
    if run.lookups.needs(**needs):
        _look_up(run, **needs)
        return True
    customers = {p.customer_id: p for p in run.ahead}
    mapped = _mapped(run, Kind.CUSTOMER, [str(pk) for pk in customers])
    for customer_id, payment in customers.items():
        if str(customer_id) not in mapped:
            _link_or_create_customer(run, payment.customer, [])
            return True
    names = {
        mappers.item_key(line.service_name): line.service_name
        for payment in run.ahead
        for invoice, _ in mappers.payment_net_applications(payment)
        for line in invoice.lines.all()
    }
    mapped = _mapped(run, Kind.ITEM, names)
    for key, service_name in names.items():
        if key not in mapped:
            _link_or_create_item(run, key, service_name, [])
            return True
    return False


# --- Look-ups (lookups.py) ----------------------------------------------------------------------------------------


def _look_up_in_batches(run: _Run, payments: list[Payment]) -> None:
    """Read in batches what these payments' customers, items and invoices need from QuickBooks and the mapping table
    does not tell (lookups.py). When any of it was not looked up yet in this run, the payments queued after them (up
    to LOOKAHEAD_PAYMENTS) are looked up in the same queries: a run of 1,000 payments makes a handful of reads."""
    needs = _lookup_needs(run, payments)
    if not run.lookups.needs(**needs):
        return
    upcoming = _next_payment_ids(run.realm_id, skip={p.pk for p in payments}, limit=LOOKAHEAD_PAYMENTS)
    if upcoming:
        more = _lookup_needs(run, billing_selectors.payments_for_export(payment_ids=upcoming))
        needs = {key: [*needs[key], *more[key]] for key in needs}
    _look_up(run, **needs)


def _lookup_needs(run: _Run, payments: list[Payment]) -> dict[str, list]:
    """The customers, item names and invoice numbers of these payments that the mapping table does not hold (three
    queries). Invoice numbers only when the company numbers invoices as we do (custom transaction numbers)."""
    customers = {payment.customer_id: payment.customer for payment in payments}
    invoices: dict[int, Invoice] = {}
    item_names: dict[str, list[str]] = {}
    for payment in payments:
        for invoice, _ in mappers.payment_net_applications(payment):
            invoices[invoice.pk] = invoice
            for line in invoice.lines.all():
                item_names.setdefault(mappers.item_key(line.service_name), mappers.item_names(line.service_name))
    mapped_customers = _mapped(run, Kind.CUSTOMER, [str(pk) for pk in customers])
    mapped_items = _mapped(run, Kind.ITEM, item_names)
    numbers: list[str] = []
    if run.profile is None or run.profile.custom_txn_numbers:
        mapped_invoices = _mapped(run, Kind.INVOICE, [str(pk) for pk in invoices])
        numbers = [invoice.number for pk, invoice in invoices.items() if str(pk) not in mapped_invoices]
    return {
        "customers": [customer for pk, customer in customers.items() if str(pk) not in mapped_customers],
        "item_names": [name for key, names in item_names.items() if key not in mapped_items for name in names],
        "invoice_numbers": numbers,
    }


def _look_up(run: _Run, *, customers=(), item_names=(), invoice_numbers=()) -> None:
    run.lookups.fill(
        lambda statement: _query_all(run, statement),
        customers=customers,
        item_names=item_names,
        invoice_numbers=invoice_numbers,
    )


def _query_all(run: _Run, statement: str) -> list[dict]:
    """Every row of a query, a page of 1,000 per request, each request within the company's budget."""
    rows: list[dict] = []
    start = 1
    while True:
        paged = f"{statement} STARTPOSITION {start} MAXRESULTS {QUERY_PAGE_SIZE}"
        page = _call(run, lambda paged=paged: run.client.query(paged))
        rows.extend(page)
        if len(page) < QUERY_PAGE_SIZE:
            return rows
        start += QUERY_PAGE_SIZE


# --- Customers ----------------------------------------------------------------------------------------------------


def _ensure_customers(run: _Run, payments: "list[Payment] | list[Invoice]") -> dict[int, str]:
    """Our customer id -> QuickBooks Id, linking to an existing customer of the same party or creating one. Takes
    the chunk's payments, or its invoices when they go on their own (anything with pk, customer_id and customer)."""
    by_customer: dict[int, list[Payment]] = defaultdict(list)
    for payment in payments:
        by_customer[payment.customer_id].append(payment)
    mapped = _mapped(run, Kind.CUSTOMER, [str(pk) for pk in by_customer])
    result = {int(key): m.qbo_id for key, m in mapped.items() if not m.stale_reason}
    for key, m in mapped.items():
        if m.stale_reason:
            _fail(run, [p.pk for p in by_customer[int(key)]], _stale_error(m), "Customer")
    for customer_id, its_payments in by_customer.items():
        if customer_id in result or str(customer_id) in mapped:  # linked, or stale: failed above with the reason
            continue
        customer = its_payments[0].customer
        payment_ids = [p.pk for p in its_payments]
        try:
            result[customer_id] = _link_or_create_customer(run, customer, payment_ids)
        except (QuickBooksError, ApplicationError) as exc:
            if isinstance(exc, QuickBooksError) and (exc.retryable or isinstance(exc, QuickBooksAuthorizationError)):
                raise
            _fail(run, payment_ids, exc, f"Customer {customer.display_name}")
    return result


def _qbo_ids_mapped_to_others(run: _Run, kind: str, qbo_ids: list[str], local_key: str) -> set[str]:
    return set(
        QuickBooksMapping.objects.filter(realm_id=run.realm_id, kind=kind, qbo_id__in=qbo_ids)
        .exclude(local_key=local_key)
        .values_list("qbo_id", flat=True)
    )


def _find_customer(run: _Run, customer: Customer, payment_ids: list[int], local_key: str) -> list[dict]:
    """QuickBooks customers of this party not linked to another of ours: by e-mail; for a customer without one, by
    name. Answered from the run's batched look-ups (one query for this customer alone if it was not among them)."""
    rows = run.lookups.customer_rows(customer)
    if rows is None:
        _look_up(run, customers=[customer])
        rows = run.lookups.customer_rows(customer) or []
    label = "e-mail" if customer.email.strip() else "name"
    taken = _qbo_ids_mapped_to_others(run, Kind.CUSTOMER, [str(r["Id"]) for r in rows], local_key)
    rows = [r for r in rows if str(r["Id"]) not in taken]
    _attempt(
        run,
        payment_ids,
        operation=f"find Customer by {label}",
        object_kind=Kind.CUSTOMER,
        local_key=local_key,
        qbo_id=str(rows[0]["Id"]) if rows else "",
        outcome=ExportAttempt.Outcome.LINKED if rows else ExportAttempt.Outcome.OK,
        message=f"{len(rows)} found",
    )
    return rows


def _link_or_create_customer(run: _Run, customer: Customer, payment_ids: list[int]) -> str:
    local_key = str(customer.pk)
    # 1. The same party already in QuickBooks: by e-mail; for a customer without one, by name and no e-mail either.
    rows = [r for r in _find_customer(run, customer, payment_ids, local_key) if mappers.is_same_party(customer, r)]
    if rows:
        return _record_mapping(run, Kind.CUSTOMER, local_key, rows[0], linked=True).qbo_id
    # 2. Create it under the first name no other party holds. 6240 means a customer, vendor or employee has it.
    last_error: QuickBooksError | None = None
    for name in mappers.customer_display_names(customer):
        payload = mappers.customer_payload(customer, display_name=name)
        try:
            mapping = _create_one(
                run,
                entity="Customer",
                kind=Kind.CUSTOMER,
                local_key=local_key,
                payload=payload,
                payment_ids=payment_ids,
            )
        except QuickBooksDuplicateNameError as exc:
            last_error = exc
            continue
        return mapping.qbo_id
    raise last_error


# --- Items --------------------------------------------------------------------------------------------------------


def _payment_invoices(payment: Payment) -> list[Invoice]:
    return [invoice for invoice, _ in mappers.payment_net_applications(payment)]


def _ensure_items(
    run: _Run,
    payments: "list[Payment] | list[Invoice]",
    invoices_of: Callable[[object], list[Invoice]] = _payment_invoices,
) -> dict[str, str]:
    """Service name (item key) -> QuickBooks Item Id, linking by name or creating a Service item. For invoices
    exported on their own, `invoices_of` gives each invoice itself."""
    needed: dict[str, tuple[str, set[int]]] = {}
    for payment in payments:
        for invoice in invoices_of(payment):
            for line in invoice.lines.all():
                key = mappers.item_key(line.service_name)
                needed.setdefault(key, (line.service_name, set()))[1].add(payment.pk)
    mapped = _mapped(run, Kind.ITEM, needed)
    result = {key: m.qbo_id for key, m in mapped.items() if not m.stale_reason}
    for key, m in mapped.items():
        if m.stale_reason:
            _fail(run, needed[key][1], _stale_error(m), "Service item")
    for key, (service_name, payment_ids) in needed.items():
        if key in result or key in mapped:  # linked, or stale: failed above with the reason
            continue
        try:
            result[key] = _link_or_create_item(run, key, service_name, sorted(payment_ids))
        except (QuickBooksError, ApplicationError) as exc:
            if isinstance(exc, QuickBooksError) and (exc.retryable or isinstance(exc, QuickBooksAuthorizationError)):
                raise
            _fail(run, payment_ids, exc, f"Service item {service_name}")
    return result


# Only these item types sell a service on an invoice as ours do; an Inventory item would move stock and cost of
# goods, a Category or Group is no sellable item (Intuit, Item reference: Type).
LINKABLE_ITEM_TYPES = frozenset({"Service", "NonInventory"})


def _link_or_create_item(run: _Run, key: str, service_name: str, payment_ids: list[int]) -> str:
    """Link the QuickBooks item of our name when it is an active Service or Non-inventory item; otherwise (an
    Inventory, Category or Group item has the name, or an inactive item holds it) use a distinguishable name,
    "Drain cleaning (service)", linking or creating that one. Never an Inventory/Category/Group item, never a
    surprise 610 from an inactive one."""
    last_error: QuickBooksError | None = None
    for name in mappers.item_names(service_name):
        rows = run.lookups.item_rows(name)
        if rows is None:  # not among the run's batched look-ups: this name alone
            _look_up(run, item_names=[name])
            rows = run.lookups.item_rows(name) or []
        usable = [r for r in rows if r.get("Type") in LINKABLE_ITEM_TYPES and r.get("Active", True) is not False]
        if usable:
            _attempt(
                run,
                payment_ids,
                operation="find Item by name",
                object_kind=Kind.ITEM,
                local_key=key,
                qbo_id=str(usable[0]["Id"]),
                outcome=ExportAttempt.Outcome.LINKED,
            )
            return _record_mapping(run, Kind.ITEM, key, usable[0], linked=True).qbo_id
        if rows:
            _attempt(
                run,
                payment_ids,
                operation="find Item by name",
                object_kind=Kind.ITEM,
                local_key=key,
                qbo_id=str(rows[0]["Id"]),
                outcome=ExportAttempt.Outcome.OK,
                message=f"{name} is a {rows[0].get('Type', 'different')} item in QuickBooks: not used",
            )
            continue
        payload = mappers.item_payload(
            service_name=service_name, income_account_ref=run.mapping_settings.income_account_ref(), name=name
        )
        try:
            return _create_one(
                run, entity="Item", kind=Kind.ITEM, local_key=key, payload=payload, payment_ids=payment_ids
            ).qbo_id
        except QuickBooksDuplicateNameError as exc:  # an inactive item (or another name list entry) holds the name
            last_error = exc
    raise last_error or ApplicationError(
        f"No usable QuickBooks item name for {service_name}.", code="item_name_unavailable"
    )


# --- Invoices -----------------------------------------------------------------------------------------------------


def _ensure_invoices(
    run: _Run, payments: list[Payment], customer_ids: dict[int, str], item_ids: dict[str, str]
) -> dict[int, str]:
    """Our invoice id -> QuickBooks Invoice Id. An invoice with our number already in QuickBooks is linked when it is
    the same customer's and has the same total; otherwise its payments fail (never a second invoice with our number)."""
    invoices: dict[int, Invoice] = {}
    payments_of: dict[int, set[int]] = defaultdict(set)
    for payment in payments:
        if payment.pk in run.failures:
            continue
        for invoice, _ in mappers.payment_net_applications(payment):
            invoices[invoice.pk] = invoice
            payments_of[invoice.pk].add(payment.pk)
    result = {int(key): m.qbo_id for key, m in _mapped(run, Kind.INVOICE, [str(pk) for pk in invoices]).items()}
    to_find = [inv for pk, inv in invoices.items() if pk not in result]
    if run.profile is not None and not run.profile.custom_txn_numbers:
        to_find = []  # QuickBooks numbers invoices itself: our number is no key there (the mapping is)
    amounts_to_post = _amounts_to_post(run, payments) if to_find else {}
    _look_up(run, invoice_numbers=[inv.number for inv in to_find if not run.lookups.has_invoice(inv.number)])
    for invoice in to_find:
        row = run.lookups.invoice_row(invoice.number)
        if row is None:
            continue
        customer_id = customer_ids.get(invoice.customer_id)
        problem = _invoice_mismatch(invoice, row, customer_id)
        if not problem:
            # A hand-keyed invoice already paid in QuickBooks is not linked blindly: its Balance must take ours.
            to_post = amounts_to_post.get(invoice.pk, Decimal("0.00"))
            if found := invoice_checks.invoice_problem(invoice, row, amount_to_post=to_post):
                problem = (
                    f"QuickBooks already has invoice {invoice.number} (QuickBooks invoice {row['Id']}) but it "
                    f"cannot take FieldSync's payments: {found.message} FieldSync did not link it."
                )
        if problem:
            _fail(
                run,
                payments_of[invoice.pk],
                ApplicationError(problem, code="invoice_conflict"),
                f"Invoice {invoice.number}",
            )
            continue
        # Linked from a look-up that may be minutes old (lookups.py): read again before any payment is posted.
        result[invoice.pk] = _record_mapping(run, Kind.INVOICE, str(invoice.pk), row, linked=True).qbo_id
        _attempt(
            run,
            payments_of[invoice.pk],
            operation="find Invoice by number",
            object_kind=Kind.INVOICE,
            local_key=str(invoice.pk),
            qbo_id=str(row["Id"]),
            outcome=ExportAttempt.Outcome.LINKED,
        )

    entries = []
    for pk, invoice in invoices.items():
        if pk in result or any(p in run.failures for p in payments_of[pk]):
            continue
        customer_id = customer_ids.get(invoice.customer_id)
        lines_ok = all(mappers.item_key(line.service_name) in item_ids for line in invoice.lines.all())
        if customer_id is None or not lines_ok:
            continue  # its payments already carry the customer's or item's failure
        if problem := _tax_code_missing(run, invoice):
            _fail(
                run, payments_of[pk], ApplicationError(problem, code="tax_code_not_mapped"), f"Invoice {invoice.number}"
            )
            continue
        if problem := tracking.invoice_tracking_problem(run.profile, run.unit_tracking.for_invoice(invoice)):
            _fail(
                run,
                payments_of[pk],
                ApplicationError(problem, code="class_or_location_inactive"),
                f"Invoice {invoice.number}",
            )
            continue
        customer = next(p.customer for p in payments if p.customer_id == invoice.customer_id) if payments else None
        entries.append(
            (
                str(pk),
                mappers.invoice_payload(
                    invoice,
                    customer_id=customer_id,
                    item_ids=item_ids,
                    profile=run.profile,
                    sales_tax_code_id=_tax_code_for(run, invoice),
                    no_tax_code_id=run.mapping_settings.no_tax_code_id,
                    customer=customer,
                    **_unit_refs(run, invoice),
                ),
            )
        )
    for local_key, outcome in _create_many(run, entity="Invoice", kind=Kind.INVOICE, entries=entries).items():
        invoice = invoices[int(local_key)]
        qbo_id = _record_batch_create(
            run, Kind.INVOICE, local_key, outcome, payments_of[invoice.pk], f"Invoice {invoice.number}"
        )
        if qbo_id is None:
            if isinstance(outcome, QuickBooksObjectNotFoundError):
                _detect_stale_names(run, invoice, customer_ids, item_ids, payments_of[invoice.pk])
            continue
        result[invoice.pk] = qbo_id
    _check_invoices_before_payments(run, payments, invoices, result)
    _wait_with_held_or_failed_partners(run, payments)
    return result


def _stale_error(mapping: QuickBooksMapping) -> ApplicationError:
    return ApplicationError(mapping.stale_reason, code="stale_mapping")


def _detect_stale_names(
    run: _Run, invoice: Invoice, customer_ids: dict[int, str], item_ids: dict[str, str], payment_ids: Iterable[int]
) -> None:
    """QuickBooks answered 610 to an invoice: something it references is gone or inactive, and QuickBooks does not
    say which. Read the invoice's customer and items (inactive ones too; two queries) and mark each mapping whose
    object is gone or inactive as stale, so later exports fail at once with what to do instead of a 610 each time."""
    checks = [(Kind.CUSTOMER, str(invoice.customer_id), "Customer", customer_ids.get(invoice.customer_id))]
    for line in invoice.lines.all():
        key = mappers.item_key(line.service_name)
        checks.append((Kind.ITEM, key, "Item", item_ids.get(key)))
    found: dict[tuple[str, str], dict] = {}
    for entity in ("Customer", "Item"):
        ids = sorted({qbo_id for kind, _, e, qbo_id in checks if e == entity and qbo_id})
        if not ids:
            continue
        quoted = ", ".join(mappers.quote(i) for i in ids)
        statement = f"SELECT * FROM {entity} WHERE Id IN ({quoted}) AND Active IN (true, false)"
        for row in _call(run, lambda statement=statement: run.client.query(statement)):
            found[(entity, str(row["Id"]))] = row
    for kind, local_key, entity, qbo_id in checks:
        if not qbo_id:
            continue
        row = found.get((entity, qbo_id))
        if row is not None and row.get("Active", True) is not False:
            continue
        what = "customer" if kind == Kind.CUSTOMER else "item"
        name = (row or {}).get("DisplayName") or (row or {}).get("Name") or qbo_id
        state = "inactive" if row is not None else "gone (deleted)"
        reason = (
            f"The QuickBooks {what} {name} (Id {qbo_id}) that FieldSync uses is {state} in QuickBooks. On the "
            "mappings page, make it active again, link a different QuickBooks record, or unlink it; then retry."
        )
        QuickBooksMapping.objects.filter(realm_id=run.realm_id, kind=kind, local_key=local_key).update(
            stale_reason=reason[:300]
        )
        for payment_id in payment_ids:
            run.failures[payment_id] = ("stale_mapping", f"Invoice {invoice.number}: {reason}")


def _tax_code_for(run: _Run, invoice: Invoice) -> str:
    """The QuickBooks TaxCode of a taxed invoice: the one chosen for its tax rate, else the company's default."""
    if run.tax_codes is None:
        run.tax_codes = dict(
            QuickBooksTaxCodeMapping.objects.filter(realm_id=run.realm_id).values_list("tax_rate_id", "qbo_tax_code_id")
        )
    return company.invoice_tax_code_id(
        tax_rate_id=invoice.tax_rate_id, per_rate=run.tax_codes, settings_row=run.mapping_settings
    )


def _unit_refs(run: _Run, invoice: Invoice) -> dict[str, str]:
    """The class and location chosen for the invoice's job type, else its unit (tracking.py; mappers.invoice_payload
    sends them only where the company tracks them)."""
    return run.unit_tracking.for_invoice(invoice).refs()


def _tax_code_missing(run: _Run, invoice: Invoice) -> str:
    """What QuickBooks needs to express this invoice's tax that nobody chose yet, in words; "" when nothing.

    Outside the US every line needs a TaxCode (QuickBooks refuses the invoice otherwise); a US company with manual
    sales tax applies no tax without a TxnTaxCodeRef. A US company with automated sales tax computes its own: the
    comparison before payments holds the invoice when it differs."""
    profile = run.profile
    if profile is None or not profile.using_sales_tax:
        return ""
    taxed = invoice.sales_tax > 0
    lines = list(invoice.lines.all())
    missing = []
    if profile.is_us:
        if taxed and not profile.automated_sales_tax and not _tax_code_for(run, invoice):
            missing.append(f"the tax code for {invoice.tax_rate.name if invoice.tax_rate_id else 'taxed invoices'}")
    else:
        if taxed and any(line.taxable for line in lines) and not _tax_code_for(run, invoice):
            missing.append(f"the tax code for {invoice.tax_rate.name if invoice.tax_rate_id else 'taxed invoices'}")
        if (not taxed or not all(line.taxable for line in lines)) and not run.mapping_settings.no_tax_code_id:
            missing.append("the tax code for lines without tax")
    if not missing:
        return ""
    return (
        f"This QuickBooks company ({profile.describe()}) needs a tax code FieldSync cannot guess: choose "
        f"{' and '.join(missing)} on the QuickBooks page, then retry."
    )


def _amounts_to_post(run: _Run, payments: list[Payment]) -> dict[int, Decimal]:
    """Our invoice id -> what the payments of this chunk still to be posted (not in QuickBooks, not failed or held)
    would apply to it."""
    posted = _mapped(run, Kind.PAYMENT, [str(p.pk) for p in payments])
    amounts: dict[int, Decimal] = defaultdict(lambda: Decimal("0.00"))
    for payment in payments:
        if str(payment.pk) in posted or payment.pk in run.failures or payment.pk in run.holds:
            continue
        for invoice, amount in mappers.payment_net_applications(payment):
            amounts[invoice.pk] += amount
    return amounts


def _check_invoices_before_payments(
    run: _Run, payments: list[Payment], invoices: dict[int, Invoice], qbo_ids: dict[int, str]
) -> None:
    """The rule that keeps QuickBooks' books matching ours (see invoice_checks.py): before any payment is posted,
    every invoice it applies to — created or linked just now, found in the mapping table, or recovered by an outbox
    replay — must have QuickBooks' TotalAmt equal to ours and a Balance that takes what is about to be posted.
    Invoices QuickBooks answered in this run are not read again; the others are read in one query per 30.
    An invoice that fails the check gets an open InvoiceExportHold and all its payments in this chunk are held."""
    to_post = _amounts_to_post(run, payments)
    to_check = {pk: qbo_ids[pk] for pk, amount in to_post.items() if amount > 0 and pk in qbo_ids}
    if not to_check:
        return
    rows = {qbo_id: run.invoice_rows.pop(qbo_id) for qbo_id in to_check.values() if qbo_id in run.invoice_rows}
    unknown = sorted({qbo_id for qbo_id in to_check.values() if qbo_id not in rows})
    for start in range(0, len(unknown), BATCH_SIZE):
        ids = ", ".join(mappers.quote(qbo_id) for qbo_id in unknown[start : start + BATCH_SIZE])
        found = _call(run, lambda ids=ids: run.client.query(f"SELECT * FROM Invoice WHERE Id IN ({ids})"))
        rows.update({str(row["Id"]): row for row in found})
    payments_of: dict[int, list[Payment]] = defaultdict(list)
    for payment in payments:
        for invoice, _ in mappers.payment_net_applications(payment):
            payments_of[invoice.pk].append(payment)
    for invoice_pk, qbo_id in to_check.items():
        invoice = invoices[invoice_pk]
        row = rows.get(qbo_id)
        problem = invoice_checks.invoice_problem(invoice, row, amount_to_post=to_post[invoice_pk])
        payment_ids = [p.pk for p in payments_of[invoice_pk]]
        if problem is None:
            if row is not None and row.get("SyncToken") is not None:
                QuickBooksMapping.objects.filter(
                    realm_id=run.realm_id, kind=Kind.INVOICE, local_key=str(invoice_pk)
                ).exclude(sync_token=str(row["SyncToken"])).update(sync_token=str(row["SyncToken"]))
            continue
        _hold_invoice(run, invoice, qbo_id, problem, amount_to_post=to_post[invoice_pk])
        for payment_id in payment_ids:
            run.holds.setdefault(payment_id, (problem.code, f"Invoice {invoice.number}: {problem.message}"))
            run.held_by.setdefault(payment_id, invoice.number)
        _attempt(
            run,
            payment_ids,
            operation="check Invoice before payments",
            object_kind=Kind.INVOICE,
            local_key=str(invoice_pk),
            qbo_id=qbo_id,
            outcome=ExportAttempt.Outcome.ERROR,
            error_code=problem.code,
            message=problem.message,
        )


def _wait_with_held_or_failed_partners(run: _Run, payments: list[Payment]) -> None:
    """Spread holds and failures through split payments before anything is posted (issue 9: an invoice ends Balance
    0 in QuickBooks, or nothing of it is posted). A payment not posted yet waits — run.waiting, with a reason naming
    the invoice it waits for — when one of its invoices is also paid by a payment that is not going to QuickBooks
    now: held or failed in this chunk, or on hold / failed from an earlier run. Transitively: a waiting split payment
    makes its other invoices' payments wait too. Two queries."""
    posted = _mapped(run, Kind.PAYMENT, [str(p.pk) for p in payments])
    chunk = {p.pk for p in payments}
    invoices_of: dict[int, set[int]] = {
        p.pk: {invoice.pk for invoice, _ in mappers.payment_net_applications(p)}
        for p in payments
        if str(p.pk) not in posted
    }
    numbers = {invoice.pk: invoice.number for p in payments for invoice, _ in mappers.payment_net_applications(p)}
    blocked: dict[int, str] = {}  # our invoice id -> the reason its payments wait
    for payment_id, invoice_ids in invoices_of.items():
        if payment_id in run.holds:
            origin = run.held_by.get(payment_id) or f"payment #{payment_id}"
            why = f"Waiting for {origin}: payment #{payment_id}, which also pays {{number}}, is on hold"
        elif payment_id in run.failures:
            why = f"Waiting for payment #{payment_id}, which also pays {{number}}: it failed"
        else:
            continue
        for invoice_id in invoice_ids:
            blocked.setdefault(invoice_id, why.format(number=numbers[invoice_id]))
    all_invoices = set().union(*invoices_of.values()) if invoices_of else set()
    outside = (
        PaymentApplication.objects.filter(
            invoice_id__in=all_invoices,
            payment__export_status__in=[ExportStatus.ON_HOLD, ExportStatus.FAILED],
        )
        .exclude(payment_id__in=chunk)
        .values_list("invoice_id", "payment_id", "payment__export_status")
    )
    outside = list(outside)
    held_numbers = (
        dict(
            InvoiceExportHold.objects.filter(
                realm_id=run.realm_id,
                state=InvoiceExportHold.State.OPEN,
                invoice__applications__payment_id__in={payment_id for _, payment_id, _ in outside},
            ).values_list("invoice__applications__payment_id", "invoice__number")
        )
        if outside
        else {}
    )
    for invoice_id, payment_id, status in outside:
        if status == ExportStatus.ON_HOLD:
            origin = held_numbers.get(payment_id) or f"payment #{payment_id}"
            reason = f"Waiting for {origin}: payment #{payment_id}, which also pays {numbers[invoice_id]}, is on hold"
        else:
            reason = f"Waiting for payment #{payment_id}, which also pays {numbers[invoice_id]}: it failed"
        blocked.setdefault(invoice_id, reason)
    changed = bool(blocked)
    while changed:
        changed = False
        for payment_id, invoice_ids in invoices_of.items():
            if payment_id in run.holds or payment_id in run.failures or payment_id in run.waiting:
                continue
            if hit := next((i for i in sorted(invoice_ids) if i in blocked), None):
                reason = blocked[hit]
                run.waiting[payment_id] = (
                    f"{reason}; posting this payment alone would leave {numbers[hit]} partly paid in QuickBooks."
                )
                for invoice_id in invoice_ids:
                    blocked.setdefault(invoice_id, reason)
                changed = True


def _hold_invoice(run: _Run, invoice: Invoice, qbo_id: str, problem, *, amount_to_post: Decimal) -> None:
    """Open (or refresh) the invoice's hold with QuickBooks' figures as just seen."""
    InvoiceExportHold.objects.update_or_create(
        realm_id=run.realm_id,
        invoice=invoice,
        state=InvoiceExportHold.State.OPEN,
        defaults={
            "qbo_invoice_id": qbo_id,
            "reason": problem.reason,
            "message": problem.message,
            "our_total": invoice.total,
            "qbo_total": problem.qbo_total,
            "qbo_tax": problem.qbo_tax,
            "qbo_balance": problem.qbo_balance,
            "amount_to_post": amount_to_post,
            "tax_detail": problem.tax_detail,
            "checked_at": timezone.now(),
        },
    )


def _invoice_mismatch(invoice: Invoice, row: dict, customer_id: str | None) -> str:
    theirs_total = Decimal(str(row.get("TotalAmt", "0")))
    if theirs_total == 0 and str(row.get("PrivateNote", "")).startswith("Voided") and invoice.total != 0:
        # Voided (by a person, or by undoing an export): QuickBooks keeps the number on the void and refuses a
        # second invoice with it (6140) while the company uses its own invoice numbers.
        return (
            f"QuickBooks invoice {row['Id']} with number {invoice.number} is voided, and QuickBooks will not take a "
            "second invoice with the same number. Renumber the voided invoice in QuickBooks (e.g. add “-void”), "
            "then retry."
        )
    theirs_customer = str((row.get("CustomerRef") or {}).get("value", ""))
    if customer_id is not None and theirs_customer != str(customer_id):
        return (
            f"QuickBooks already has invoice {invoice.number} for another customer (QuickBooks invoice {row['Id']}). "
            "FieldSync will not create a second invoice with the same number; resolve it in QuickBooks, then retry."
        )
    if theirs_total != invoice.total:
        return (
            f"QuickBooks has {format_money(theirs_total, invoice.currency)} for invoice {invoice.number}, "
            f"FieldSync has {format_money(invoice.total, invoice.currency)} (QuickBooks invoice {row['Id']}). "
            "Check the invoice's lines and sales tax in QuickBooks, then retry."
        )
    return ""


# --- Invoices with nothing to pay, on their own ------------------------------------------------------------------
# A $0.00 invoice with no payment (warranty work) is settled at issue and goes to QuickBooks invoice-only, through
# the same steps as a payment's invoice: customer, items, the invoice (mapping checked first; the create through the
# outbox with its request id), then QuickBooks' TotalAmt and Balance checked to be 0.00. Its claim is the company's
# runner lease: only the runner holding it works on the company's pending items, and the mapping it records before
# letting go makes any later item of the same invoice LINKED, never a second create.


def _next_invoice_ids(realm_id: str, *, skip: set[int] = frozenset()) -> list[int]:
    """The next invoices exported on their own, oldest batch first (after every pending payment)."""
    pending = (
        _pending_items(realm_id)
        .filter(invoice__isnull=False)
        .exclude(invoice_id__in=skip)
        .order_by("batch_id", "id")
        .values_list("invoice_id", flat=True)
    )
    ids: list[int] = []
    for invoice_id in pending[: CHUNK_SIZE * 4]:
        if invoice_id not in ids:
            ids.append(invoice_id)
            if len(ids) == CHUNK_SIZE:
                break
    return ids


def _export_invoices(run: _Run, invoice_ids: list[int]) -> None:
    """Export a chunk of invoices with nothing to pay, each on its own."""
    run.invoices_tried.update(invoice_ids)
    run.batch_by_invoice = dict(
        _pending_items(run.realm_id)
        .filter(invoice_id__in=invoice_ids)
        .order_by("-id")
        .values_list("invoice_id", "batch_id")
    )
    ExportBatch.objects.filter(pk__in=set(run.batch_by_invoice.values()), status=ExportBatch.Status.QUEUED).update(
        status=ExportBatch.Status.RUNNING, started_at=timezone.now()
    )
    # No longer one with nothing to pay (voided since it was asked for): skipped, with the reason. One QuickBooks
    # already has is checked and linked, whatever now.
    mapped_before = _mapped(run, Kind.INVOICE, [str(pk) for pk in invoice_ids])
    refusals = billing_selectors.invoice_only_export_refusals(invoice_ids=invoice_ids)
    for invoice_id, reason in refusals.items():
        if str(invoice_id) not in mapped_before:
            _resolve_items(None, Outcome.SKIPPED, message=reason, invoice_id=invoice_id)
    ready = [pk for pk in invoice_ids if pk not in refusals or str(pk) in mapped_before]
    if not ready:
        return
    invoices = list(
        billing_selectors.invoice_with_balances(Invoice.objects.filter(pk__in=ready))
        .select_related("customer", "tax_rate", "job")
        .prefetch_related("lines")
        .order_by("pk")
    )
    run.owner = "invoice"
    run.failures, run.holds, run.waiting, run.held_by = {}, {}, {}, {}
    run.ahead = []  # no looking ahead from here: the next chunk's payments were all done first
    run.transient = None
    try:
        customer_ids = _ensure_customers(run, invoices)
        item_ids = _ensure_items(run, invoices, invoices_of=lambda invoice: [invoice])
        _ensure_invoices_alone(run, invoices, customer_ids, item_ids)
    except _LeaseLost:
        raise
    except (_Backoff, QuickBooksAuthorizationError, QuickBooksNotConnectedError):
        _settle_invoices(run, invoices, mapped_before)
        raise
    except (QuickBooksError, ApplicationError) as exc:
        logger.warning("Export of invoices for company %s failed: %s", run.realm_id, exc.message)
        _fail(run, ready, exc, "Export")
    except Exception:
        _settle_invoices(run, invoices, mapped_before)
        raise
    finally:
        run.owner = "payment"
    _settle_invoices(run, invoices, mapped_before)
    if run.transient is not None:
        raise _Backoff(run.transient, delay=RETRY_DELAYS[1])


def _ensure_invoices_alone(
    run: _Run, invoices: list[Invoice], customer_ids: dict[int, str], item_ids: dict[str, str]
) -> None:
    """Link (same number, customer and total) or create each invoice, then check QuickBooks' copy has TotalAmt and
    Balance 0.00. What cannot go lands in run.failures with the reason."""
    by_pk = {invoice.pk: invoice for invoice in invoices}
    mapped = _mapped(run, Kind.INVOICE, [str(pk) for pk in by_pk])
    qbo_ids: dict[int, str] = {}
    for key, mapping in mapped.items():
        if mapping.stale_reason:
            _fail(run, [int(key)], _stale_error(mapping), f"Invoice {by_pk[int(key)].number}")
        else:
            qbo_ids[int(key)] = mapping.qbo_id
    to_find = [
        invoice
        for invoice in invoices
        if str(invoice.pk) not in mapped and invoice.pk not in run.failures and invoice.customer_id in customer_ids
    ]
    if run.profile is not None and not run.profile.custom_txn_numbers:
        to_find = []  # QuickBooks numbers invoices itself: our number is no key there
    for start in range(0, len(to_find), BATCH_SIZE):
        chunk = to_find[start : start + BATCH_SIZE]
        numbers = ", ".join(mappers.quote(invoice.number) for invoice in chunk)
        rows = _call(
            run, lambda numbers=numbers: run.client.query(f"SELECT * FROM Invoice WHERE DocNumber IN ({numbers})")
        )
        by_number = {row.get("DocNumber"): row for row in rows}
        for invoice in chunk:
            row = by_number.get(invoice.number)
            if row is None:
                continue
            problem = _invoice_mismatch(invoice, row, customer_ids.get(invoice.customer_id))
            if not problem and str(row.get("PrivateNote", "")).startswith("Voided"):
                # Its $0.00 total matches ours, but a voided invoice is no home for one FieldSync has issued.
                problem = (
                    f"QuickBooks invoice {row['Id']} with number {invoice.number} is voided, and QuickBooks will not "
                    "take a second invoice with the same number. Renumber the voided invoice in QuickBooks (e.g. add "
                    "“-void”), then retry."
                )
            if problem:
                _fail(
                    run, [invoice.pk], ApplicationError(problem, code="invoice_conflict"), f"Invoice {invoice.number}"
                )
                continue
            qbo_ids[invoice.pk] = _record_mapping(run, Kind.INVOICE, str(invoice.pk), row, linked=True).qbo_id
            run.invoice_rows[str(row["Id"])] = row
            _attempt(
                run,
                [invoice.pk],
                operation="find Invoice by number",
                object_kind=Kind.INVOICE,
                local_key=str(invoice.pk),
                qbo_id=str(row["Id"]),
                outcome=ExportAttempt.Outcome.LINKED,
            )
    entries = []
    for invoice in invoices:
        if invoice.pk in qbo_ids or invoice.pk in run.failures or str(invoice.pk) in mapped:
            continue
        customer_id = customer_ids.get(invoice.customer_id)
        if customer_id is None or not all(
            mappers.item_key(line.service_name) in item_ids for line in invoice.lines.all()
        ):
            continue  # already failed with the customer's or item's reason
        if problem := _tax_code_missing(run, invoice):
            _fail(run, [invoice.pk], ApplicationError(problem, code="tax_code_not_mapped"), f"Invoice {invoice.number}")
            continue
        if problem := tracking.invoice_tracking_problem(run.profile, run.unit_tracking.for_invoice(invoice)):
            _fail(
                run,
                [invoice.pk],
                ApplicationError(problem, code="class_or_location_inactive"),
                f"Invoice {invoice.number}",
            )
            continue
        payload = mappers.invoice_payload(
            invoice,
            customer_id=customer_id,
            item_ids=item_ids,
            profile=run.profile,
            sales_tax_code_id=_tax_code_for(run, invoice),
            no_tax_code_id=run.mapping_settings.no_tax_code_id,
            customer=invoice.customer,
            **_unit_refs(run, invoice),
        )
        entries.append((str(invoice.pk), payload))
    for local_key, outcome in _create_many(run, entity="Invoice", kind=Kind.INVOICE, entries=entries).items():
        invoice = by_pk[int(local_key)]
        qbo_id = _record_batch_create(run, Kind.INVOICE, local_key, outcome, [invoice.pk], f"Invoice {invoice.number}")
        if qbo_id is not None:
            qbo_ids[invoice.pk] = qbo_id
        elif isinstance(outcome, QuickBooksObjectNotFoundError):
            _detect_stale_names(run, invoice, customer_ids, item_ids, [invoice.pk])
    _check_invoices_alone(run, by_pk, qbo_ids)


def _check_invoices_alone(run: _Run, invoices: dict[int, Invoice], qbo_ids: dict[int, str]) -> None:
    """QuickBooks' copy of each invoice must total 0.00 (what it computed: lines and tax) with nothing open. Invoices
    QuickBooks answered in this run are not read again; the others in one query per 30."""
    to_check = {pk: qbo_id for pk, qbo_id in qbo_ids.items() if pk not in run.failures}
    rows = {qbo_id: run.invoice_rows.pop(qbo_id) for qbo_id in to_check.values() if qbo_id in run.invoice_rows}
    unknown = sorted({qbo_id for qbo_id in to_check.values() if qbo_id not in rows})
    for start in range(0, len(unknown), BATCH_SIZE):
        ids = ", ".join(mappers.quote(qbo_id) for qbo_id in unknown[start : start + BATCH_SIZE])
        found = _call(run, lambda ids=ids: run.client.query(f"SELECT * FROM Invoice WHERE Id IN ({ids})"))
        rows.update({str(row["Id"]): row for row in found})
    for invoice_pk, qbo_id in to_check.items():
        invoice, row = invoices[invoice_pk], rows.get(qbo_id)
        # The rule of payments' invoices with nothing to post: QuickBooks' TotalAmt must be ours (0.00); its Balance
        # is TotalAmt less payments applied, so it is 0.00 too.
        problem = invoice_checks.invoice_problem(invoice, row, amount_to_post=Decimal("0.00"))
        if problem is None:
            continue
        run.failures[invoice_pk] = (problem.code, f"Invoice {invoice.number}: {problem.message}")
        _attempt(
            run,
            [invoice_pk],
            operation="check Invoice",
            object_kind=Kind.INVOICE,
            local_key=str(invoice_pk),
            qbo_id=qbo_id,
            outcome=ExportAttempt.Outcome.ERROR,
            error_code=problem.code,
            message=problem.message,
        )


def _settle_invoices(run: _Run, invoices: list[Invoice], mapped_before: dict[str, QuickBooksMapping]) -> None:
    """Record each invoice's outcome. One neither in QuickBooks nor failed keeps its items pending (a later run)."""
    mappings = _mapped(run, Kind.INVOICE, [str(invoice.pk) for invoice in invoices])
    for invoice in invoices:
        mapping = mappings.get(str(invoice.pk))
        if invoice.pk in run.failures:
            code, message = run.failures[invoice.pk]
            _resolve_items(None, Outcome.FAILED, message=message, error_code=code, invoice_id=invoice.pk)
        elif mapping is None:
            continue
        elif str(invoice.pk) in mapped_before:
            _resolve_items(
                None, Outcome.LINKED, message="Already in QuickBooks.", qbo_id=mapping.qbo_id, invoice_id=invoice.pk
            )
        else:
            outcome = Outcome.LINKED if mapping.linked_existing else Outcome.CREATED
            _resolve_items(None, outcome, qbo_id=mapping.qbo_id, invoice_id=invoice.pk)
    ExportAttempt.objects.bulk_create(run.attempts, batch_size=1000)
    run.attempts = []


# --- Payments -----------------------------------------------------------------------------------------------------


def _ensure_payments(
    run: _Run, payments: list[Payment], customer_ids: dict[int, str], invoice_ids: dict[int, str]
) -> None:
    mapped = _mapped(run, Kind.PAYMENT, [str(p.pk) for p in payments])
    entries = []
    for payment in payments:
        if str(payment.pk) in mapped or payment.pk in run.failures or payment.pk in run.holds:
            continue
        if payment.pk in run.waiting:
            continue
        applications = mappers.payment_net_applications(payment)
        if payment.customer_id not in customer_ids or any(inv.pk not in invoice_ids for inv, _ in applications):
            continue
        entries.append(
            (
                str(payment.pk),
                mappers.payment_payload(
                    payment,
                    customer_id=customer_ids[payment.customer_id],
                    invoice_ids=invoice_ids,
                    deposit_account_ref=run.mapping_settings.deposit_account_ref(),
                    payment_method_ref=_payment_method_ref(run, payment.method),
                ),
            )
        )
    for local_key, outcome in _create_many(run, entity="Payment", kind=Kind.PAYMENT, entries=entries).items():
        _record_batch_create(run, Kind.PAYMENT, local_key, outcome, [int(local_key)], "Payment")


def _record_batch_create(
    run: _Run, kind: str, local_key: str, outcome: dict | QuickBooksError, payment_ids: Iterable[int], what: str
) -> str | None:
    """Record one answer of a batch create: an attempt, or the failure of the payments behind it. Returns the QuickBooks
    Id of the created object (_send_batch mapped it, to the Id QuickBooks answered), None if it was not created."""
    operation = f"create {kind.capitalize()} (batch)"
    if isinstance(outcome, QuickBooksError) and outcome.retryable:
        run.transient = outcome  # the payments stay pending and are sent again in a later run (a new request id)
        _attempt(
            run,
            payment_ids,
            operation=operation,
            object_kind=kind,
            local_key=local_key,
            outcome=ExportAttempt.Outcome.ERROR,
            error_code=outcome.qbo_code,
            message=f"{outcome.message} (QuickBooks could not process it for now; it is sent again later)",
        )
        return None
    if isinstance(outcome, QuickBooksError):
        _fail(run, payment_ids, outcome, what)
        _attempt(
            run,
            payment_ids,
            operation=operation,
            object_kind=kind,
            local_key=local_key,
            outcome=ExportAttempt.Outcome.ERROR,
            error_code=outcome.qbo_code,
            message=outcome.message,
        )
        return None
    qbo_id = str(outcome["Id"])  # as _send_batch mapped it, in the transaction that closed the request
    _attempt(
        run,
        payment_ids,
        operation=operation,
        object_kind=kind,
        local_key=local_key,
        qbo_id=qbo_id,
        outcome=ExportAttempt.Outcome.OK,
    )
    return qbo_id


def _payment_method_ref(run: _Run, method: str) -> dict | None:
    if run.mapping_settings.pk is None:
        return None
    return run.mapping_settings.payment_method_ref(method)


def companies_needing_a_run() -> list[str]:
    """Companies with pending export items whose runner is not alive (no lease, or an expired one)."""
    now = timezone.now()
    realms = set(_pending_items_all().values_list("batch__realm_id", flat=True).distinct())
    alive = set(
        ExportRunnerLease.objects.filter(realm_id__in=realms, expires_at__gte=now).values_list("realm_id", flat=True)
    )
    return sorted(realms - alive)


def _pending_items_all():
    return ExportBatchItem.objects.filter(outcome=Outcome.PENDING)
