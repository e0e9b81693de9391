"""Automatic export: FieldSync exports by itself, with the same engine and the same log as a person pressing Export.

The company chooses on the QuickBooks page (AutoExportSettings, off by default):
- WHEN_PAID: billing tells us after the commit in which an invoice became fully paid (billing.hooks, registered in
  QuickbooksExportConfig.ready, so billing never imports this app) and we queue one automatic export task. A sweep
  every few minutes catches anything a lost task missed.
- HOURLY / NIGHTLY: a django-q2 schedule runs the same task.

Exactly once by construction: the task only records intent through services.export_batch_start, whose compare-and-set
moves each payment NOT_EXPORTED -> QUEUED once, however many tasks, sweeps and people ask at the same moment. The
settings row is locked while candidates are picked, so two automatic runs at once make one batch, not two.
Automatic runs pick only payments never tried (NOT_EXPORTED): a failed or held payment waits for a person, and the
daily summary e-mail tells the people who may export what is waiting for them.
"""

import logging
from datetime import datetime, time, timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.mail import send_mail
from django.db import connection as db_connection
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django_q.models import Schedule
from django_q.tasks import async_task

from billing import selectors as billing_selectors
from billing.models import Payment
from billing.services import business_unit_default
from fieldsync.exceptions import ApplicationError

from . import selectors as export_selectors
from .models import AutoExportSettings, ExportAttempt, ExportBatch, InvoiceExportHold, QuickBooksConnection
from .services import export_batch_start

logger = logging.getLogger(__name__)

Mode = AutoExportSettings.Mode
ExportStatus = Payment.ExportStatus

AUTO_EXPORT_TASK = "quickbooks_export.tasks.auto_export_task"
SUMMARY_TASK = "quickbooks_export.tasks.auto_export_summary_task"
AUTO_EXPORT_SCHEDULE = "quickbooks-automatic-export"  # one per company: see auto_export_schedule_name
SUMMARY_SCHEDULE = "quickbooks-automatic-export-summary"
# In WHEN_PAID mode the task is queued on payment; this sweep only catches what a lost task missed.
WHEN_PAID_SWEEP_MINUTES = 5
SUMMARY_AT = time(7, 0)  # local time of the daily summary e-mail
EXPORT_PERMISSION = ("quickbooks_export", "export_payments")
LISTED_IN_SUMMARY = 50  # payments named one by one in the e-mail; the rest are counted


def auto_export_settings_get(*, realm_id: str) -> AutoExportSettings:
    """The company's settings, or unsaved defaults (off) when nobody has chosen yet."""
    return AutoExportSettings.objects.filter(realm_id=realm_id).first() or AutoExportSettings(realm_id=realm_id)


@transaction.atomic
def auto_export_settings_update(*, realm_id: str, mode: str, nightly_at: time | None, user) -> AutoExportSettings:
    """Save the choice and create, change or delete the django-q2 schedules to match (in the same transaction).

    Raises ApplicationError for an unknown mode or a nightly export without a time."""
    if mode not in Mode.values:
        raise ApplicationError(f"“{mode}” is not a way to export automatically.", code="invalid_mode")
    if mode == Mode.NIGHTLY and nightly_at is None:
        raise ApplicationError("Choose the time of the nightly export.", code="nightly_time_missing")
    row = AutoExportSettings.objects.select_for_update().filter(realm_id=realm_id).first()
    row = row or AutoExportSettings(realm_id=realm_id)
    row.mode, row.nightly_at, row.updated_by = mode, nightly_at if mode == Mode.NIGHTLY else None, user
    row.full_clean()
    row.save()
    _schedules_sync(row)
    return row


def _next_local(at: time, now: datetime) -> datetime:
    """The next moment, after `now`, at which the local clock shows `at`."""
    local_now = timezone.localtime(now)
    candidate = timezone.make_aware(datetime.combine(local_now.date(), at))
    if candidate <= local_now:
        candidate = timezone.make_aware(datetime.combine(local_now.date() + timedelta(days=1), at))
    return candidate


def auto_export_schedule_name(realm_id: str) -> str:
    """Each company (so each business unit) exports on its own schedule, in its own mode."""
    return f"{AUTO_EXPORT_SCHEDULE}-{realm_id}"


