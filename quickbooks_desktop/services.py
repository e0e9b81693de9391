"""QuickBooks Desktop export through the Web Connector: the same payments, the same rule, the same batches and log as
QuickBooks Online, talked to the Desktop way (QuickBooks calls us; we answer with qbXML).

What goes into QuickBooks is decided by billing, exactly as for Online: the fully-paid rule
(billing.selectors.payment_export_readiness_map), an invoice travelling with all of its payments
(payment_ids_with_invoice_partners), what a payment carries (payments_for_export, quickbooks_export.mappers'
pure payment_net_applications / payment_total) and the payment's export status (billing.services transitions:
QUEUED on request, EXPORTING once a Web Connector session claims it, then EXPORTED or FAILED). Batches, their items
and the attempt history are the Online engine's ExportBatch / ExportBatchItem / ExportAttempt with realm_id
"qbd:<connection id>", so the progress page, export log, counts and retries read the same.

How exactly-once holds without a requestid (qbXML has none):
- Every object has a marker QuickBooks can be queried by: Name for customers and service items, RefNumber for
  invoices (our invoice number) and received payments ("FS-P<payment id>"). Nothing is added before a query by its
  marker said it is absent (DesktopObject: UNKNOWN -> query -> ABSENT -> add -> FOUND).
- Every message set handed to the Web Connector is first written to the outbox (DesktopRequest, with the objects and
  markers it carries) and its adds are marked ADD_SENT. An answer that never comes (the response lost after
  QuickBooks applied it, a Web Connector killed mid-session, connectionError) leaves them ADD_SENT; before the next
  message set they go back to UNKNOWN and are queried by marker again, so an add QuickBooks did apply is found and
  linked, never repeated.
- One message set is outstanding per company at a time (a lease on DesktopConnection, taken by conditional UPDATE
  in sendRequestXML and given back in receiveResponseXML). A second Web Connector session meanwhile gets "" and, from
  getLastError, "NoOp" (the Web Connector waits and asks again), so two sessions never add the same object twice.
  A lease whose session died expires after QBWC_LOCK_SECONDS.
- qbXML's own error recovery (newMessageSetID / oldMessageSetID) is not used: see docs/quickbooks_desktop.md for why.

The Web Connector is never waited on: each call does bounded work (at most MESSAGE_SET_SIZE requests per message
set, CHUNK_SIZE payments in progress) and returns.
"""

import logging
import secrets
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.hashers import check_password, make_password
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from billing import selectors as billing_selectors
from billing import services as billing_services
from billing.models import Invoice, Payment
from fieldsync.exceptions import ApplicationError
from quickbooks_export.mappers import item_key, payment_net_applications, payment_total
from quickbooks_export.models import PAYMENT_METHOD_KEYS, ExportAttempt, ExportBatch, ExportBatchItem

from . import qbxml
from .models import DesktopConnection, DesktopObject, DesktopRequest, DesktopSession

logger = logging.getLogger(__name__)

ExportStatus = Payment.ExportStatus
Outcome = ExportBatchItem.Outcome
Kind = DesktopObject.Kind
Status = DesktopObject.Status

CHUNK_SIZE = 30  # payments in progress at a time
MESSAGE_SET_SIZE = 30  # requests per sendRequestXML: QuickBooks answers a few dozen in seconds
PASSWORD_MIN_LENGTH = 12
QUEUEABLE = (ExportStatus.NOT_EXPORTED, ExportStatus.FAILED)
IN_QUICKBOOKS = (ExportStatus.EXPORTED, ExportStatus.EXPORTED_MANUALLY)
PAYMENT_REF_PREFIX = "FS-P"
SERVER_VERSION = "FieldSync QuickBooks Desktop connector 1.0"
NOOP = "NoOp"
# The qbXML request processor's "could not parse the XML" (QBWC hands it to receiveResponseXML as hresult).
PARSE_ERROR_HRESULT = "0x80040400"
# A safety net: a session that has sent this many message sets stops (something keeps failing the same way).
MAX_REQUESTS_PER_SESSION = 2000
KIND_ENTITY = {
    Kind.CUSTOMER: "Customer",
    Kind.ITEM: "ItemService",
    Kind.INVOICE: "Invoice",
    Kind.PAYMENT: "ReceivePayment",
}
KIND_ORDER = (Kind.CUSTOMER, Kind.ITEM, Kind.INVOICE, Kind.PAYMENT)


def _lock_seconds() -> int:
    return int(getattr(settings, "QBWC_LOCK_SECONDS", 300))


class DesktopSetupError(ApplicationError):
    code = "desktop_setup"


# --- The connection and the .qwc file -----------------------------------------------------------------------------


def desktop_connection_get() -> DesktopConnection | None:
    return DesktopConnection.objects.order_by("pk").first()


def desktop_is_target() -> bool:
    """True when exports go to QuickBooks Desktop (the installation's switch)."""
    return DesktopConnection.objects.filter(use_desktop=True).exists()


@transaction.atomic
def desktop_connection_update(
    *,
    use_desktop: bool,
    income_account_name: str,
    deposit_account_name: str,
    run_every_minutes: int,
    username: str,
    payment_method_names: dict[str, str] | None = None,
) -> DesktopConnection:
    """Create or change the Desktop connection's settings. Turning Desktop on needs a Web Connector password."""
    connection = DesktopConnection.objects.select_for_update().order_by("pk").first() or DesktopConnection()
    if use_desktop != connection.use_desktop:
        # Switching while payments are queued for the other QuickBooks would let both engines claim them.
        pending = ExportBatchItem.objects.filter(outcome=Outcome.PENDING)
        # Payments, and invoices with nothing to pay exported on their own (Online only).
        payments = pending.exclude(payment=None).values("payment_id").distinct().count()
        invoices = pending.exclude(invoice=None).values("invoice_id").distinct().count()
        if waiting := payments + invoices:
            was = "QuickBooks Desktop" if connection.use_desktop else "QuickBooks Online"
            noun = "record" if invoices else "payment"
            raise DesktopSetupError(
                f"{waiting} {noun}{'s are' if waiting != 1 else ' is'} still waiting to be exported to {was}. "
                "Switch once the export log shows no batch running."
            )
    if use_desktop and not connection.password_hash:
        raise DesktopSetupError(
            "Set a Web Connector password before exporting to QuickBooks Desktop: the Web Connector needs it to log in."
        )
    connection.use_desktop = use_desktop
    connection.income_account_name = income_account_name.strip()
    connection.deposit_account_name = deposit_account_name.strip()
    connection.run_every_minutes = run_every_minutes
    connection.username = username.strip()
    if payment_method_names is not None:
        unknown = set(payment_method_names) - set(PAYMENT_METHOD_KEYS)
        if unknown:
            raise DesktopSetupError(f"Unknown payment method {', '.join(sorted(unknown))}.")
        connection.payment_method_names = payment_method_names
    connection.full_clean()
    connection.save()
    return connection


