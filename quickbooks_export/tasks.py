"""django-q2 entry points: they take ids, call a service, nothing else.

The ORM broker delivers a task at least once, so every task here is safe to run twice: the export runner holds a
per-company lease and works from the database (pending batch items, the outbox), never from task arguments.
"""

import logging
from datetime import timedelta

from django.utils import timezone
from django_q.models import Schedule
from django_q.tasks import async_task

from fieldsync.observability import get_request_id, request_id_bound

logger = logging.getLogger(__name__)

RUN_TASK = "quickbooks_export.tasks.export_run_task"


def export_run_task(realm_id: str, request_id: str | None = None) -> str:
    """Run the company's exporter (and, in threads, those of up to EXPORT_COMPANIES_PER_WORKER - 1 other companies
    with pending work and no runner); returns what the company's own run did. `request_id`: the id of the web request
    (or run) that queued this one, so the logs of the run and of its
    QuickBooks calls carry it (fieldsync.observability); a run queued by the sweep gets a fresh one."""
    from fieldsync.metrics import quickbooks_calls_flush

    from .runner_pool import export_runs_serve

    # The company's runner, and while it runs those of other companies waiting for one (runner_pool.py).
    with request_id_bound(request_id):
        try:
            results = export_runs_serve(realm_id=realm_id, request_id=request_id)
        finally:
            quickbooks_calls_flush()
        logger.info("Export runs from the task for company %s: %s", realm_id, results)
    return results[realm_id]


def enqueue_export_run(realm_id: str, *, delay: float = 0.0, request_id: str | None = None) -> None:
    """Queue a run of the company's exporter now, or after `delay` seconds (a one-off schedule), under `request_id`
    (default: the id of the request or task running now)."""
    request_id = request_id or get_request_id()
    if delay <= 0:
        async_task(RUN_TASK, realm_id, request_id=request_id, task_name=f"export-{realm_id}-{timezone.now():%H%M%S%f}")
        return
    Schedule.objects.create(
        func=RUN_TASK,
        args=repr(realm_id),
        kwargs=repr({"request_id": request_id}),
        schedule_type=Schedule.ONCE,
        repeats=1,
        next_run=timezone.now() + timedelta(seconds=delay),
        name=f"export-{realm_id}-retry-{timezone.now():%H%M%S%f}",
    )


def export_sweep_task() -> int:
    """Every minute: restart the exporter of every company that has pending work and no live runner (a lost task,
    a worker killed mid-run). Returns how many runs it queued."""
    from .services import companies_needing_a_run

    # QuickBooks Desktop companies ("qbd:…", see quickbooks_desktop) are never run from here: the Web Connector pulls.
    realms = [realm for realm in companies_needing_a_run() if not realm.startswith("qbd:")]
    for realm_id in realms:
        enqueue_export_run(realm_id)
    return len(realms)


def auto_export_task(trigger: str = "", realm_id: str | None = None) -> int | None:
    """Automatic export (on payment, hourly or nightly) of one company: queue what is newly ready; returns the batch id
    or None."""
    from .auto_export import auto_export_start

    batch = auto_export_start(realm_id=realm_id)
    logger.info("Automatic export (%s): %s", trigger or "asked", f"Export #{batch.pk}" if batch else "nothing new")
    return batch.pk if batch is not None else None


def auto_export_summary_task() -> int:
    """Daily: e-mail what failed or is held to the people who may export; returns how many were e-mailed."""
    from .auto_export import auto_export_summary_send

    return auto_export_summary_send()


UNDO_TASK = "quickbooks_export.tasks.export_undo_run_task"


def export_undo_run_task(undo_id: int) -> str:
    from .undo import export_undo_run

    return export_undo_run(undo_id=undo_id)


def enqueue_undo_run(undo_id: int, *, delay: float = 0.0) -> None:
    """Queue the voids of an undo now, or after `delay` seconds (the company's exporter was busy, or QuickBooks)."""
    if delay <= 0:
        async_task(UNDO_TASK, undo_id, task_name=f"undo-{undo_id}-{timezone.now():%H%M%S%f}")
        return
    Schedule.objects.create(
        func=UNDO_TASK,
        args=repr(undo_id),
        schedule_type=Schedule.ONCE,
        repeats=1,
        next_run=timezone.now() + timedelta(seconds=delay),
        name=f"undo-{undo_id}-retry-{timezone.now():%H%M%S%f}",
    )


def customer_update_push_task(customer_id: int) -> str:
    """A customer's details changed in FieldSync: send them to QuickBooks when that is safe (updates.py)."""
    from .updates import customer_update_push

    return customer_update_push(customer_id=customer_id)


def webhook_events_check_task() -> int:
    """QuickBooks notified changes: check the objects they name against QuickBooks and FieldSync (changes.py)."""
    from .changes import webhook_events_check

    return webhook_events_check()


def cdc_sweep_task() -> int:
    """Every 15 minutes: what changed in QuickBooks since the last sweep (cdc.py), in case a webhook was lost."""
    from .cdc import cdc_sweep

    return cdc_sweep()


def invoice_void_push_task(invoice_id: int) -> str:
    """An invoice was voided in FieldSync: void it in QuickBooks, or flag why not (voids.py)."""
    from .voids import VOID_TASK, invoice_void_push

    result = invoice_void_push(invoice_id=invoice_id)
    if result == "busy":  # an export of the company runs: try again shortly
        Schedule.objects.create(
            func=VOID_TASK,
            args=repr(invoice_id),
            schedule_type=Schedule.ONCE,
            repeats=1,
            next_run=timezone.now() + timedelta(seconds=30),
            name=f"invoice-void-{invoice_id}-retry-{timezone.now():%H%M%S%f}",
        )
    return result


def invoice_update_push_task(invoice_id: int) -> str:
    """An exported invoice's lines, tax or dates changed in FieldSync: send the change to QuickBooks, or flag why
    not (invoice_updates.py)."""
    from .invoice_updates import PUSH_TASK, invoice_update_push

    result = invoice_update_push(invoice_id=invoice_id)
    if result == "busy":  # an export of the company runs: try again shortly
        Schedule.objects.create(
            func=PUSH_TASK,
            args=repr(invoice_id),
            schedule_type=Schedule.ONCE,
            repeats=1,
            next_run=timezone.now() + timedelta(seconds=30),
            name=f"invoice-update-{invoice_id}-retry-{timezone.now():%H%M%S%f}",
        )
    return result


RECONCILIATION_TASK = "quickbooks_export.tasks.reconciliation_run_task"


def reconciliation_run_task(run_id: int) -> str:
    """Run a reconciliation someone asked for on the Reconciliation page (reconciliation.py)."""
    from fieldsync.metrics import quickbooks_calls_flush

    from .reconciliation import reconciliation_run

    try:
        return reconciliation_run(run_id=run_id).state
    finally:
        quickbooks_calls_flush()


def enqueue_reconciliation_run(run_id: int) -> None:
    async_task(RECONCILIATION_TASK, run_id, task_name=f"reconciliation-{run_id}-{timezone.now():%H%M%S%f}")


def reconciliation_nightly_task() -> list[int]:
    """Nightly (schedule of migration 0010): reconcile the last 35 days of each connected company; returns the runs'
    ids."""
    from fieldsync.metrics import quickbooks_calls_flush

    from .reconciliation import reconciliation_nightly

    try:
        runs = reconciliation_nightly()
    finally:
        quickbooks_calls_flush()
    return [run.pk for run in runs]
