"""Posting payments through the REST API under gunicorn with PostgreSQL: requests per second and latency.

    .venv/bin/python bench/api.py [--requests 2000] [--concurrency 8] [--workers 2 --threads 4 --worker-class gthread]
    .venv/bin/python bench/api.py --concurrency 1 --requests 500        # one client's latency
    .venv/bin/python bench/api.py --worker-class sync --workers 4 --no-keep-alive   # the earlier configuration

Creates a fresh PostgreSQL database (fieldsync_bench_api on 127.0.0.1:5432 unless BENCH_DATABASE_URL says
otherwise), one customer with --requests open invoices and an API client, starts gunicorn on a free port, and posts
one payment per invoice from --concurrency client threads, each with its own Idempotency-Key (the real path: token
check, idempotency claim, the billing service with its row locks, the stored response). Prints throughput, latency
percentiles and errors. The load generator shares the machine's 2 cores with gunicorn and PostgreSQL; figures only.

The defaults are the recommended deployment (docs/production.md): gthread workers (2 processes x 4 threads on 2
cores) and clients that keep their HTTP/1.1 connection open between requests, as real API clients do (a new TCP
connection per request is --no-keep-alive; gunicorn's sync workers close the connection after every answer anyway).
Before the load it prints the conditions a rerun needs: date, commit, load average, gunicorn settings, and the SQL
statements and COMMITs of one POST (in-process, after a warm-up); after it, the load average again.
"""

import argparse
import datetime
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

from benchutil import ROOT, free_port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes (default: one per core)")
    parser.add_argument("--worker-class", default="gthread", choices=["gthread", "sync"], help="gunicorn worker class")
    parser.add_argument("--threads", type=int, default=4, help="threads per gthread worker")
    parser.add_argument(
        "--keep-alive",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="each client keeps one HTTP/1.1 connection open (--no-keep-alive: a new connection per request)",
    )
    parser.add_argument("--redis", action="store_true", help="REDIS_URL=redis://127.0.0.1:6379/12: Redis cache")
    parser.add_argument(
        "--profile", type=int, default=0, metavar="N", help="instead: N requests in-process, SQL and pyinstrument"
    )
    args = parser.parse_args()

    database_url = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/fieldsync_bench_api")
    name = database_url.rsplit("/", 1)[1]
    subprocess.run(["dropdb", "--if-exists", "-h", "127.0.0.1", "-U", "postgres", name], check=True)  # noqa: S607
    subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", name], check=True)  # noqa: S607
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DJANGO_SETTINGS_MODULE": "fieldsync.settings.base",
        "DJANGO_DEBUG": "false",
        "FIELDSYNC_LOG_LEVEL": "WARNING",
        # One client posts as fast as it can: measure the API, not its throttle (600/minute per client by default).
        "FIELDSYNC_API_RATE_PER_CLIENT": "1000000/minute",
    }
    if args.redis:
        env["REDIS_URL"] = "redis://127.0.0.1:6379/12"  # a database of its own on the shared Redis
    os.environ.update(env)
    token, numbers = prepare(args.requests + 2)
    if args.profile:
        profile(token, numbers[: args.profile])
        return

    print_conditions(args)
    statements, commits, own = count_statements(token, numbers[:2])
    print(
        f"one POST        {statements} SQL statements, {commits} COMMIT(s), and writes committing on their own "
        f"(autocommit): {', '.join(own) or 'none'} (in-process, after a warm-up)"
    )
    port = free_port()
    command = [
        str(Path(sys.executable).parent / "gunicorn"),
        "fieldsync.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(args.workers),
        "--worker-class",
        args.worker_class,
        "--log-level",
        "warning",
    ]
    if args.worker_class == "gthread":
        command += ["--threads", str(args.threads)]
    gunicorn = subprocess.Popen(command, cwd=ROOT, env=env)  # noqa: S603
    try:
        wait_until_up(port)
        run_load(port, token, numbers[2:], args)
    finally:
        gunicorn.terminate()
        gunicorn.wait(timeout=20)
    print(f"load average    {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min) after the run")


