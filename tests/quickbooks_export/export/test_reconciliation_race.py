"""Two "Reconcile now" for the same company at the same moment: one run starts, the other is told one is under way
(PostgreSQL: real row locks and concurrent transactions)."""

import contextlib
import datetime
import threading

import pytest
from django.db.models.signals import pre_save

from fieldsync.exceptions import ConflictError
from quickbooks_export.models import ReconciliationRun
from quickbooks_export.reconciliation import reconciliation_start
from tests.concurrency import run_at_once

from .conftest import connect

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
NOVEMBER = {"date_from": datetime.date(2026, 11, 1), "date_to": datetime.date(2026, 11, 30)}


def test_two_clicks_at_once_start_one_run(qbo_sandbox, settings):
    connect(qbo_sandbox, settings)
    # Hold each start between its "is a run under way?" and its insert until the other has got as far (or 2 s
    # passed: with the guard the other waits on the company's lock, before its check). Without the guard both pass
    # the check here and both insert.
    both_checked = threading.Barrier(2, timeout=2)

    def hold(sender, instance, **kwargs):
        if instance.pk is None:
            with contextlib.suppress(threading.BrokenBarrierError):
                both_checked.wait()

    pre_save.connect(hold, sender=ReconciliationRun)
    try:
        results = run_at_once(*(lambda: reconciliation_start(**NOVEMBER, trigger="page", enqueue=False),) * 2)
    finally:
        pre_save.disconnect(hold, sender=ReconciliationRun)

    [run] = ReconciliationRun.objects.all()
    started = [r for r in results if isinstance(r, ReconciliationRun)]
    refused = [r for r in results if isinstance(r, ConflictError)]
    assert [r.pk for r in started] == [run.pk] and len(refused) == 1, results
    assert refused[0].code == "reconciliation_busy" and refused[0].extra == {"run_id": run.pk}
    assert f"Reconciliation #{run.pk} is still under way" in refused[0].message