@transaction.atomic
def desktop_password_set(*, password: str) -> DesktopConnection:
    """Store the Web Connector password, hashed with Django's password hasher; the password itself is never kept."""
    if len(password) < PASSWORD_MIN_LENGTH or password.strip() != password:
        raise DesktopSetupError(
            f"Use a password of at least {PASSWORD_MIN_LENGTH} characters, without spaces at either end. "
            "You type it once into the Web Connector."
        )
    connection = DesktopConnection.objects.select_for_update().order_by("pk").first() or DesktopConnection()
    connection.password_hash = make_password(password)
    connection.full_clean()
    connection.save()
    return connection


@transaction.atomic
def desktop_company_forget() -> DesktopConnection:
    """Let the next Web Connector run bind another company file. What FieldSync knew of the old file's ListIDs and
    TxnIDs is dropped (it means nothing in another file); payments already exported stay exported."""
    connection = DesktopConnection.objects.select_for_update().order_by("pk").first()
    if connection is None or not connection.company_file:
        raise DesktopSetupError("No company file is connected yet.")
    if _pending_items(connection).filter(payment__export_status=ExportStatus.EXPORTING).exists():
        raise DesktopSetupError(
            "The Web Connector is exporting payments to this company file right now; wait for the run to finish."
        )
    DesktopObject.objects.filter(connection=connection).delete()
    connection.company_file = ""
    connection.save(update_fields=["company_file", "updated_at"])
    return connection


def qwc_file(*, connection: DesktopConnection, app_url: str, support_url: str) -> str:
    """The Web Connector's registration file (.qwc), per Intuit's QBWC Programmer's Guide, chapter "The QWC file".

    AppURL must be https, except for localhost (the Web Connector refuses plain http elsewhere), and AppSupport must
    be on the same host."""
    from urllib.parse import urlsplit
    from xml.sax.saxutils import escape

    url = urlsplit(app_url)
    if url.scheme != "https" and url.hostname not in ("localhost", "127.0.0.1"):
        raise DesktopSetupError(
            "The Web Connector only talks to https addresses (plain http is allowed for localhost only). "
            "Open this page through the https address of FieldSync and download the file again."
        )
    if urlsplit(support_url).hostname != url.hostname:
        raise DesktopSetupError("The support address must be on the same host as the Web Connector address.")
    values = {key: escape(value) for key, value in {"app_url": app_url, "support_url": support_url}.items()}
    return (
        '<?xml version="1.0"?>\n'
        "<QBWCXML>\n"
        f"  <AppName>{escape(connection.app_name)}</AppName>\n"
        "  <AppID></AppID>\n"
        f"  <AppURL>{values['app_url']}</AppURL>\n"
        "  <AppDescription>FieldSync exports payments with their invoices and customers.</AppDescription>\n"
        f"  <AppSupport>{values['support_url']}</AppSupport>\n"
        f"  <UserName>{escape(connection.username)}</UserName>\n"
        f"  <OwnerID>{connection.owner_id}</OwnerID>\n"
        f"  <FileID>{connection.file_id}</FileID>\n"
        "  <QBType>QBFS</QBType>\n"
        "  <Scheduler>\n"
        f"    <RunEveryNMinutes>{connection.run_every_minutes}</RunEveryNMinutes>\n"
        "  </Scheduler>\n"
        "  <IsReadOnly>false</IsReadOnly>\n"
        "</QBWCXML>\n"
    )


# --- Starting exports (the same intent records as Online) ---------------------------------------------------------


def _requested_by(user, api_client) -> str:
    if api_client is not None:
        return f"API client {api_client.name}"
    if user is not None:
        return user.get_full_name() or user.get_username()
    return ""


def _connection_for_export() -> DesktopConnection:
    connection = DesktopConnection.objects.filter(use_desktop=True).order_by("pk").first()
    if connection is None:
        raise DesktopSetupError("QuickBooks Desktop is not set up. Set it up on the QuickBooks Desktop page first.")
    return connection