def _schedules_sync(row: AutoExportSettings) -> None:
    now = timezone.now()
    name = auto_export_schedule_name(row.realm_id)
    # The installation-wide schedule of before business units (runs the only unit's export); its company's own
    # replaces it.
    Schedule.objects.filter(name=AUTO_EXPORT_SCHEDULE).delete()
    if row.mode == Mode.OFF:
        Schedule.objects.filter(name=name).delete()
        # The summary covers every unit: it stops with the last company exporting automatically.
        if not AutoExportSettings.objects.exclude(mode=Mode.OFF).exists():
            Schedule.objects.filter(name=SUMMARY_SCHEDULE).delete()
        return
    if row.mode == Mode.WHEN_PAID:
        timing = {
            "schedule_type": Schedule.MINUTES,
            "minutes": WHEN_PAID_SWEEP_MINUTES,
            "next_run": now + timedelta(minutes=1),
        }
    elif row.mode == Mode.HOURLY:
        timing = {
            "schedule_type": Schedule.HOURLY,
            "minutes": None,
            "next_run": now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1),
        }
    else:
        timing = {"schedule_type": Schedule.DAILY, "minutes": None, "next_run": _next_local(row.nightly_at, now)}
    Schedule.objects.update_or_create(
        name=name,
        defaults={"func": AUTO_EXPORT_TASK, "args": repr((row.mode, row.realm_id)), "repeats": -1, **timing},
    )
    Schedule.objects.update_or_create(
        name=SUMMARY_SCHEDULE,
        defaults={
            "func": SUMMARY_TASK,
            "schedule_type": Schedule.DAILY,
            "repeats": -1,
            "next_run": _next_local(SUMMARY_AT, now),
        },
    )


# The company of an invoice's business unit, when it exports WHEN_PAID: one statement, written out because this
# runs after every payment's commit and building it with the ORM cost more CPU than running it. A unit has at most
# one current connection and a company one settings row (unique constraints), so at most one row comes back.
_WHEN_PAID_COMPANY_OF_INVOICE_SQL = (
    "SELECT c.realm_id FROM quickbooks_export_quickbooksconnection c"
    " INNER JOIN billing_invoice i ON i.business_unit_id = c.business_unit_id"
    " INNER JOIN quickbooks_export_autoexportsettings s ON s.realm_id = c.realm_id"
    " WHERE i.id = %s AND c.is_current AND s.mode = %s"
)


def invoice_paid_listener(invoice_id: int) -> None:
    """billing.hooks listener (after commit): when the company of the invoice's business unit exports WHEN_PAID,
    queue one automatic export task for that company.

    One query; the export itself runs in the worker, never in the request that recorded the payment."""
    with db_connection.cursor() as cursor:
        cursor.execute(_WHEN_PAID_COMPANY_OF_INVOICE_SQL, [invoice_id, Mode.WHEN_PAID.value])
        row = cursor.fetchone()
    if row is not None:
        async_task(AUTO_EXPORT_TASK, Mode.WHEN_PAID, row[0], task_name=f"auto-export-invoice-{invoice_id}")


def _exports_go_to_desktop() -> bool:
    """Automatic export drives QuickBooks Online. When the installation exports to QuickBooks Desktop instead, the
    Web Connector's own schedule is what runs exports, and an automatic run must never post to the Online company
    that may still be connected."""
    from quickbooks_desktop.services import desktop_is_target  # the Desktop app builds on this one: import late

    return desktop_is_target()


def auto_export_start(*, realm_id: str | None = None) -> ExportBatch | None:
    """Queue, in one batch with source AUTOMATIC, every payment of the company's business unit that is ready and was
    never tried. `realm_id` None: the only unit's company (a schedule made before business units).

    Returns the batch, or None when automatic export is off, the company is not connected, or nothing is new. Safe to
    run any number of times at once (see the module docstring)."""
    current = QuickBooksConnection.objects.filter(is_current=True)
    if realm_id is not None:
        current = current.filter(realm_id=realm_id)
    else:
        current = current.filter(business_unit=business_unit_default())
    connection = current.values("realm_id", "business_unit_id").first()
    if connection is None or _exports_go_to_desktop():
        return None
    realm_id = connection["realm_id"]
    with transaction.atomic():
        row = AutoExportSettings.objects.select_for_update().filter(realm_id=realm_id).first()
        if row is None or row.mode == Mode.OFF:
            return None
        candidates = list(
            billing_selectors.payment_filter_exportable(
                Payment.objects.filter(
                    export_status=ExportStatus.NOT_EXPORTED, business_unit_id=connection["business_unit_id"]
                )
            )
            .order_by()
            .values_list("pk", flat=True)
        )
        # A $0.00 invoice with no payment is settled at issue: it goes on its own, once, when never tried before.
        invoices = list(
            export_selectors.invoices_to_export_alone(realm_id=realm_id, never_tried=True)
            .order_by()
            .values_list("pk", flat=True)
        )
        if not candidates and not invoices:
            return None
        why = {Mode.WHEN_PAID: "fully paid invoices", Mode.HOURLY: "hourly", Mode.NIGHTLY: "nightly"}[row.mode]
        ready = [f"{len(candidates)} payment{'s' if len(candidates) != 1 else ''}"] if candidates else []
        if invoices:
            ready.append(f"{len(invoices)} invoice{'s' if len(invoices) != 1 else ''} with nothing to pay")
        return export_batch_start(
            payments=candidates,
            invoices=invoices,
            selection=f"automatic ({why}): {' and '.join(ready)} ready",
            source=ExportBatch.Source.AUTOMATIC,
        )


