"""django-q2's Redis broker (FIELDSYNC_Q_BROKER=redis): a real `manage.py qcluster` on Redis exports, and a task that
never reached it (what the Redis broker's at-most-once delivery can lose) is made good by the minute sweep.

Needs PostgreSQL (the worker process shares the test database) and a Redis at 127.0.0.1:6379 (.ci/run starts one);
skipped when either is missing.
"""

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
import redis
from django.db import connection
from django_q.brokers.redis_broker import Redis as RedisBroker
from django_q.conf import Conf
from django_q.models import Schedule
from django_q.tasks import async_task

from billing.models import Payment
from quickbooks_export.models import ExportBatch
from quickbooks_export.services import export_batch_start
from quickbooks_export.tasks import RUN_TASK
from tests.quickbooks_export.export.conftest import connect
from tests.quickbooks_export.export.test_workers import LOG_DIR, MANAGE, kill, paid_invoices, wait_for

REDIS_URL = "redis://127.0.0.1:6379/13"  # a database of its own on the shared Redis


def _redis_up() -> bool:
    try:
        return redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError:
        return False


pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not _redis_up(), reason="needs Redis at 127.0.0.1:6379 (.ci/run starts it)"),
]


@pytest.fixture
def cluster_name() -> str:
    """A queue of this test's own: other processes on the same Redis never see its tasks."""
    return f"fieldsync-test-{uuid.uuid4().hex[:8]}"


def start_redis_worker(server, cluster_name: str) -> subprocess.Popen:
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "fieldsync.settings.base",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "FIELDSYNC_Q_BROKER": "redis",
        "REDIS_URL": REDIS_URL,
        "FIELDSYNC_Q_CLUSTER_NAME": cluster_name,
        "QBO_ENVIRONMENT": "local",
        "QBO_SANDBOX_URL": server.base_url,
        "QBO_DISCOVERY_URL": server.discovery_url,
        "QBO_API_BASE_URL": server.base_url,
        "OAUTHLIB_INSECURE_TRANSPORT": "1",
        "FIELDSYNC_WORKERS": "1",
        "EXPORT_RUN_SECONDS": "6",
        "EXPORT_LEASE_SECONDS": "5",
        "FIELDSYNC_LOG_LEVEL": "WARNING",
    }
    log = open(LOG_DIR / f"redis-worker-{time.monotonic_ns()}.log", "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(  # noqa: S603
        [sys.executable, MANAGE, "qcluster"], env=env, start_new_session=True, stdout=log, stderr=subprocess.STDOUT
    )


def redis_broker(cluster_name: str) -> RedisBroker:
    broker = RedisBroker(list_key=cluster_name)
    broker.connection = redis.from_url(REDIS_URL)
    return broker


def test_a_qcluster_on_redis_exports_and_the_sweep_recovers_a_lost_task(
    qbo_sandbox_factory, settings, cluster_name, monkeypatch
):
    # django-q2 signs every task with the cluster's name as salt: the web process and the worker share
    # FIELDSYNC_Q_CLUSTER_NAME in a deployment, so this test process signs with the worker's name too.
    monkeypatch.setattr(Conf, "PREFIX", cluster_name)
    company = connect(qbo_sandbox_factory(latency_ms=5), settings)
    first = paid_invoices(20, customers=5)
    second = paid_invoices(20, customers=5)
    broker = redis_broker(cluster_name)
    broker.delete_queue()
    worker = start_redis_worker(company.server, cluster_name)
    try:
        # 1. Delivered through Redis: the run task pushed onto the cluster's Redis list.
        batch = export_batch_start(payments=[p.pk for p in first], selection="redis", source="api")
        async_task(RUN_TASK, batch.realm_id, request_id="redis-test-0001", broker=broker)
        wait_for(lambda: ExportBatch.objects.get(pk=batch.pk).status == "finished", 120, "the batch over Redis")

        # 2. Lost: this batch's run task went to the database queue, which this cluster never reads — what a task
        # popped from Redis by a worker that died looks like. The sweep (a database Schedule) restarts the company.
        lost = export_batch_start(payments=[p.pk for p in second], selection="lost task", source="api")
        Schedule.objects.update_or_create(
            name="quickbooks-export-sweep",
            defaults={
                "func": "quickbooks_export.tasks.export_sweep_task",
                "schedule_type": Schedule.MINUTES,
                "minutes": 1,
                "repeats": -1,
            },
        )
        wait_for(lambda: ExportBatch.objects.get(pk=lost.pk).status == "finished", 150, "the sweep to recover it")
    finally:
        kill(worker, signal.SIGTERM)
        broker.delete_queue()

    assert Payment.objects.filter(export_status=Payment.ExportStatus.EXPORTED).count() == 40
    qbo_payments = company.entities("Payment")
    assert len(qbo_payments) == 40
    assert len({p["PrivateNote"] for p in qbo_payments}) == 40  # each payment exactly once
