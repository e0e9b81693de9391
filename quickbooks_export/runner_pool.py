"""Several companies' export runners in one worker, each in a thread of its own.

A company's runner spends most of its run waiting for that company's QuickBooks budget (36 batch requests a minute,
limiter.py). Held in a django-q2 worker for the whole run, that wait kept the worker from anything else: with W
workers, only W companies exported at once. An export task now serves up to EXPORT_COMPANIES_PER_WORKER companies:
the one it was queued for plus others that have pending work and no live runner, each an ordinary `export_run` in a
thread. While one thread sleeps for its company's budget (time.sleep releases the GIL), the others send theirs.

Why threads of ordinary runners, and not one loop stepping several companies: nothing about exactly-once changes.
Each thread is a complete runner with its own lease (taken with the same atomic claim, renewed before every request,
checked inside every outbox and mapping write), its own QuickBooks client and its own database connection (Django's
are per thread; closed when the thread ends). Outbox, request ids, the claim of payments and "never call QuickBooks
inside a transaction" are the runner's, untouched. Two workers that pick the same company race for its lease as two
tasks always did: one wins, the other's thread returns "busy" at once.

If the worker dies, every company it served is left exactly as a dead single runner leaves one: its lease expires
and the minute sweep (tasks.export_sweep_task) queues a new run, which replays the outbox.

The task stays within its time budget (EXPORT_RUN_SECONDS, below the cluster's task timeout): every thread gets what
is left of it as its run time, and no thread starts when too little is left. A runner whose time is up queues its
own follow-up task, as before.
"""

import logging
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from django.conf import settings
from django.db import connections

from fieldsync.observability import request_id_bound

logger = logging.getLogger(__name__)

# How often the pool looks for other companies to serve while its threads run (one indexed query each time).
LOOK_EVERY_SECONDS = 2.0
# A company is not taken on with less than this share of the task's time left: its run would end before it
# exported a batch, and its own next task does better.
MIN_SHARE_LEFT = 0.1

_active = 0  # runner threads alive in this process (what the tests and the benchmark read)
_active_lock = threading.Lock()


def runner_threads_active() -> int:
    return _active


def export_runs_serve(*, realm_id: str, request_id: str | None = None, run_seconds: float | None = None) -> dict:
    """Run the exporter of `realm_id` and, while it runs, of up to EXPORT_COMPANIES_PER_WORKER - 1 other companies
    that have pending export items and no live runner, each in its own thread. Returns company -> result of its run
    ("busy" when another runner held it). Blocks until every thread has finished."""
    from .services import companies_needing_a_run, export_run

    run_seconds = settings.EXPORT_RUN_SECONDS if run_seconds is None else run_seconds
    width = max(1, settings.EXPORT_COMPANIES_PER_WORKER)
    if width == 1:  # one company per worker: no threads, the run as it always was
        return {realm_id: export_run(realm_id=realm_id, run_seconds=run_seconds)}
    deadline = time.monotonic() + run_seconds
    results: dict[str, str] = {}
    failure: Exception | None = None
    running: dict[Future, str] = {}
    with ThreadPoolExecutor(max_workers=width, thread_name_prefix="export-runner") as pool:

        def start(realm: str) -> None:
            left = deadline - time.monotonic()
            running[pool.submit(_run_in_thread, realm, request_id, left)] = realm

        start(realm_id)
        tried = {realm_id}
        while running:
            left = deadline - time.monotonic()
            if len(running) < width and left > MIN_SHARE_LEFT * run_seconds:
                for realm in companies_needing_a_run():
                    if len(running) >= width:
                        break
                    if realm in tried or realm.startswith("qbd:"):  # Desktop companies are pulled, never run here
                        continue
                    tried.add(realm)
                    start(realm)
            done, _ = wait(list(running), timeout=LOOK_EVERY_SECONDS, return_when=FIRST_COMPLETED)
            for future in done:
                realm = running.pop(future)
                try:
                    results[realm] = future.result()
                except Exception as exc:  # one company's failure must not stop the others' runs
                    if realm == realm_id:
                        failure = exc
                    else:
                        logger.exception("Export runner of company %s failed", realm, exc_info=exc)
                    results[realm] = "error"
    # Each company is taken on once per task: one that stopped for a person ("waiting") is not spun again here.
    if failure is not None:
        raise failure  # the task's own company: django-q2 records the failure as it always did
    return results


def _run_in_thread(realm_id: str, request_id: str | None, run_seconds: float) -> str:
    global _active
    from .services import export_run

    with _active_lock:
        _active += 1
    try:
        with request_id_bound(request_id):
            return export_run(realm_id=realm_id, run_seconds=max(run_seconds, 0.0))
    finally:
        with _active_lock:
            _active -= 1
        connections.close_all()  # this thread's connections only (Django keeps them per thread)