# --- The daily summary ----------------------------------------------------------------------------------------------


def _export_recipients() -> list[str]:
    permission = Permission.objects.get(content_type__app_label=EXPORT_PERMISSION[0], codename=EXPORT_PERMISSION[1])
    users = get_user_model().objects.filter(is_active=True).exclude(email="")
    users = users.filter(
        Q(is_superuser=True) | Q(user_permissions=permission) | Q(groups__permissions=permission)
    ).distinct()
    return sorted(users.values_list("email", flat=True))


def auto_export_summary_build() -> tuple[str, str] | None:
    """(subject, body) of the summary of payments that failed or are on hold, or None when nothing waits.

    A fixed number of queries whatever the number of payments (the first LISTED_IN_SUMMARY are named)."""
    waiting = Payment.objects.filter(export_status__in=[ExportStatus.FAILED, ExportStatus.ON_HOLD])
    failed_count = waiting.filter(export_status=ExportStatus.FAILED).count()
    held_count = waiting.filter(export_status=ExportStatus.ON_HOLD).count()
    failed_invoices = export_selectors.invoice_items_failed_waiting()
    failed_invoice_count = failed_invoices.count()
    if not failed_count and not held_count and not failed_invoice_count:
        return None
    listed = list(waiting.select_related("customer").order_by("export_status", "pk")[:LISTED_IN_SUMMARY])
    listed_ids = [p.pk for p in listed]
    failures: dict[int, str] = {}
    for payment_id, message in (
        ExportAttempt.objects.filter(payment_id__in=listed_ids, outcome=ExportAttempt.Outcome.ERROR)
        .order_by("payment_id", "-at", "-id")
        .values_list("payment_id", "message")
    ):
        failures.setdefault(payment_id, message)
    holds: dict[int, str] = {}
    for payment_id, message in InvoiceExportHold.objects.filter(
        state=InvoiceExportHold.State.OPEN, invoice__applications__payment_id__in=listed_ids
    ).values_list("invoice__applications__payment_id", "message"):
        holds.setdefault(payment_id, message)

    parts = []
    if failed_count or failed_invoice_count:
        parts.append(f"{failed_count + failed_invoice_count} failed")
    if held_count:
        parts.append(f"{held_count} on hold")
    subject = f"FieldSync: {' and '.join(parts)} — QuickBooks export needs you"
    lines = [
        "These did not go to QuickBooks and wait for someone. Open each one in FieldSync to see what to do.",
        "",
    ]
    for payment in listed:
        if payment.export_status == ExportStatus.FAILED:
            reason = failures.get(payment.pk, "The export failed.")
            state = "Failed"
        else:
            reason = holds.get(payment.pk, "On hold.")
            state = "On hold"
        lines.append(
            f"- {state}: payment #{payment.pk} from {payment.customer.display_name}, "
            f"{payment.amount} {payment.currency}: {reason} "
            f"({reverse('exports:payment_detail', args=[payment.pk])})"
        )
    if (rest := failed_count + held_count - len(listed)) > 0:
        lines.append(f"- and {rest} more: see the Payments page filtered on failed or held.")
    for item in failed_invoices[:LISTED_IN_SUMMARY]:
        lines.append(
            f"- Failed: invoice {item.invoice.number} (nothing to pay) for {item.invoice.customer.display_name}: "
            f"{item.message} ({reverse('records:invoice_detail', args=[item.invoice_id])})"
        )
    if (rest := failed_invoice_count - LISTED_IN_SUMMARY) > 0:
        lines.append(f"- and {rest} more invoices: see the export log.")
    return subject, "\n".join(lines) + "\n"


def auto_export_summary_send() -> int:
    """E-mail the summary to every active user who may export (and has an address). Returns how many got it."""
    summary = auto_export_summary_build()
    if summary is None:
        return 0
    recipients = _export_recipients()
    if not recipients:
        logger.warning("Automatic export summary: payments wait, but nobody with the export permission has an e-mail")
        return 0
    subject, body = summary
    send_mail(subject, body, None, recipients)
    return len(recipients)