def print_conditions(args) -> None:
    commit = subprocess.run(  # noqa: S603
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    print(f"date            {now}, commit {commit or '?'}, {os.cpu_count()} CPUs")
    print(f"load average    {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min) before the run")
    threads = f" x {args.threads} threads" if args.worker_class == "gthread" else ""
    print(
        f"gunicorn        {args.workers} {args.worker_class} workers{threads}; clients: {args.concurrency}, "
        f"{'one kept-alive connection each' if args.keep_alive else 'a new connection per request'}"
    )


def count_statements(token: str, numbers: list[str]) -> tuple[int, int, list[str]]:
    """SQL statements, COMMITs and the tables of autocommit writes of one POST in this process (the first of
    `numbers` warms up). fieldsync_apiratecount (the throttle's count) is UNLOGGED on PostgreSQL: no WAL flush."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Bearer {token}")
    for number in numbers:
        with CaptureQueriesContext(connection) as queries:
            response = client.post(
                "/api/v1/payments/",
                _payment_body(number),
                content_type="application/json",
                HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
            )
        assert response.status_code == 201, response.content
    connection.close()  # gunicorn's workers open their own
    sql = [query["sql"].strip().upper() for query in queries.captured_queries]
    return len(sql), sum(1 for statement in sql if statement == "COMMIT"), _autocommits(sql)


def _autocommits(sql: list[str]) -> list[str]:
    """The tables of writes outside BEGIN ... COMMIT: each commits on its own (and waits for a WAL flush unless its
    table is UNLOGGED)."""
    tables, depth = [], 0
    for statement in sql:
        words = statement.replace('"', "").split()
        if statement == "BEGIN":
            depth += 1
        elif statement in ("COMMIT", "ROLLBACK"):
            depth -= 1
        elif depth == 0 and words[0] in ("INSERT", "UPDATE", "DELETE"):
            tables.append(words[2].lower() if words[0] in ("INSERT", "DELETE") else words[1].lower())
    return tables


def prepare(count: int) -> tuple[str, list[str]]:
    import django

    django.setup()
    from django.core.management import call_command

    from billing import services
    from billing.models import Invoice, InvoiceLine
    from fieldsync.api.tokens import api_client_create

    call_command("migrate", verbosity=0)
    customer = services.customer_create(display_name="Bench Cooling Co.", email="ap@benchcooling.example")
    invoices = Invoice.objects.bulk_create(
        [
            Invoice(
                customer=customer,
                business_unit=customer.business_unit,
                number=f"B-{i:06d}",
                status=Invoice.Status.OPEN,
            )
            for i in range(count)
        ]
    )
    InvoiceLine.objects.bulk_create(
        [InvoiceLine(invoice=inv, service_name="Labor", unit_price="120.00", amount="120.00") for inv in invoices]
    )
    _, token = api_client_create(name="bench")
    return token, [inv.number for inv in invoices]


def _payment_body(number: str) -> str:
    return json.dumps(
        {
            "invoice": number,
            "amount": "120.00",
            "method": "card",
            "received_on": "2026-11-20",
            "reference": f"ch_{number}",
        }
    )


def profile(token: str, numbers: list[str]) -> None:
    """Where one request's time goes: its SQL statements (the first request after a warm-up) and a pyinstrument
    profile of the rest, in this process (no gunicorn, no network)."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from pyinstrument import Profiler

    client = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Bearer {token}")

    def post(number: str) -> None:
        response = client.post(
            "/api/v1/payments/",
            _payment_body(number),
            content_type="application/json",
            HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
        )
        assert response.status_code == 201, response.content

    post(numbers[0])  # warm-up: imports, connections, caches
    with CaptureQueriesContext(connection) as queries:
        post(numbers[1])
    print(f"SQL statements for one POST /api/v1/payments/: {len(queries.captured_queries)}")
    for query in queries.captured_queries:
        print(f"  {float(query['time']) * 1000:5.1f} ms  {query['sql'][:150]}")
    profiler = Profiler(interval=0.0005)
    started = time.perf_counter()
    with profiler:
        for number in numbers[2:]:
            post(number)
    elapsed = time.perf_counter() - started
    print(f"in-process: {len(numbers) - 2} requests, {elapsed / (len(numbers) - 2) * 1000:.1f} ms each")
    print(profiler.output_text(unicode=False, color=False, show_all=False, short_mode=False)[:12000])


def wait_until_up(port: int) -> None:
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live", timeout=2)  # noqa: S310
            return
        except OSError:  # refused, reset, or slow to answer while gunicorn starts (URLError is an OSError)
            time.sleep(0.2)
    raise SystemExit("gunicorn did not come up")


def run_load(port: int, token: str, numbers: list[str], args) -> None:
    path = "/api/v1/payments/"
    latencies: list[float] = []
    errors: dict[int, int] = {}
    lock = threading.Lock()
    queue = list(numbers)

    def client():
        connection = None
        while True:
            with lock:
                if not queue:
                    break
                number = queue.pop()
            body = _payment_body(number).encode()
            headers = {
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
                "Idempotency-Key": str(uuid.uuid4()),
            }
            if not args.keep_alive:
                headers["Connection"] = "close"
            started = time.perf_counter()
            for attempt in range(2):  # a kept-alive connection the server closed meanwhile is opened again, once
                if connection is None:
                    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                try:
                    connection.request("POST", path, body=body, headers=headers)
                    response = connection.getresponse()
                    response.read()
                    status = response.status
                    break
                except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                    connection.close()
                    connection = None
                    if attempt:
                        raise
            if not args.keep_alive or response.will_close:
                connection.close()
                connection = None
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                if status != 201:
                    errors[status] = errors.get(status, 0) + 1
        if connection is not None:
            connection.close()

    threads = [threading.Thread(target=client) for _ in range(args.concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1000

    print(
        f"POST /api/v1/payments/ x {len(latencies)}: gunicorn {args.workers} {args.worker_class} workers"
        f"{f' x {args.threads} threads' if args.worker_class == 'gthread' else ''}, {args.concurrency} concurrent "
        f"clients ({'keep-alive' if args.keep_alive else 'new connection per request'}), PostgreSQL"
    )
    print(f"throughput      {len(latencies) / wall:.0f} requests/s ({wall:.1f} s)")
    print(
        f"latency         p50 {pct(50):.1f} ms   p90 {pct(90):.1f} ms   p99 {pct(99):.1f} ms   "
        f"mean {statistics.mean(latencies) * 1000:.1f} ms"
    )
    print(f"non-201 answers {sum(errors.values())} {errors or ''}")


if __name__ == "__main__":
    main()
