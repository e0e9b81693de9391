"""Export throughput against the local QuickBooks sandbox with QuickBooks' real limits and a realistic latency.

    .venv/bin/python bench/export_throughput.py [--payments 1000] [--customers 200] [--latency-ms 150]

Seeds a throwaway company (SQLite in a temp dir unless DATABASE_URL is set), starts the sandbox as its own process
(500 requests/min, 10 in flight, 40 batch requests/min per company), connects through the real OAuth flow, exports
every payment with the real export runner, and prints payments per minute, HTTP requests per payment (reads — GET and
queries, which Intuit meters — writes and batches, as the sandbox counted them), 429s seen, duplicates found and
failed records. Figures only: nothing is asserted on time.
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

from benchutil import free_port, sandbox_company, sandbox_connect, sandbox_environ, sandbox_start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=1000)
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--latency-ms", type=int, default=150)
    parser.add_argument("--profile", type=int, default=0, help="print the N costliest functions (cProfile) of the run")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="fieldsync-bench-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{workdir / 'bench.sqlite3'}")
    os.environ.update(sandbox_environ(base))
    sandbox = sandbox_start(port=port, latency_ms=args.latency_ms, data_file=workdir / "sandbox.json")
    try:
        run(args, base)
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)


def run(args, base: str) -> None:
    import django

    django.setup()
    from django.core.management import call_command

    from billing.demo import seed_scale
    from billing.models import Payment
    from quickbooks_export.models import ExportBatch
    from quickbooks_export.selectors import export_batch_counts
    from quickbooks_export.services import export_batch_start, export_run

    call_command("migrate", verbosity=0)
    seed_scale(payments=args.payments, customers=args.customers, paid_in_full_ratio=1.0)
    realm = sandbox_connect(base, company_name="Bench Plumbing")
    before = sandbox_company(base, realm)["stats"]

    import re
    from collections import Counter

    from django.db import connection

    statements = [0]
    shapes: Counter = Counter()

    def count(execute, sql, params, many, context):
        statements[0] += 1
        if args.profile:  # which statements: their first words and table
            table = re.search(r'(?:FROM|INTO|UPDATE)\s+"?(\w+)"?', sql)
            lock = " FOR UPDATE" if "FOR UPDATE" in sql else ""
            shapes[f"{sql.split(None, 1)[0]} {table.group(1) if table else ''}{lock}"] += 1
        return execute(sql, params, many, context)

    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
    started, cpu_started = time.monotonic(), time.process_time()
    batch = export_batch_start(payments=Payment.objects.all(), selection="benchmark", source="command")
    with connection.execute_wrapper(count):
        if profiler:
            profiler.enable()
        while export_run(realm_id=realm) not in ("drained", "waiting"):
            pass
        if profiler:
            profiler.disable()
    elapsed, cpu = time.monotonic() - started, time.process_time() - cpu_started

    batch = ExportBatch.objects.get(pk=batch.pk)
    counts = export_batch_counts(batch_id=batch.pk)
    after = sandbox_company(base, realm)
    stats = after["stats"]
    qbo_payments = after["entities"].get("Payment", [])
    notes = [p.get("PrivateNote", "") for p in qbo_payments]
    duplicates = len(notes) - len(set(notes))
    requests_made = stats["requests"] - before["requests"]
    exported = counts["created"] + counts["linked"]
    print(
        f"payments exported      {exported} of {counts['total']} ({args.customers} customers, "
        f"{args.latency_ms} ms latency, limits 500 req/min, 40 batch/min)"
    )
    print(f"elapsed                {elapsed:.1f} s")
    print(f"payments per minute    {exported / elapsed * 60:.0f}")
    per = max(exported, 1)
    reads, writes, batches = (stats[kind] - before[kind] for kind in ("reads", "writes", "batches"))
    print(f"HTTP requests          {requests_made} ({requests_made / per:.2f} per payment)")
    print(f"  reads (GET + query)  {reads} ({reads / per:.3f} per payment; what Intuit meters)")
    print(f"  writes (POST)        {writes} ({writes / per:.3f} per payment)")
    print(f"  batches of creates   {batches} ({batches / per:.3f} per payment)")
    print(f"429s seen              {stats['throttled'] - before['throttled']}")
    print(f"duplicates found       {duplicates}")
    print(f"failed records         {counts['failed']}")
    print(f"SQL statements         {statements[0]} ({statements[0] / per:.1f} per payment, the runner's process)")
    print(f"CPU of this process    {cpu:.1f} s ({cpu / per * 1000:.1f} ms per payment; the sandbox is another process)")
    print(
        f"QuickBooks now holds   {len(after['entities'].get('Customer', []))} customers, "
        f"{len(after['entities'].get('Invoice', []))} invoices, {len(qbo_payments)} payments"
    )
    if profiler:
        import pstats

        pstats.Stats(profiler).sort_stats("tottime").print_stats(args.profile)
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(args.profile)
        print("SQL statements by shape (per payment):")
        for shape, n in shapes.most_common(args.profile):
            print(f"  {n / per:6.2f}  {shape}")


if __name__ == "__main__":
    main()
