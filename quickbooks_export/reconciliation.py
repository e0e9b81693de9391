"""The reconciliation report: FieldSync against QuickBooks for a range of dates, every exported invoice and payment.

Which records: every invoice and payment of the connected company that FieldSync exported (it has a QuickBooks
mapping) whose *transaction date* — the invoice date, the payment date, the dates QuickBooks shows as TxnDate — is in
the range. The nightly run (django-q2 schedule, migration 0009) covers the last NIGHTLY_DAYS days.

What is compared, per record (Problem):
- present: QuickBooks still has it (a query does not answer deleted objects) and it is not voided there (Intuit: a
  void zeroes the amounts and prepends "Voided" to PrivateNote; changes.voided_in_quickbooks);
- TotalAmt against our total (invoice: lines + tax; payment: what the export sent, mappers.payment_total);
- an invoice's Balance against what it should be in QuickBooks: our total less what the *exported* payments apply to
  it (mappers.payment_net_applications, the rule the export posts by) — not our open balance, which also counts
  payments not exported yet;
- the customer it is under (CustomerRef against our customer's mapping);
- a payment's invoices: the invoices and amounts of its LinkedTxn lines against our applications.

Cost: QuickBooks meters reads (queries included) and not writes. Records are read with `WHERE Id IN (...)` queries of
up to a page (1,000 ids, QBO's largest MAXRESULTS): ceil(invoices / 1000) + ceil(payments / 1000) reads, retries
after a 429 included, each within the company's request budget (limiter.py). No QuickBooks call is made inside a
database transaction; the rows are written in one short transaction at the end.
"""

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from billing import selectors as billing_selectors
from billing.models import BusinessUnit, Invoice, Payment, PaymentApplication, Refund
from billing.money import format_money
from billing.services import business_unit_default
from fieldsync.exceptions import ApplicationError, ConflictError

from . import limiter, mappers
from .changes import voided_in_quickbooks
from .client import QuickBooksClient, id_chunks
from .errors import QuickBooksError, QuickBooksThrottledError
from .invoice_checks import qbo_figures
from .models import QuickBooksConnection, QuickBooksMapping, ReconciliationRow, ReconciliationRun

logger = logging.getLogger(__name__)

Kind = QuickBooksMapping.Kind
State = ReconciliationRun.State
NIGHTLY_DAYS = 35
MAX_DAYS = 366
# A run still "running" this long after it started died with its worker; one still "queued" this long after it was
# added lost its task (a worker that died before claiming it, Redis' at-most-once delivery). Either no longer stops
# a new one.
STALE_AFTER = timedelta(minutes=30)
STALE_MESSAGE = (
    "This reconciliation stopped without finishing: after 30 minutes it was still not done, so the worker that was to "
    "run it must have stopped. Nothing was changed; start a new reconciliation."
)
RETRY_DELAYS = (2.0, 5.0, 15.0)
ZERO = Decimal("0.00")


class Problem(models.TextChoices):
    MISSING = "missing", "Not in QuickBooks"
    VOIDED = "voided", "Voided in QuickBooks"
    NOT_VOIDED = "not_voided", "Voided in FieldSync only"
    AMOUNT = "amount", "Total differs"
    BALANCE = "balance", "Balance differs"
    CUSTOMER = "customer", "Customer differs"
    LINKS = "links", "Applied differently"


# --- Starting a run -------------------------------------------------------------------------------------------------


def reconciliation_start(
    *,
    date_from: date,
    date_to: date,
    trigger: str,
    user=None,
    business_unit: BusinessUnit | None = None,
    enqueue: bool = True,
) -> ReconciliationRun:
    """Queue a reconciliation of the company connected for `business_unit` (default: the only unit; each unit keeps
    its own books) for [date_from, date_to] (transaction dates); the task is enqueued when the transaction commits.
    Raises ApplicationError for a bad range and ConflictError when the unit has no QuickBooks connected or a run of
    the company is already under way; nothing is created then."""
    if date_from > date_to:
        raise ApplicationError("The first date is after the last one; swap them.", code="invalid_range")
    if (date_to - date_from).days >= MAX_DAYS:
        raise ApplicationError(
            f"Reconcile at most {MAX_DAYS} days at a time; choose a shorter range.", code="range_too_long"
        )
    unit = business_unit or business_unit_default()
    connection = QuickBooksConnection.objects.filter(is_current=True, business_unit=unit).first()
    if connection is None:
        raise ConflictError("QuickBooks is not connected; connect it before reconciling.", code="not_connected")
    return _run_queue(connection.realm_id, date_from, date_to, trigger, user, enqueue)