@transaction.atomic
def desktop_export_batch_start(
    *,
    payments: "QuerySet[Payment] | list[int]",
    selection: str,
    user=None,
    api_client=None,
    source: str = ExportBatch.Source.PAGE,
) -> ExportBatch:
    """Ask for payments to be exported to QuickBooks Desktop; the Web Connector does the work at its next run.

    The same items as an Online batch: every payment sharing an invoice with a selected one comes too, held ones are
    SKIPPED with their reason, those already in QuickBooks LINKED, the rest QUEUED (compare-and-set, so a payment is
    queued once however many batches ask). Raises DesktopSetupError when Desktop is not set up, ApplicationError for
    an empty selection or unknown payments.
    """
    connection = _connection_for_export()
    if isinstance(payments, QuerySet):
        selected = list(payments.order_by().values_list("pk", flat=True))
    else:
        selected = sorted({int(pk) for pk in payments})
    if not selected:
        raise ApplicationError("Select at least one payment to export.", code="empty_selection")
    known = set()
    for start in range(0, len(selected), 2000):
        known.update(Payment.objects.filter(pk__in=selected[start : start + 2000]).values_list("pk", flat=True))
    if missing := [pk for pk in selected if pk not in known]:
        raise ApplicationError(
            f"No payment with id {', '.join(map(str, missing[:10]))}.",
            code="unknown_payment",
            extra={"missing": missing},
        )
    all_ids = billing_selectors.payment_ids_with_invoice_partners(payment_ids=selected)
    readiness = billing_selectors.payment_export_readiness_map(payment_ids=all_ids)
    statuses: dict[int, str] = {}
    for start in range(0, len(all_ids), 2000):
        statuses.update(Payment.objects.filter(pk__in=all_ids[start : start + 2000]).values_list("pk", "export_status"))
    batch = ExportBatch.objects.create(
        created_by=user,
        requested_by=_requested_by(user, api_client),
        source=source,
        selection=selection[:300],
        realm_id=connection.realm_key,
        waiting_reason="Waiting for the QuickBooks Web Connector's next run.",
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
        elif not ready.exportable:
            item.outcome, item.message = Outcome.SKIPPED, ready.held_reason
        elif status in QUEUEABLE:
            to_queue.append(pk)
        items.append(item)
    ExportBatchItem.objects.bulk_create(items, batch_size=2000)
    billing_services.payment_export_status_bulk_transition(
        payment_ids=to_queue,
        to_status=ExportStatus.QUEUED,
        expected_from=QUEUEABLE,
        note=f"Export batch #{batch.pk} (QuickBooks Desktop)",
        user=user,
    )
    _finish_batches(connection)
    batch.refresh_from_db()
    return batch


# --- The Web Connector protocol -----------------------------------------------------------------------------------


def qbwc_authenticate(*, username: str, password: str) -> list[str]:
    """[ticket, ""] to start work on the company file QuickBooks has open, [ticket, "none"] when there is nothing to
    do, ["", "nvu"] for a wrong user name or password (QBWC Programmer's Guide, authenticate)."""
    connection = desktop_connection_get()
    if connection is None or not connection.password_hash:
        return ["", "nvu"]
    # Both checks always run (no early exit that would tell a wrong user name from a wrong password by timing).
    right_user = secrets.compare_digest(username.encode(), connection.username.encode())
    right_password = check_password(password, connection.password_hash)
    valid = right_user and right_password
    if not valid:
        if connection is not None:
            _record_error(connection, "The Web Connector could not log in: wrong user name or password.")
        return ["", "nvu"]
    now = timezone.now()
    DesktopConnection.objects.filter(pk=connection.pk).update(last_contact_at=now)
    ticket = secrets.token_hex(20)
    has_work = _pending_items(connection).exists()
    DesktopSession.objects.create(
        connection=connection,
        ticket=ticket,
        state=DesktopSession.State.OPEN if has_work else DesktopSession.State.CLOSED,
        closed_at=None if has_work else now,
    )
    return [ticket, "" if has_work else "none"]


def _open_session(ticket: str) -> DesktopSession | None:
    if not ticket:
        return None
    return (
        DesktopSession.objects.select_related("connection")
        .filter(ticket=ticket, state=DesktopSession.State.OPEN)
        .first()
    )


def _session_error(session: DesktopSession, message: str, *, to_connection: bool = True) -> None:
    DesktopSession.objects.filter(pk=session.pk).update(last_error=message)
    if to_connection and message != NOOP:
        _record_error(session.connection, message)


def _record_error(connection: DesktopConnection, message: str) -> None:
    DesktopConnection.objects.filter(pk=connection.pk).update(last_error=message[:2000], last_error_at=timezone.now())


def qbwc_send_request(
    *, ticket: str, company_file: str, country: str, major_version: str, minor_version: str = ""
) -> str:
    """The next qbXML message set for this session, or "" (getLastError then says why, or "NoOp": come back)."""
    session = _open_session(ticket)
    if session is None:
        return ""
    connection = session.connection
    DesktopConnection.objects.filter(pk=connection.pk).update(last_contact_at=timezone.now())
    if country and country.upper() != "US":
        _session_error(
            session,
            f"This QuickBooks Desktop is the {country} edition; FieldSync exports to US editions only for now.",
        )
        return ""
    try:
        major = int(str(major_version).split(".")[0] or 0)
    except ValueError:
        major = 0
    if major < qbxml.QBXML_MAJOR_VERSION:
        _session_error(
            session,
            f"This QuickBooks Desktop understands qbXML {major_version}.{minor_version}; FieldSync needs "
            f"{qbxml.QBXML_VERSION} (QuickBooks Desktop 2014 or later). Update QuickBooks Desktop.",
        )
        return ""
    if connection.company_file and company_file and connection.company_file != company_file:
        _session_error(
            session,
            f"The Web Connector opened {company_file}, but FieldSync exports to {connection.company_file}. Open "
            "that company file in QuickBooks, or remove and re-add the .qwc file to switch companies.",
        )
        return ""
    if not connection.company_file and company_file:
        DesktopConnection.objects.filter(pk=connection.pk, company_file="").update(company_file=company_file[:500])
    DesktopSession.objects.filter(pk=session.pk).update(company_file=company_file[:500])

    if session.requests_sent >= MAX_REQUESTS_PER_SESSION:
        _session_error(session, "This Web Connector session has done enough for one run; the next run carries on.")
        return ""
    if not _lock_acquire(connection, ticket):
        _session_error(session, NOOP)  # another session has a message set out; the Web Connector asks again
        return ""
    try:
        _recover_unanswered(connection)
        built = _next_message_set(connection, session)
    except Exception:
        _lock_release(connection, ticket)
        raise
    if built is None:
        _lock_release(connection, ticket)
        _finish_batches(connection)
        _session_error(session, "Nothing is waiting for QuickBooks Desktop.", to_connection=False)
        return ""
    DesktopSession.objects.filter(pk=session.pk).update(requests_sent=session.requests_sent + 1)
    return built.qbxml


def qbwc_receive_response(*, ticket: str, response: str, hresult: str, message: str) -> int:
    """Apply QuickBooks' answer; return the percentage done (100: the session ends), or -1 for an unknown ticket."""
    session = _open_session(ticket)
    if session is None:
        return -1
    connection = session.connection
    DesktopConnection.objects.filter(pk=connection.pk).update(last_contact_at=timezone.now())
    request = (
        DesktopRequest.objects.filter(connection=connection, session=session, state=DesktopRequest.State.SENT)
        .order_by("-id")
        .first()
    )
    if request is not None:
        if hresult.lower() == PARSE_ERROR_HRESULT:
            # QuickBooks could not read what we sent: sending it again would fail the same way.
            _request_refused(request, f"QuickBooks Desktop could not read FieldSync's request ({message}).")
            _session_error(session, f"QuickBooks Desktop could not read FieldSync's request: {message}")
        elif hresult or not response:
            # No answer: QuickBooks may or may not have applied the adds. They are queried again by marker.
            words = f"QuickBooks did not answer ({hresult}: {message})" if hresult else "QuickBooks sent no answer"
            _request_lost(request, words)
            _session_error(session, f"{words}. FieldSync will check what QuickBooks saved and carry on.")
        else:
            _apply_response(connection, session, request, response)
    # Settled under the lease, so two sessions never settle the same payment at once.
    settled = _settle(connection)
    _lock_release(connection, ticket)
    if settled:
        DesktopSession.objects.filter(pk=session.pk).update(payments_done=session.payments_done + settled)
    _finish_batches(connection)
    return _percent_done(connection, session.payments_done + settled)


def qbwc_connection_error(*, ticket: str, hresult: str, message: str) -> str:
    """QuickBooks could not be opened (or the company file is busy): record it in plain words and end ("done")."""
    session = _open_session(ticket)
    if session is not None:
        words = _plain_connection_error(hresult, message)
        for request in DesktopRequest.objects.filter(session=session, state=DesktopRequest.State.SENT):
            _request_lost(request, words)
        _lock_release(session.connection, ticket)
        _session_error(session, words)
        DesktopSession.objects.filter(pk=session.pk).update(state=DesktopSession.State.FAILED, closed_at=timezone.now())
        _set_waiting(session.connection, words)
    return "done"


def _plain_connection_error(hresult: str, message: str) -> str:
    known = {
        "0x80040408": "QuickBooks Desktop could not open the company file (is it open in another mode or on "
        "another computer?).",
        "0x80040410": "The company file is open in single-user mode by someone else.",
        "0x80040418": "QuickBooks Desktop is not running and could not be started, or the company file is missing.",
    }
    return known.get((hresult or "").lower(), f"The Web Connector could not reach QuickBooks Desktop: {message}")


def qbwc_get_last_error(*, ticket: str) -> str:
    session = DesktopSession.objects.filter(ticket=ticket).first() if ticket else None
    if session is None:
        return "Unknown or expired ticket: the Web Connector must log in again."
    return session.last_error or "No error."


def qbwc_close_connection(*, ticket: str) -> str:
    session = _open_session(ticket)
    if session is None:
        return "OK"
    _lock_release(session.connection, ticket)
    DesktopSession.objects.filter(pk=session.pk).update(state=DesktopSession.State.CLOSED, closed_at=timezone.now())
    return f"OK: {session.payments_done} payment{'s' if session.payments_done != 1 else ''} done in this session."


# --- The lease: one message set outstanding per company -----------------------------------------------------------


def _lock_acquire(connection: DesktopConnection, ticket: str) -> bool:
    now = timezone.now()
    return bool(
        DesktopConnection.objects.filter(pk=connection.pk)
        .filter(Q(lock_ticket="") | Q(lock_ticket=ticket) | Q(lock_expires_at__lt=now))
        .update(lock_ticket=ticket, lock_expires_at=now + timedelta(seconds=_lock_seconds()))
    )


def _lock_release(connection: DesktopConnection, ticket: str) -> None:
    DesktopConnection.objects.filter(pk=connection.pk, lock_ticket=ticket).update(lock_ticket="", lock_expires_at=None)


def _request_lost(request: DesktopRequest, words: str) -> None:
    with transaction.atomic():
        DesktopRequest.objects.filter(pk=request.pk).update(
            state=DesktopRequest.State.LOST, error=words[:2000], answered_at=timezone.now()
        )
        DesktopObject.objects.filter(last_request=request, status=Status.ADD_SENT).update(status=Status.UNKNOWN)


def _request_refused(request: DesktopRequest, words: str) -> None:
    with transaction.atomic():
        DesktopRequest.objects.filter(pk=request.pk).update(
            state=DesktopRequest.State.ANSWERED, error=words[:2000], answered_at=timezone.now()
        )
        DesktopObject.objects.filter(pk__in=[e["object"] for e in request.entries]).update(
            status=Status.FAILED, error_code="qbxml_parse", error_message=words
        )


def _recover_unanswered(connection: DesktopConnection) -> None:
    """Under the lease no message set is outstanding, so one still SENT was never answered (its session died):
    whatever it added may be in QuickBooks, and is looked up by marker again before anything is re-added."""
    for request in DesktopRequest.objects.filter(connection=connection, state=DesktopRequest.State.SENT):
        _request_lost(request, "The Web Connector session ended before QuickBooks' answer arrived.")


# --- What to send next --------------------------------------------------------------------------------------------


def _pending_items(connection: DesktopConnection):
    return ExportBatchItem.objects.filter(outcome=Outcome.PENDING, batch__realm_id=connection.realm_key)


def _resolve_items(payment_id: int, outcome: str, *, message: str = "", error_code: str = "", qbo_id: str = ""):
    """Settle every pending item of a payment; later batches that asked for it too learn it was done by the first."""
    pending = list(ExportBatchItem.objects.filter(payment_id=payment_id, outcome=Outcome.PENDING).order_by("id"))
    for index, item in enumerate(pending):
        item.outcome, item.message, item.error_code, item.qbo_id = outcome, message, error_code, qbo_id
        if index and outcome == Outcome.CREATED:
            item.outcome, item.message = Outcome.LINKED, f"Exported by batch #{pending[0].batch_id}."
    ExportBatchItem.objects.bulk_update(pending, ["outcome", "message", "error_code", "qbo_id", "updated_at"])


def _finish_batches(connection: DesktopConnection) -> None:
    open_batches = ExportBatch.objects.filter(realm_id=connection.realm_key).exclude(status=ExportBatch.Status.FINISHED)
    open_batches.exclude(items__outcome=Outcome.PENDING).update(
        status=ExportBatch.Status.FINISHED, finished_at=timezone.now(), waiting_reason=""
    )


def _set_waiting(connection: DesktopConnection, reason: str) -> None:
    ExportBatch.objects.filter(realm_id=connection.realm_key).exclude(status=ExportBatch.Status.FINISHED).update(
        waiting_reason=reason[:300]
    )


def _in_progress_ids(connection: DesktopConnection) -> list[int]:
    return sorted(
        set(
            _pending_items(connection)
            .filter(payment__export_status=ExportStatus.EXPORTING)
            .values_list("payment_id", flat=True)
        )
    )


def _claim_next(connection: DesktopConnection) -> list[int]:
    """Claim the next payments (QUEUED -> EXPORTING), re-checking the fully-paid rule as the Online runner does.
    Each round settles the items of every payment it does not claim, so the loop ends."""
    while True:
        ids = _claim_candidates(connection)
        if not ids:
            return []
        if claimed := _claim(connection, ids):
            return claimed


def _claim_candidates(connection: DesktopConnection) -> list[int]:
    ids: list[int] = []
    pending = _pending_items(connection).order_by("batch_id", "payment__customer_id", "id")
    for payment_id in pending.values_list("payment_id", flat=True)[: CHUNK_SIZE * 4]:
        if payment_id not in ids:
            ids.append(payment_id)
        if len(ids) == CHUNK_SIZE:
            break
    return ids


def _claim(connection: DesktopConnection, ids: list[int]) -> list[int]:
    statuses = dict(Payment.objects.filter(pk__in=ids).values_list("pk", "export_status"))
    readiness = billing_selectors.payment_export_readiness_map(payment_ids=ids)
    queued = []
    for payment_id in ids:
        status = statuses[payment_id]
        if status in IN_QUICKBOOKS:
            _resolve_items(payment_id, Outcome.LINKED, message="Already in QuickBooks.")
        elif status != ExportStatus.QUEUED:
            _resolve_items(payment_id, Outcome.SKIPPED, message=f"No longer queued: it is {status.replace('_', ' ')}.")
        elif not readiness[payment_id].exportable:
            with transaction.atomic():
                billing_services.payment_export_status_transition(
                    payment_id=payment_id, to_status=ExportStatus.NOT_EXPORTED, note=readiness[payment_id].held_reason
                )
                _resolve_items(payment_id, Outcome.SKIPPED, message=readiness[payment_id].held_reason)
        else:
            queued.append(payment_id)
    claimed = billing_services.payment_export_status_bulk_transition(
        payment_ids=queued,
        to_status=ExportStatus.EXPORTING,
        expected_from=[ExportStatus.QUEUED],
        note="Claimed by a QuickBooks Web Connector session",
    )
    batch_ids = set(_pending_items(connection).filter(payment_id__in=claimed).values_list("batch_id", flat=True))
    ExportBatch.objects.filter(pk__in=batch_ids, status=ExportBatch.Status.QUEUED).update(
        status=ExportBatch.Status.RUNNING, started_at=timezone.now()
    )
    ExportBatch.objects.filter(pk__in=batch_ids).update(waiting_reason="")
    # A retried payment starts over: what QuickBooks refused last time is looked up again.
    _objects_for(connection, billing_selectors.payments_for_export(payment_ids=claimed), reset_failed=True)
    return claimed


@dataclass
class _Plan:
    """The objects a chunk of payments needs, and which payments need each."""

    objects: dict[tuple[str, str], DesktopObject]
    needs: dict[int, list[tuple[str, str]]]  # payment id -> keys of every object it needs, payment last
    depends: dict[tuple[str, str], list[tuple[str, str]]]  # object key -> keys it needs first
    payments: dict[int, Payment]
    invoices: dict[int, Invoice]
    problems: dict[int, tuple[str, str]] = field(default_factory=dict)  # payment id -> (code, message)


def customer_marker(customer, attempt: int) -> str:
    """A customer's Name in QuickBooks Desktop; after a clash with another list's name, our id is added."""
    base = qbxml.clean_name(customer.display_name, qbxml.CUSTOMER_NAME_MAX) or f"Customer {customer.pk}"
    if attempt == 0:
        return base
    suffix = f" (FS-{customer.pk})"
    return base[: qbxml.CUSTOMER_NAME_MAX - len(suffix)].rstrip() + suffix


def payment_marker(payment_id: int) -> str:
    return f"{PAYMENT_REF_PREFIX}{payment_id}"


def _objects_for(connection: DesktopConnection, payments: list[Payment], *, reset_failed: bool = False) -> _Plan:
    wanted: dict[tuple[str, str], str] = {}
    needs: dict[int, list[tuple[str, str]]] = {}
    depends: dict[tuple[str, str], list[tuple[str, str]]] = {}
    invoices: dict[int, Invoice] = {}
    problems: dict[int, tuple[str, str]] = {}
    for payment in payments:
        customer_key = (Kind.CUSTOMER, str(payment.customer_id))
        wanted[customer_key] = customer_marker(payment.customer, 0)
        keys = [customer_key]
        invoice_keys = []
        for invoice, _amount in payment_net_applications(payment):
            invoices[invoice.pk] = invoice
            invoice_key = (Kind.INVOICE, str(invoice.pk))
            item_keys = []
            for line in invoice.lines.all():
                item_key_ = (Kind.ITEM, item_key(line.service_name))
                wanted[item_key_] = qbxml.clean_name(line.service_name, qbxml.ITEM_NAME_MAX)
                item_keys.append(item_key_)
            wanted[invoice_key] = invoice.number
            depends[invoice_key] = [(Kind.CUSTOMER, str(invoice.customer_id)), *item_keys]
            wanted.setdefault((Kind.CUSTOMER, str(invoice.customer_id)), customer_marker(invoice.customer, 0))
            keys.extend([*item_keys])
            invoice_keys.append(invoice_key)
            if len(invoice.number) > qbxml.INVOICE_REF_MAX:
                problems[payment.pk] = (
                    "invoice_number_too_long",
                    f"Invoice number {invoice.number} is longer than the {qbxml.INVOICE_REF_MAX} characters QuickBooks "
                    "Desktop allows for an invoice number; it cannot be exported there as it is.",
                )
            elif invoice.sales_tax:
                problems[payment.pk] = (
                    "desktop_sales_tax",
                    f"{invoice.number} carries sales tax; FieldSync does not yet send sales tax to QuickBooks "
                    "Desktop. Enter this invoice and payment in QuickBooks by hand, then mark the payment exported "
                    "by hand.",
                )
        payment_key = (Kind.PAYMENT, str(payment.pk))
        wanted[payment_key] = payment_marker(payment.pk)
        depends[payment_key] = [customer_key, *invoice_keys]
        needs[payment.pk] = [*keys, *invoice_keys, payment_key]
    existing = {
        (o.kind, o.local_key): o
        for o in DesktopObject.objects.filter(connection=connection).filter(
            _keys_filter(list(wanted)) if wanted else Q(pk__in=[])
        )
    }
    missing = [
        DesktopObject(connection=connection, kind=kind, local_key=key, marker=marker[:100])
        for (kind, key), marker in wanted.items()
        if (kind, key) not in existing
    ]
    if missing:
        # Two sessions may create the same rows at once: the unique constraint keeps one, and we re-read.
        DesktopObject.objects.bulk_create(missing, ignore_conflicts=True)
        existing = {
            (o.kind, o.local_key): o
            for o in DesktopObject.objects.filter(connection=connection).filter(_keys_filter(list(wanted)))
        }
    if reset_failed:
        failed = [o.pk for o in existing.values() if o.status == Status.FAILED]
        if failed:
            DesktopObject.objects.filter(pk__in=failed).update(status=Status.UNKNOWN, name_attempt=0)
            for o in existing.values():
                if o.pk in failed:
                    o.status, o.name_attempt = Status.UNKNOWN, 0
                    if o.kind == Kind.CUSTOMER:
                        o.marker = wanted[(o.kind, o.local_key)]
                        o.save(update_fields=["marker"])
    return _Plan(
        objects=existing,
        needs=needs,
        depends=depends,
        payments={p.pk: p for p in payments},
        invoices=invoices,
        problems=problems,
    )


def _keys_filter(keys: list[tuple[str, str]]) -> Q:
    by_kind: dict[str, list[str]] = defaultdict(list)
    for kind, key in keys:
        by_kind[kind].append(key)
    condition = Q(pk__in=[])
    for kind, local_keys in by_kind.items():
        condition |= Q(kind=kind, local_key__in=local_keys)
    return condition


@dataclass
class _Built:
    qbxml: str
    request: DesktopRequest


def _next_message_set(connection: DesktopConnection, session: DesktopSession) -> _Built | None:
    """Queries for objects not looked up yet, else adds for objects found absent; customers first, then items,
    invoices and payments, each only once what it refers to is in QuickBooks."""
    for _round in range(20):  # settling a chunk frees room for the next one (bounded: a call stays short)
        ids = _in_progress_ids(connection) or _claim_next(connection)
        if not ids:
            return None
        plan = _objects_for(connection, billing_selectors.payments_for_export(payment_ids=ids))
        _fail_problems(connection, plan)
        for kind in KIND_ORDER:
            ready = [
                obj
                for key, obj in plan.objects.items()
                if key[0] == kind
                and obj.status in (Status.UNKNOWN, Status.ABSENT)
                and all(plan.objects[dep].status == Status.FOUND for dep in plan.depends.get(key, ()))
                and _needed_by_live_payment(plan, key)
            ]
            if not ready:
                continue
            unknown = [obj for obj in ready if obj.status == Status.UNKNOWN]
            if unknown:
                return _send(
                    connection, session, DesktopRequest.Operation.QUERY, kind, unknown[:MESSAGE_SET_SIZE], plan
                )
            return _send(connection, session, DesktopRequest.Operation.ADD, kind, ready[:MESSAGE_SET_SIZE], plan)
        if not _settle(connection):
            # Nothing to send and nothing settled: every payment left waits on something QuickBooks refused.
            return None
    return None


def _needed_by_live_payment(plan: _Plan, key: tuple[str, str]) -> bool:
    return any(key in keys for pid, keys in plan.needs.items() if pid not in plan.problems)


def _fail_problems(connection: DesktopConnection, plan: _Plan) -> None:
    for payment_id, (code, message) in plan.problems.items():
        _payment_failed(payment_id, code, message)


def _payment_failed(payment_id: int, code: str, message: str) -> None:
    with transaction.atomic():
        moved = billing_services.payment_export_status_bulk_transition(
            payment_ids=[payment_id],
            to_status=ExportStatus.FAILED,
            expected_from=[ExportStatus.EXPORTING],
            note=message,
        )
        if moved:
            _resolve_items(payment_id, Outcome.FAILED, message=message, error_code=code)
            ExportAttempt.objects.create(
                payment_id=payment_id,
                batch_id=_batch_of(payment_id),
                operation="check before sending",
                outcome=ExportAttempt.Outcome.ERROR,
                error_code=code,
                message=message,
            )


def _batch_of(payment_id: int) -> int | None:
    return (
        ExportBatchItem.objects.filter(payment_id=payment_id).order_by("-id").values_list("batch_id", flat=True).first()
    )


def _send(connection, session, operation: str, kind: str, objects: list[DesktopObject], plan: _Plan) -> _Built:
    entity = KIND_ENTITY[kind]
    elements, entries = [], []
    for obj in objects:
        request_id = str(obj.pk)
        if operation == DesktopRequest.Operation.QUERY:
            if kind in (Kind.CUSTOMER, Kind.ITEM):
                element = qbxml.list_query(entity, request_id, full_name=obj.marker)
            else:
                element = qbxml.txn_query(entity, request_id, ref_number=obj.marker)
        else:
            element = _add_element(connection, obj, plan, request_id)
        elements.append(element)
        entries.append({"object": obj.pk, "local_key": obj.local_key, "marker": obj.marker, "request": element.tag})
    text = qbxml.message_set(elements)
    with transaction.atomic():
        request = DesktopRequest.objects.create(
            connection=connection, session=session, operation=operation, kind=kind, entries=entries, qbxml=text
        )
        update = {"last_request": request}
        if operation == DesktopRequest.Operation.ADD:
            update["status"] = Status.ADD_SENT
        DesktopObject.objects.filter(pk__in=[o.pk for o in objects]).update(**update)
    return _Built(qbxml=text, request=request)


def _add_element(connection: DesktopConnection, obj: DesktopObject, plan: _Plan, request_id: str):
    objects = plan.objects
    if obj.kind == Kind.CUSTOMER:
        customer = next(p.customer for p in plan.payments.values() if str(p.customer_id) == obj.local_key)
        return qbxml.customer_add(
            request_id,
            qbxml.CustomerData(
                name=obj.marker,
                company_name=customer.company_name,
                address=(
                    customer.billing_line1,
                    customer.billing_line2,
                    customer.billing_city,
                    customer.billing_region,
                    customer.billing_postal_code,
                    customer.billing_country,
                ),
                phone=customer.phone,
                email=customer.email,
            ),
        )
    if obj.kind == Kind.ITEM:
        return qbxml.item_service_add(request_id, name=obj.marker, income_account=connection.income_account_name)
    if obj.kind == Kind.INVOICE:
        invoice = plan.invoices[int(obj.local_key)]
        return qbxml.invoice_add(
            request_id,
            qbxml.InvoiceData(
                customer_list_id=objects[(Kind.CUSTOMER, str(invoice.customer_id))].qb_id,
                txn_date=(invoice.issued_on or invoice.created_at.date()).isoformat(),
                ref_number=invoice.number,
                due_date=invoice.due_on.isoformat() if invoice.due_on else "",
                memo=invoice.memo,
                lines=[
                    qbxml.InvoiceLineData(
                        item_list_id=objects[(Kind.ITEM, item_key(line.service_name))].qb_id,
                        description=line.description or line.service_name,
                        quantity=line.quantity,
                        amount=line.amount,
                    )
                    for line in invoice.lines.all()
                ],
            ),
        )
    payment = plan.payments[int(obj.local_key)]
    memo = f"FieldSync payment #{payment.pk}"
    if payment.reference:
        memo += f"; reference {payment.reference}"
    if payment.memo:
        memo += f" - {payment.memo}"
    return qbxml.receive_payment_add(
        request_id,
        qbxml.PaymentData(
            customer_list_id=objects[(Kind.CUSTOMER, str(payment.customer_id))].qb_id,
            txn_date=payment.received_on.isoformat(),
            ref_number=obj.marker,
            total=payment_total(payment),
            applied=[
                (objects[(Kind.INVOICE, str(invoice.pk))].qb_id, amount)
                for invoice, amount in payment_net_applications(payment)
            ],
            payment_method=(connection.payment_method_names or {}).get(payment.method, ""),
            memo=memo,
            deposit_account=connection.deposit_account_name,
        ),
    )


# --- Applying answers ---------------------------------------------------------------------------------------------


def _apply_response(connection, session, request: DesktopRequest, response: str) -> None:
    try:
        results = qbxml.parse_response(response)
    except qbxml.QbxmlParseError as exc:
        _request_lost(request, str(exc))
        _session_error(session, str(exc))
        return
    objects = {o.pk: o for o in DesktopObject.objects.filter(pk__in=[e["object"] for e in request.entries])}
    attempts: list[tuple[DesktopObject, dict]] = []
    with transaction.atomic():
        for entry in request.entries:
            obj = objects.get(entry["object"])
            if obj is None:
                continue
            result = results.get(str(obj.pk))
            if result is None:  # stopped before it (stopOnError) or missing: look it up again
                if obj.status == Status.ADD_SENT:
                    obj.status = Status.UNKNOWN
                    obj.save(update_fields=["status", "updated_at"])
                continue
            attempts.append((obj, _apply_result(connection, request, obj, result)))
        DesktopRequest.objects.filter(pk=request.pk).update(
            state=DesktopRequest.State.ANSWERED, answered_at=timezone.now()
        )
    _record_attempts(connection, request, attempts)


def _apply_result(connection, request: DesktopRequest, obj: DesktopObject, result: qbxml.Result) -> dict:
    """Move one object along its state machine. Returns what to record in the attempt history."""
    what = f"{request.operation} {KIND_ENTITY[obj.kind]}"
    if request.operation == DesktopRequest.Operation.QUERY and result.not_found:
        obj.status = Status.ABSENT
        obj.save(update_fields=["status", "updated_at"])
        return {"operation": f"{what} by {obj.marker!r}: not there", "outcome": ExportAttempt.Outcome.OK}
    if result.ok and result.found:
        found = _pick(connection, obj, result.found)
        if isinstance(found, str):  # the marker belongs to something else
            return _refuse(obj, what, "marker_mismatch", found)
        if found is None:  # a customer of this name is already someone else's: try another name
            return _rename(obj, what, qbxml.STATUS_NAME_IN_USE, "The name is already linked to another customer.")
        obj.status, obj.qb_id, obj.edit_sequence = Status.FOUND, found.qb_id, found.edit_sequence
        obj.linked_existing = request.operation == DesktopRequest.Operation.QUERY
        obj.error_code = obj.error_message = ""
        try:
            with transaction.atomic():
                obj.save()
        except IntegrityError:
            return _refuse(obj, what, "duplicate", "QuickBooks returned an object already linked to another record.")
        outcome = ExportAttempt.Outcome.LINKED if obj.linked_existing else ExportAttempt.Outcome.OK
        return {"operation": what, "outcome": outcome, "qbo_id": found.qb_id}
    if result.status_code == qbxml.STATUS_NAME_IN_USE and obj.kind == Kind.CUSTOMER:
        return _rename(obj, what, result.status_code, result.message)
    if result.status_code == qbxml.STATUS_OBJECT_NOT_FOUND:
        # Something we had linked is gone from QuickBooks (deleted there): look everything up again.
        DesktopObject.objects.filter(connection=connection, kind__in=[Kind.CUSTOMER, Kind.ITEM, Kind.INVOICE]).filter(
            status=Status.FOUND, qb_id__in=_ids_in(request.qbxml)
        ).update(status=Status.UNKNOWN, qb_id="", edit_sequence="")
        obj.status = Status.UNKNOWN
        obj.save(update_fields=["status", "updated_at"])
        return {
            "operation": what,
            "outcome": ExportAttempt.Outcome.ERROR,
            "error_code": str(result.status_code),
            "message": f"{result.message} FieldSync looks it up again.",
        }
    return _refuse(obj, what, str(result.status_code), _plain(obj, result))


def _ids_in(text: str) -> list[str]:
    import re

    return re.findall(r"<(?:ListID|TxnID)>([^<]+)</", text)


def _pick(connection, obj: DesktopObject, found: list[qbxml.Found]):
    """Which returned object is ours. None: a customer whose name is taken by another of our customers. A string:
    why what QuickBooks holds under our marker is not ours."""
    taken = set(
        DesktopObject.objects.filter(connection=connection, kind=obj.kind, qb_id__in=[f.qb_id for f in found])
        .exclude(pk=obj.pk)
        .values_list("qb_id", flat=True)
    )
    candidates = [f for f in found if f.qb_id not in taken]
    if obj.kind == Kind.CUSTOMER:
        return candidates[0] if candidates else None
    if obj.kind == Kind.ITEM:
        return (
            candidates[0]
            if candidates
            else (
                f"Two services become the same QuickBooks Desktop item {obj.marker!r} (item names are cut to "
                f"{qbxml.ITEM_NAME_MAX} characters). Shorten one of the service names, then retry."
            )
        )
    if obj.kind == Kind.INVOICE:
        invoice = billing_selectors.invoice_get_with_balances(invoice_id=int(obj.local_key))
        customer = DesktopObject.objects.filter(
            connection=connection, kind=Kind.CUSTOMER, local_key=str(invoice.customer_id)
        ).first()
        for f in candidates:
            if customer and f.customer_list_id == customer.qb_id and f.total == invoice.total:
                return f
        return (
            f"QuickBooks Desktop already has an invoice numbered {invoice.number} for another customer or amount. "
            "Check it in QuickBooks; if it is this invoice, correct it there, otherwise renumber one of them."
        )
    payment = billing_selectors.payments_for_export(payment_ids=[int(obj.local_key)])[0]
    customer = DesktopObject.objects.filter(
        connection=connection, kind=Kind.CUSTOMER, local_key=str(payment.customer_id)
    ).first()
    for f in candidates:
        if customer and f.customer_list_id == customer.qb_id and f.total == payment_total(payment):
            return f
    return (
        f"QuickBooks Desktop already has a payment with reference {obj.marker} for a different amount. Check it in "
        "QuickBooks; FieldSync did not add another."
    )


def _rename(obj: DesktopObject, what: str, code, message: str) -> dict:
    if obj.name_attempt >= 1:
        return _refuse(
            obj,
            what,
            str(code),
            f"The customer name {obj.marker!r} is already used in QuickBooks Desktop by a vendor, an employee or "
            "another name (names are shared by all those lists). Rename one of them, then retry.",
        )
    customer = obj.local_key
    from billing.models import Customer

    obj.name_attempt += 1
    obj.marker = customer_marker(Customer.objects.get(pk=int(customer)), obj.name_attempt)
    obj.status = Status.UNKNOWN
    obj.save(update_fields=["name_attempt", "marker", "status", "updated_at"])
    return {
        "operation": what,
        "outcome": ExportAttempt.Outcome.ERROR,
        "error_code": str(code),
        "message": f"{message} Trying the name {obj.marker!r}.",
    }


def _refuse(obj: DesktopObject, what: str, code: str, message: str) -> dict:
    obj.status, obj.error_code, obj.error_message = Status.FAILED, code[:20], message
    obj.save(update_fields=["status", "error_code", "error_message", "updated_at"])
    return {"operation": what, "outcome": ExportAttempt.Outcome.ERROR, "error_code": code, "message": message}


def _plain(obj: DesktopObject, result: qbxml.Result) -> str:
    label = obj.get_kind_display().lower()
    if result.status_code == qbxml.STATUS_INVALID_REFERENCE:
        return (
            f"QuickBooks Desktop refused the {label} {obj.marker}: {result.message} Check the account and payment "
            "method names on the QuickBooks Desktop page, then retry."
        )
    if result.status_code == qbxml.STATUS_NAME_IN_USE:
        return (
            f"The name {obj.marker!r} is already used in QuickBooks Desktop by another kind of item or name. "
            "Rename one of them, then retry."
        )
    return f"QuickBooks Desktop refused the {label} {obj.marker} (code {result.status_code}): {result.message}"


def _record_attempts(connection, request: DesktopRequest, attempts: list[tuple[DesktopObject, dict]]) -> None:
    if not attempts:
        return
    ids = _in_progress_ids(connection)
    payments = billing_selectors.payments_for_export(payment_ids=ids) if ids else []
    plan = _objects_for(connection, payments) if payments else None
    batch_of = dict(
        _pending_items(connection).filter(payment_id__in=ids).order_by("id").values_list("payment_id", "batch_id")
    )
    rows = []
    for obj, fields in attempts:
        key = (obj.kind, obj.local_key)
        users = [pid for pid, keys in plan.needs.items() if key in keys] if plan else []
        for payment_id in users:
            rows.append(
                ExportAttempt(
                    payment_id=payment_id,
                    batch_id=batch_of.get(payment_id),
                    object_kind=obj.kind,
                    local_key=obj.local_key,
                    request_id=f"qbwc-{request.pk}-{obj.pk}",
                    operation=fields["operation"][:60],
                    outcome=fields["outcome"],
                    qbo_id=fields.get("qbo_id", "")[:32],
                    error_code=fields.get("error_code", "")[:40],
                    message=fields.get("message", ""),
                )
            )
    ExportAttempt.objects.bulk_create(rows)


def _settle(connection: DesktopConnection) -> int:
    """Payments whose received payment is in QuickBooks become EXPORTED; those waiting on something QuickBooks
    refused become FAILED with its words. Returns how many were settled."""
    ids = _in_progress_ids(connection)
    if not ids:
        return 0
    plan = _objects_for(connection, billing_selectors.payments_for_export(payment_ids=ids))
    settled = 0
    for payment_id in ids:
        if payment_id in plan.problems:
            continue
        payment_obj = plan.objects[(Kind.PAYMENT, str(payment_id))]
        if payment_obj.status == Status.FOUND:
            with transaction.atomic():
                if not _move(
                    payment_id,
                    ExportStatus.EXPORTED,
                    export_reference=payment_obj.qb_id,
                    note=f"QuickBooks Desktop payment {payment_obj.qb_id}",
                ):
                    continue
                _resolve_items(
                    payment_id,
                    Outcome.LINKED if payment_obj.linked_existing else Outcome.CREATED,
                    qbo_id=payment_obj.qb_id,
                    message="Found in QuickBooks Desktop." if payment_obj.linked_existing else "",
                )
            settled += 1
            continue
        failed = [plan.objects[key] for key in plan.needs[payment_id] if plan.objects[key].status == Status.FAILED]
        if failed:
            with transaction.atomic():
                if not _move(payment_id, ExportStatus.FAILED, note=failed[0].error_message[:500]):
                    continue
                _resolve_items(
                    payment_id, Outcome.FAILED, message=failed[0].error_message, error_code=failed[0].error_code
                )
            settled += 1
    return settled


def _move(payment_id: int, to_status: str, **fields) -> bool:
    """EXPORTING -> to_status as a compare-and-set: False when someone else settled the payment first."""
    try:
        billing_services.payment_export_status_transition(
            payment_id=payment_id, to_status=to_status, expected_from=[ExportStatus.EXPORTING], **fields
        )
    except billing_services.IllegalExportTransition:
        return False
    return True


def _percent_done(connection: DesktopConnection, done: int) -> int:
    remaining = _pending_items(connection).values("payment_id").distinct().count()
    if remaining == 0:
        return 100
    return max(1, min(99, int(100 * done / (done + remaining))))


# --- What the Desktop page shows ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DesktopStatus:
    connection: DesktopConnection | None
    waiting: int
    in_progress: int
    failed_recently: list[ExportBatchItem]
    last_session: DesktopSession | None


def desktop_status() -> DesktopStatus:
    connection = desktop_connection_get()
    if connection is None:
        return DesktopStatus(None, 0, 0, [], None)
    pending = _pending_items(connection)
    return DesktopStatus(
        connection=connection,
        waiting=pending.filter(payment__export_status=ExportStatus.QUEUED).values("payment_id").distinct().count(),
        in_progress=pending.filter(payment__export_status=ExportStatus.EXPORTING)
        .values("payment_id")
        .distinct()
        .count(),
        failed_recently=list(
            ExportBatchItem.objects.filter(batch__realm_id=connection.realm_key, outcome=Outcome.FAILED)
            .select_related("payment")
            .order_by("-id")[:10]
        ),
        last_session=DesktopSession.objects.filter(connection=connection).order_by("-id").first(),
    )
