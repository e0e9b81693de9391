"""Posting payments through the REST API under gunicorn with PostgreSQL: requests per second and latency.

    .venv/bin/python bench/api.py [--requests 2000] [--concurrency 8] [--workers 4]

Creates a fresh PostgreSQL database (fieldsync_bench_api on 127.0.0.1:5432 unless BENCH_DATABASE_URL says
otherwise), one customer with --requests open invoices and an API client, starts gunicorn on a free port, and posts
one payment per invoice from --concurrency client threads, each with its own Idempotency-Key (the real path: token
check, idempotency claim, the billing service with its row locks, the stored response). Prints throughput, latency
percentiles and errors. The load generator shares the machine's 2 cores with gunicorn and PostgreSQL; figures only.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from benchutil import ROOT, free_port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
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
    token, numbers = prepare(args.requests)
    if args.profile:
        profile(token, numbers[: args.profile])
        return

    port = free_port()
    gunicorn = subprocess.Popen(  # noqa: S603
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "fieldsync.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(args.workers),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        wait_until_up(port)
        run_load(port, token, numbers, args)
    finally:
        gunicorn.terminate()
        gunicorn.wait(timeout=20)


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
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/schema/", timeout=2)  # noqa: S310
            return
        except OSError:  # refused, reset, or slow to answer while gunicorn starts (URLError is an OSError)
            time.sleep(0.2)
    raise SystemExit("gunicorn did not come up")


def run_load(port: int, token: str, numbers: list[str], args) -> None:
    url = f"http://127.0.0.1:{port}/api/v1/payments/"
    latencies: list[float] = []
    errors: dict[int, int] = {}
    lock = threading.Lock()
    queue = list(numbers)

    def client():
        while True:
            with lock:
                if not queue:
                    return
                number = queue.pop()
            body = json.dumps(
                {
                    "invoice": number,
                    "amount": "120.00",
                    "method": "card",
                    "received_on": "2026-11-20",
                    "reference": f"ch_{number}",
                }
            ).encode()
            request = urllib.request.Request(
                url,
                data=body,
                method="POST",
                headers={  # noqa: S310
                    "Authorization": f"Bearer {token}",
                    "Content-Type": "application/json",
                    "Idempotency-Key": str(uuid.uuid4()),
                },
            )
            started = time.perf_counter()
            try:
                with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                    status = response.status
            except urllib.error.HTTPError as exc:
                status = exc.code
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                if status != 201:
                    errors[status] = errors.get(status, 0) + 1

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
        f"POST /api/v1/payments/ x {len(latencies)}: gunicorn {args.workers} workers, "
        f"{args.concurrency} concurrent clients, PostgreSQL"
    )
    print(f"throughput      {len(latencies) / wall:.0f} requests/s ({wall:.1f} s)")
    print(
        f"latency         p50 {pct(50):.1f} ms   p90 {pct(90):.1f} ms   p99 {pct(99):.1f} ms   "
        f"mean {statistics.mean(latencies) * 1000:.1f} ms"
    )
    print(f"non-201 answers {sum(errors.values())} {errors or ''}")


if __name__ == "__main__":
    main()