def _run_queue(realm_id: str, date_from: date, date_to: date, trigger: str, user, enqueue: bool) -> ReconciliationRun:
    """Add a queued run of the company, unless one is under way: one transaction holding the company's connection
    row(s) locked, so two clicks at once (or a click and the nightly run) cannot both pass the check and both run (on
    SQLite the IMMEDIATE transaction takes the write lock first, to the same effect). A run left "running" by a dead
    worker (STALE_AFTER) is marked failed here, saying so, and no longer stops the new one."""
    with transaction.atomic():
        list(
            QuickBooksConnection.objects.select_for_update()
            .filter(realm_id=realm_id, is_current=True)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        now = timezone.now()
        runs = ReconciliationRun.objects.filter(realm_id=realm_id)
        stale = Q(state=State.RUNNING, started_at__lt=now - STALE_AFTER) | Q(
            state=State.QUEUED, created_at__lt=now - STALE_AFTER
        )
        under_way = runs.filter(state__in=[State.QUEUED, State.RUNNING]).exclude(stale).order_by("pk").first()
        if under_way is not None:
            raise ConflictError(
                f"Reconciliation #{under_way.pk} is still under way for this QuickBooks company; wait for it to "
                "finish, or follow it on its page.",
                code="reconciliation_busy",
                extra={"run_id": under_way.pk},
            )
        runs.filter(stale).update(state=State.FAILED, finished_at=now, message=STALE_MESSAGE)
        run = ReconciliationRun(
            realm_id=realm_id, date_from=date_from, date_to=date_to, trigger=trigger, created_by=user
        )
        run.full_clean()
        run.save()
        if enqueue:
            from .tasks import enqueue_reconciliation_run

            transaction.on_commit(lambda: enqueue_reconciliation_run(run.pk))
    return run


def reconciliation_is_stale(run: ReconciliationRun) -> bool:
    """Whether a run is unfinished for longer than a run can take (STALE_AFTER): "running" since it started (its
    worker died) or "queued" since it was added (its task was lost)."""
    cutoff = timezone.now() - STALE_AFTER
    if run.state == State.RUNNING:
        return run.started_at is not None and run.started_at < cutoff
    return run.state == State.QUEUED and run.created_at is not None and run.created_at < cutoff


def reconciliation_nightly() -> list[ReconciliationRun]:
    """The nightly runs: the last NIGHTLY_DAYS days up to today, for each connected company (one per business unit),
    one after the other, here and now (the caller is a worker). A company with a run under way is skipped."""
    today = timezone.localdate()
    runs = []
    for realm_id in (
        QuickBooksConnection.objects.filter(is_current=True).order_by("pk").values_list("realm_id", flat=True)
    ):
        try:
            run = _run_queue(
                realm_id,
                today - timedelta(days=NIGHTLY_DAYS - 1),
                today,
                ReconciliationRun.Trigger.NIGHTLY,
                None,
                enqueue=False,
            )
        except ConflictError as exc:
            logger.info("Nightly reconciliation of realm %s skipped: %s", realm_id, exc.message)
            continue
        runs.append(reconciliation_run(run_id=run.pk))
    return runs


# --- Running it -----------------------------------------------------------------------------------------------------


@dataclass
class _Record:
    """One exported invoice or payment, as FieldSync has it and as QuickBooks should."""

    kind: str
    local_key: str
    qbo_id: str
    label: str
    customer: str
    customer_qbo_id: str
    txn_date: date | None
    amount: Decimal
    currency: str
    expected_balance: Decimal | None = None
    voided_here: bool = False
    links: dict[str, Decimal] = field(default_factory=dict)  # payment: QuickBooks invoice Id -> amount


def reconciliation_run(*, run_id: int, sleep=time.sleep) -> ReconciliationRun:
    """Run a queued reconciliation (safe to deliver twice: only the worker that moves it from queued runs it).
    QuickBooks errors end the run as failed with the reason; nothing else is changed anywhere."""
    claimed = ReconciliationRun.objects.filter(pk=run_id, state=State.QUEUED).update(
        state=State.RUNNING, started_at=timezone.now()
    )
    run = ReconciliationRun.objects.get(pk=run_id)
    if not claimed:
        return run
    try:
        rows, reads = _reconcile(run, sleep=sleep)
    except QuickBooksError as exc:
        return _fail(run, f"QuickBooks could not be read: {exc.message} Nothing was compared; reconcile again later.")
    except ApplicationError as exc:
        return _fail(run, exc.message)
    except Exception:
        _fail(run, "The reconciliation stopped on an unexpected error; it is in the server log. Try again.")
        raise
    with transaction.atomic():
        ReconciliationRow.objects.bulk_create(rows, batch_size=1000)
        run.state, run.finished_at, run.quickbooks_reads = State.DONE, timezone.now(), reads
        run.invoices_checked = sum(1 for row in rows if row.kind == Kind.INVOICE)
        run.payments_checked = sum(1 for row in rows if row.kind == Kind.PAYMENT)
        run.discrepancies = sum(1 for row in rows if not row.ok)
        run.save()
    logger.info(
        "Reconciliation #%s: %s invoices, %s payments, %s discrepancies, %s QuickBooks reads",
        run.pk,
        run.invoices_checked,
        run.payments_checked,
        run.discrepancies,
        reads,
    )
    return run


def _fail(run: ReconciliationRun, message: str) -> ReconciliationRun:
    run.state, run.finished_at, run.message = State.FAILED, timezone.now(), message
    run.save(update_fields=["state", "finished_at", "message"])
    run.refresh_from_db(fields=["quickbooks_reads"])  # counted by the reader as it went
    return run


def _reconcile(run: ReconciliationRun, *, sleep) -> tuple[list[ReconciliationRow], int]:
    connection = QuickBooksConnection.objects.filter(is_current=True, realm_id=run.realm_id).first()
    if connection is None:
        raise ConflictError("The QuickBooks company this reconciliation was for is not connected now.")
    invoices, payments = _records(run)
    reader = _Reader(run, QuickBooksClient(connection), sleep)
    qbo_invoices = reader.read_all("Invoice", [r.qbo_id for r in invoices])
    qbo_payments = reader.read_all("Payment", [r.qbo_id for r in payments])
    named = {qbo_id for r in payments for qbo_id in r.links}
    named |= {qbo_id for row in qbo_payments.values() for qbo_id in _qbo_links(row)}
    numbers = _invoice_numbers(run.realm_id, named - {r.qbo_id for r in invoices}) | {
        r.qbo_id: r.label for r in invoices
    }
    rows = [_compare_invoice(run, r, qbo_invoices.get(r.qbo_id)) for r in invoices]
    rows += [_compare_payment(run, r, qbo_payments.get(r.qbo_id), numbers) for r in payments]
    return rows, reader.reads


class _Reader:
    """Batched reads by Id within the company's request budget, retrying throttling and outages, counted."""

    def __init__(self, run: ReconciliationRun, client: QuickBooksClient, sleep) -> None:
        self.run, self.client, self.sleep, self.reads = run, client, sleep, 0

    def read_all(self, entity: str, ids: list[str]) -> dict[str, dict]:
        found: dict[str, dict] = {}
        for chunk in id_chunks(entity, sorted(set(ids), key=lambda i: (len(i), i))):
            found.update(self._read(entity, chunk))
        return found

    def _read(self, entity: str, chunk: list[str]) -> dict[str, dict]:
        for delay in (*RETRY_DELAYS, None):
            limiter.acquire(self.run.realm_id)
            self.reads += 1
            # Progress for the page (one UPDATE per read, never inside a transaction).
            ReconciliationRun.objects.filter(pk=self.run.pk).update(quickbooks_reads=self.reads)
            try:
                return self.client.query_by_ids(entity, chunk)
            except QuickBooksError as exc:
                if not exc.retryable or delay is None:
                    raise
                wait = delay
                if isinstance(exc, QuickBooksThrottledError):
                    wait = max(wait, min(exc.retry_after, settings.EXPORT_MAX_RETRY_AFTER_SECONDS))
                logger.info("QuickBooks answered %s to a reconciliation read; retrying in %.1f s", exc.code, wait)
                self.sleep(wait)
        raise AssertionError("unreachable")


def _chunks(values: list, size: int = 2000):
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _mapped(realm_id: str, kind: str, pks) -> dict[int, str]:
    """Our id -> QuickBooks Id, for those of `pks` FieldSync exported to `realm_id` as `kind`.

    Looked up with `local_key IN (...)` a chunk at a time rather than a subquery per row: with statistics not yet
    gathered after a bulk load, PostgreSQL may answer a correlated lookup through the (realm, kind, qbo_id) index,
    reading every mapping of the kind once per row (37 s for 10,000 payments, measured by bench/reconcile.py)."""
    found: dict[int, str] = {}
    for chunk in _chunks(sorted({str(pk) for pk in pks})):
        rows = QuickBooksMapping.objects.filter(realm_id=realm_id, kind=kind, local_key__in=chunk)
        found.update((int(key), qbo_id) for key, qbo_id in rows.values_list("local_key", "qbo_id"))
    return found


def _records(run: ReconciliationRun) -> tuple[list[_Record], list[_Record]]:
    """The exported invoices and payments of the range, with what QuickBooks should show for each. A fixed number
    of queries per 2,000 records."""
    span = (run.date_from, run.date_to)
    realm = run.realm_id
    invoice_qbo_ids = _mapped(
        realm, Kind.INVOICE, Invoice.objects.filter(issued_on__range=span).values_list("pk", flat=True)
    )
    payment_qbo_ids = _mapped(
        realm, Kind.PAYMENT, Payment.objects.filter(received_on__range=span).values_list("pk", flat=True)
    )
    invoices: list[Invoice] = []
    for chunk in _chunks(sorted(invoice_qbo_ids)):
        invoices += billing_selectors.invoice_with_balances(Invoice.objects.filter(pk__in=chunk)).select_related(
            "customer"
        )
    invoices.sort(key=lambda invoice: (invoice.issued_on, invoice.number))

    # Every payment on these invoices counts towards their QuickBooks balance, whatever its date.
    payment_pks = set(payment_qbo_ids)
    for chunk in _chunks(sorted(invoice_qbo_ids)):
        payment_pks.update(PaymentApplication.objects.filter(invoice_id__in=chunk).values_list("payment_id", flat=True))
    loaded: dict[int, Payment] = {}
    for chunk in _chunks(sorted(payment_pks)):
        loaded.update((p.pk, p) for p in _payments_with_applications(chunk))
    exported = set(payment_qbo_ids) | set(_mapped(realm, Kind.PAYMENT, payment_pks - set(payment_qbo_ids)))
    applied_invoices = {a.invoice_id for p in loaded.values() for a in p.applications.all()}
    invoice_qbo_ids |= _mapped(realm, Kind.INVOICE, applied_invoices - set(invoice_qbo_ids))
    customers = {invoice.customer_id for invoice in invoices} | {p.customer_id for p in loaded.values()}
    customer_qbo_ids = _mapped(realm, Kind.CUSTOMER, customers)

    applied_in_quickbooks: dict[int, Decimal] = defaultdict(lambda: ZERO)
    for payment in loaded.values():
        if payment.pk in exported:
            for invoice, amount in mappers.payment_net_applications(payment):
                applied_in_quickbooks[invoice.pk] += amount

    invoice_records = [
        _Record(
            kind=Kind.INVOICE,
            local_key=str(invoice.pk),
            qbo_id=invoice_qbo_ids[invoice.pk],
            label=invoice.number,
            customer=invoice.customer.display_name,
            customer_qbo_id=customer_qbo_ids.get(invoice.customer_id, ""),
            txn_date=invoice.issued_on,
            amount=invoice.total,
            currency=invoice.currency,
            expected_balance=invoice.total - applied_in_quickbooks[invoice.pk],
            voided_here=invoice.status == Invoice.Status.VOID,
        )
        for invoice in invoices
    ]
    payment_records = []
    for payment in sorted((loaded[pk] for pk in payment_qbo_ids), key=lambda p: (p.received_on, p.pk)):
        links: dict[str, Decimal] = defaultdict(lambda: ZERO)
        for invoice, amount in mappers.payment_net_applications(payment):
            links[invoice_qbo_ids.get(invoice.pk, f"{invoice.number}, not in QuickBooks")] += amount
        total = mappers.payment_total(payment)
        payment_records.append(
            _Record(
                kind=Kind.PAYMENT,
                local_key=str(payment.pk),
                qbo_id=payment_qbo_ids[payment.pk],
                label=f"Payment #{payment.pk}",
                customer=payment.customer.display_name,
                customer_qbo_id=customer_qbo_ids.get(payment.customer_id, ""),
                txn_date=payment.received_on,
                amount=total,
                currency=payment.currency,
                voided_here=total > 0 and _reversed_in_quickbooks(payment) >= total,
                links=dict(links),
            )
        )
    return invoice_records, payment_records


def _reversed_in_quickbooks(payment: Payment) -> Decimal:
    """What of the payment FieldSync reversed after exporting it (bounced check, chargeback, wrong charge): reversals
    QuickBooks is to be told about (Needs manual handling, or "Record it in QuickBooks for me"). When they take back
    all that was exported, the payment is void for FieldSync and should be voided in QuickBooks."""
    return sum(
        (
            refund.amount
            for application in payment.applications.all()
            for refund in application.refunds.all()
            if refund.kind == Refund.Kind.REVERSAL and refund.handling == Refund.Handling.QUICKBOOKS
        ),
        ZERO,
    )


def _payments_with_applications(pks: list[int]) -> list[Payment]:
    applications = PaymentApplication.objects.select_related("invoice").prefetch_related("refunds")
    return list(
        billing_selectors.payment_with_amounts(Payment.objects.filter(pk__in=pks))
        .select_related("customer")
        .prefetch_related(models.Prefetch("applications", queryset=applications))
    )


def _invoice_numbers(realm_id: str, qbo_ids: set[str]) -> dict[str, str]:
    """QuickBooks invoice Id -> our invoice number, for the invoices payments name here or there (explanations)."""
    ids = sorted(qbo_ids)
    keys: dict[str, str] = {}
    for chunk in _chunks(ids):
        keys.update(
            QuickBooksMapping.objects.filter(realm_id=realm_id, kind=Kind.INVOICE, qbo_id__in=chunk).values_list(
                "local_key", "qbo_id"
            )
        )
    numbers: dict[str, str] = {}
    for chunk in _chunks([int(key) for key in keys]):
        for pk, number in Invoice.objects.filter(pk__in=chunk).values_list("pk", "number"):
            numbers[keys[str(pk)]] = number
    return numbers


# --- Comparing ------------------------------------------------------------------------------------------------------


def _row(run: ReconciliationRun, record: _Record, problems: list[tuple[str, str]], **values) -> ReconciliationRow:
    return ReconciliationRow(
        run=run,
        kind=record.kind,
        local_key=record.local_key,
        label=record.label,
        customer=record.customer,
        txn_date=record.txn_date,
        qbo_id=record.qbo_id,
        ok=not problems,
        problems=[code for code, _ in problems],
        explanation=" ".join(text for _, text in problems),
        our_amount=record.amount,
        **values,
    )


def _compare_invoice(run: ReconciliationRun, record: _Record, row: dict | None) -> ReconciliationRow:
    money = lambda amount: format_money(amount, record.currency)  # noqa: E731
    name = f"Invoice {record.label}"
    ours = {"our_balance": record.expected_balance, "our_links": f"customer {record.customer_qbo_id or '—'}"}
    if row is None:
        problem = (
            Problem.MISSING,
            f"{name} is no longer in QuickBooks (QuickBooks invoice {record.qbo_id} was deleted there). FieldSync "
            f"exported it for {money(record.amount)}; enter it again in QuickBooks, or unlink it on the QuickBooks "
            "links page so the next export sends it again.",
        )
        return _row(run, record, [problem], **ours)
    total, _, balance = qbo_figures(row)
    customer = str((row.get("CustomerRef") or {}).get("value") or "")
    theirs = {"qbo_amount": total, "qbo_balance": balance, "qbo_links": f"customer {customer or '—'}"}
    if voided_in_quickbooks(row):
        if record.voided_here:
            return _row(run, record, [], **ours, **theirs)
        problem = (
            Problem.VOIDED,
            f"{name} was voided in QuickBooks, but FieldSync still has it at {money(record.amount)}. If the void "
            "was intended, void it in FieldSync too; otherwise enter it again in QuickBooks.",
        )
        return _row(run, record, [problem], **ours, **theirs)
    problems = []
    if record.voided_here:
        problems.append(
            (
                Problem.NOT_VOIDED,
                f"{name} is voided in FieldSync but not in QuickBooks, where it is still {money(total)} "
                f"({money(balance)} open). Void it in QuickBooks too (QuickBooks voids an invoice only once no "
                "payment is applied to it there).",
            )
        )
    elif total != record.amount:
        problems.append(
            (
                Problem.AMOUNT,
                f"QuickBooks shows {name} at {money(total)}; FieldSync has {money(record.amount)}. Correct the "
                "one that is wrong.",
            )
        )
    if not record.voided_here and balance != record.expected_balance:
        problems.append(
            (
                Problem.BALANCE,
                f"QuickBooks shows {money(balance)} still open on {name}; with the payments FieldSync exported it "
                f"should be {money(record.expected_balance)}. A payment was added, changed or removed in QuickBooks.",
            )
        )
    if record.customer_qbo_id and customer != record.customer_qbo_id:
        problems.append(
            (
                Problem.CUSTOMER,
                f"QuickBooks has {name} under another customer (QuickBooks customer {customer or 'none'}) than "
                f"FieldSync's {record.customer} (QuickBooks customer {record.customer_qbo_id}).",
            )
        )
    return _row(run, record, problems, **ours, **theirs)


def _qbo_links(row: dict) -> dict[str, Decimal]:
    """QuickBooks invoice Id -> amount of this payment applied to it (its Lines linked to invoices)."""
    links: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for line in row.get("Line") or []:
        for linked in line.get("LinkedTxn") or []:
            if linked.get("TxnType") == "Invoice":
                links[str(linked.get("TxnId"))] += Decimal(str(line.get("Amount", "0"))).quantize(ZERO)
    return dict(links)


def _links_text(links: dict[str, Decimal], numbers: dict[str, str], currency: str) -> str:
    if not links:
        return "no invoice"
    return "; ".join(
        f"{numbers.get(qbo_id, 'QuickBooks invoice ' + qbo_id)} {format_money(amount, currency)}"
        for qbo_id, amount in sorted(links.items())
    )


def _compare_payment(
    run: ReconciliationRun, record: _Record, row: dict | None, numbers: dict[str, str]
) -> ReconciliationRow:
    money = lambda amount: format_money(amount, record.currency)  # noqa: E731
    name = record.label
    ours = {"our_links": _links_text(record.links, numbers, record.currency)}
    if row is None:
        problem = (
            Problem.MISSING,
            f"{name} ({money(record.amount)}, {record.customer}) is no longer in QuickBooks (QuickBooks payment "
            f"{record.qbo_id} was deleted there). If the Changed in QuickBooks page lists it, decide there whether to "
            "send it again; otherwise enter it in QuickBooks again.",
        )
        return _row(run, record, [problem], **ours)
    total = qbo_figures(row)[0]
    links = _qbo_links(row)
    customer = str((row.get("CustomerRef") or {}).get("value") or "")
    theirs = {"qbo_amount": total, "qbo_links": _links_text(links, numbers, record.currency)}
    if voided_in_quickbooks(row):
        if record.voided_here:
            return _row(run, record, [], **ours, **theirs)
        problem = (
            Problem.VOIDED,
            f"{name} ({money(record.amount)}, {record.customer}) was voided in QuickBooks. If the Changed in "
            "QuickBooks page lists it, decide there whether to send it again; otherwise enter it in QuickBooks again.",
        )
        return _row(run, record, [problem], **ours, **theirs)
    if record.voided_here:
        problem = (
            Problem.NOT_VOIDED,
            f"{name} ({money(record.amount)}, {record.customer}) was reversed in full in FieldSync (a bounced check, "
            f"chargeback or wrong charge), but QuickBooks still has it at {money(total)}, paying "
            f"{theirs['qbo_links']}. Void it in QuickBooks (Needs manual handling lists it; FieldSync records it "
            "for you there when the QuickBooks settings allow).",
        )
        return _row(run, record, [problem], **ours, **theirs)
    problems = []
    if total != record.amount:
        problems.append(
            (
                Problem.AMOUNT,
                f"QuickBooks shows {name} as {money(total)}; FieldSync exported {money(record.amount)}.",
            )
        )
    if record.customer_qbo_id and customer != record.customer_qbo_id:
        problems.append(
            (
                Problem.CUSTOMER,
                f"QuickBooks has {name} under another customer (QuickBooks customer {customer or 'none'}) than "
                f"FieldSync's {record.customer} (QuickBooks customer {record.customer_qbo_id}).",
            )
        )
    if links != record.links:
        problems.append(
            (
                Problem.LINKS,
                f"In QuickBooks {name} pays {theirs['qbo_links']}; in FieldSync it pays {ours['our_links']}.",
            )
        )
    return _row(run, record, problems, **ours, **theirs)
