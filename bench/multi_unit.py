"""Exports of several business units at once: real django-q2 workers on PostgreSQL, one sandbox company per unit.

    .venv/bin/python bench/multi_unit.py [--units 10] [--payments-per-unit 500] [--workers 4] [--latency-ms 150]

Creates a throwaway PostgreSQL database (DATABASE_URL names the server; default postgres://postgres@127.0.0.1:5432),
`--units` business units of `--payments-per-unit` payments each (every invoice paid in full), starts the sandbox as
its own process with QuickBooks' real per-company limits (500 requests/min, 10 in flight, 40 batch requests/min) and
`--latency-ms` on every answer, connects one new sandbox company per unit through the real OAuth flow, starts one
`manage.py qcluster` with `--workers` worker processes (ORM broker), then starts one export batch per unit at once and
waits for all of them. Prints wall time, aggregate and per-unit payments per minute, reads/writes per payment as the
sandbox counted them, the CPU used by the workers, PostgreSQL's backends for this database and the sandbox (from
/proc), how many runners held a company at once, and which limit bound the run. Figures only: nothing is asserted.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from benchutil import ROOT, free_port, sandbox_company, sandbox_connect, sandbox_environ, sandbox_start

PAYMENTS_PER_BATCH = 15  # 30 items a batch request; a payment on an invoice not yet in QuickBooks needs two
PLANNED_BATCHES_PER_MINUTE = 36  # what the shared limiter plans per company (docs/BENCHMARKS.md)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=10)
    parser.add_argument("--payments-per-unit", type=int, default=500)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--latency-ms", type=int, default=150)
    parser.add_argument(
        "--companies-per-worker", type=int, default=4, help="FIELDSYNC_EXPORT_COMPANIES_PER_WORKER (1: as before)"
    )
    parser.add_argument("--database-prefix", default="fs_multi_bench", help="the throwaway database's name begins so")
    args = parser.parse_args()

    server = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    if not server.startswith(("postgres://", "postgresql://")):
        raise SystemExit("DATABASE_URL must name a PostgreSQL server: this benchmark runs on PostgreSQL.")
    database = f"{args.database_prefix}_{os.getpid()}"
    admin_url = urlunsplit(urlsplit(server)._replace(path="/postgres"))
    _admin(admin_url, f'CREATE DATABASE "{database}"')

    workdir = Path(tempfile.mkdtemp(prefix="fieldsync-bench-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    os.environ.update(sandbox_environ(base))
    os.environ.update(
        {
            "DATABASE_URL": urlunsplit(urlsplit(server)._replace(path=f"/{database}")),
            "FIELDSYNC_WORKERS": str(args.workers),
            "FIELDSYNC_Q_CLUSTER_NAME": database,
            "FIELDSYNC_Q_BROKER": "orm",
            "FIELDSYNC_EXPORT_COMPANIES_PER_WORKER": str(args.companies_per_worker),
            # Production's task budget (README): a task serving several companies must end before the task timeout.
            "EXPORT_RUN_SECONDS": "150",
        }
    )
    sandbox = sandbox_start(port=port, latency_ms=args.latency_ms, data_file=workdir / "sandbox.json")
    try:
        run(args, base, database, sandbox.pid)
    finally:
        sandbox.terminate()
        try:
            sandbox.wait(timeout=30)
        except subprocess.TimeoutExpired:  # a loaded machine: the database must still be dropped
            sandbox.kill()
            sandbox.wait()
        _admin(admin_url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def _admin(url: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(statement)


def run(args, base: str, database: str, sandbox_pid: int) -> None:
    import django

    django.setup()
    from django.core.management import call_command
    from django.utils import timezone

    from billing.demo import seed_scale
    from billing.models import Payment
    from billing.services import business_unit_create
    from quickbooks_export.models import ExportBatch, ExportRunnerLease
    from quickbooks_export.selectors import export_batch_counts
    from quickbooks_export.services import export_batch_start

    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)
    units, realms = [], []
    for n in range(1, args.units + 1):
        unit = business_unit_create(name=f"Bench Unit {n:02d}")
        seed_scale(
            payments=args.payments_per_unit,
            customers=max(1, args.payments_per_unit // 5),
            paid_in_full_ratio=1.0,
            business_unit=unit,
        )
        units.append(unit)
        realms.append(sandbox_connect(base, company_name=f"Bench Plumbing {n:02d}", business_unit=unit))
    before = {realm: sandbox_company(base, realm)["stats"] for realm in realms}

    cluster = subprocess.Popen(  # noqa: S603 - our own manage.py
        [sys.executable, str(ROOT / "manage.py"), "qcluster"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        time.sleep(3)  # the cluster's workers start before the batches are queued
        cpu = CpuMeter(cluster_pid=cluster.pid, sandbox_pid=sandbox_pid, database=database)
        started_at, started = timezone.now(), time.monotonic()
        batches = [
            export_batch_start(
                payments=Payment.objects.filter(business_unit=unit), selection="benchmark", source="command"
            )
            for unit in units
        ]
        runner_samples = []
        while ExportBatch.objects.filter(pk__in=[b.pk for b in batches], finished_at__isnull=True).exists():
            cpu.sample()
            runner_samples.append(ExportRunnerLease.objects.filter(expires_at__gt=timezone.now()).count())
            time.sleep(1)
        elapsed = time.monotonic() - started
        cpu.sample()
        report(args, base, realms, before, batches, started_at, elapsed, cpu, runner_samples, export_batch_counts)
    finally:
        cluster.terminate()  # django-q2 stops its workers on SIGTERM; a loaded machine can take a while
        try:
            cluster.wait(timeout=120)
        except subprocess.TimeoutExpired:
            cluster.kill()
            cluster.wait()


def report(args, base, realms, before, batches, started_at, elapsed, cpu, runner_samples, export_batch_counts) -> None:
    from quickbooks_export.models import ExportBatch

    exported = failed = reads = writes = batch_requests = throttled = requests_made = duplicates = 0
    unit_rates = []
    for batch in ExportBatch.objects.filter(pk__in=[b.pk for b in batches]).order_by("pk"):
        realm = batch.realm_id
        counts = export_batch_counts(batch_id=batch.pk)
        done = counts["created"] + counts["linked"]
        exported += done
        failed += counts["failed"]
        company = sandbox_company(base, realm)
        stats = company["stats"]
        reads += stats["reads"] - before[realm]["reads"]
        writes += stats["writes"] - before[realm]["writes"]
        batch_requests += stats["batches"] - before[realm]["batches"]
        throttled += stats["throttled"] - before[realm]["throttled"]
        requests_made += stats["requests"] - before[realm]["requests"]
        notes = [p.get("PrivateNote", "") for p in company["entities"].get("Payment", [])]
        duplicates += len(notes) - len(set(notes))
        unit_rates.append(done / max((batch.finished_at - started_at).total_seconds(), 0.001) * 60)

    per = max(exported, 1)
    aggregate = exported / elapsed * 60
    single_ceiling = PLANNED_BATCHES_PER_MINUTE * PAYMENTS_PER_BATCH
    print(
        f"setup                  {args.units} units x {args.payments_per_unit} payments, {args.workers} workers "
        f"(one qcluster, ORM broker, PostgreSQL), {args.latency_ms} ms latency, limits per company"
    )
    print(f"payments exported      {exported} of {args.units * args.payments_per_unit} (failed {failed})")
    print(f"wall time              {elapsed:.1f} s")
    print(f"aggregate per minute   {aggregate:.0f}")
    print(
        f"per unit per minute    min {min(unit_rates):.0f}, median {sorted(unit_rates)[len(unit_rates) // 2]:.0f}, "
        f"max {max(unit_rates):.0f} (each unit's payments over the time its batch took from the common start)"
    )
    print(f"HTTP requests          {requests_made} ({requests_made / per:.3f} per payment)")
    print(f"  reads (GET + query)  {reads} ({reads / per:.3f} per payment)")
    print(f"  writes (POST)        {writes} ({writes / per:.3f} per payment)")
    print(f"  batches of creates   {batch_requests} ({batch_requests / per:.3f} per payment)")
    print(f"429s seen              {throttled}")
    print(f"duplicates found       {duplicates}")
    runners = sum(runner_samples) / max(len(runner_samples), 1)
    per_runner = aggregate / max(runners, 0.001)
    print(
        f"runners at once        max {max(runner_samples, default=0)}, mean {runners:.1f} (of {args.units} "
        f"companies; {args.workers} workers): {per_runner:.0f} payments/min per running company"
    )
    cores = os.cpu_count() or 1
    busy = cpu.total()
    for name, seconds in cpu.seconds().items():
        print(
            f"CPU {name:<20} {seconds:.1f} s ({seconds / elapsed * 100:.0f}% of one core; "
            f"{seconds / per * 1000:.1f} ms per payment)"
        )
    print(
        f"CPU all measured       {busy:.1f} s of {elapsed * cores:.0f} "
        f"({busy / (elapsed * cores) * 100:.0f}% of {cores} cores; {busy / per * 1000:.1f} ms per payment)"
    )
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"load average at end    {' '.join(load)} (the machine is shared: other processes count here too)")

    slots = args.workers * max(args.companies_per_worker, 1)
    concurrent = min(args.units, slots)
    ours = cpu.seconds()["workers (qcluster)"] + cpu.seconds()["PostgreSQL backends"]
    cpu_ceiling = cores * 60 / max(busy / per, 1e-9)
    cpu_ceiling_ours = cores * 60 / max(ours / per, 1e-9)
    print(
        f"ceilings               QuickBooks: {args.units} companies x {single_ceiling} = {args.units * single_ceiling}"
        f"/min; workers: {args.workers} x {args.companies_per_worker} companies each = {concurrent} runners x "
        f"{single_ceiling} = {concurrent * single_ceiling}/min; CPU ({cores} cores at the measured ms per payment): "
        f"{cpu_ceiling:.0f}/min with the sandbox, {cpu_ceiling_ours:.0f}/min workers + PostgreSQL only"
    )
    capped = slots < args.units and max(runner_samples, default=0) >= slots
    if per_runner >= 0.85 * single_ceiling:
        verdict = "QuickBooks: each running company's batch budget (36 planned a minute)"
        if capped:
            verdict += (
                f", times {slots} companies at once ({args.workers} workers x {args.companies_per_worker} companies "
                "each): the workers' slots cap how many companies export at once"
            )
    elif busy / (elapsed * cores) > 0.85:
        verdict = f"CPU: the measured processes kept the {cores} cores busy"
    else:
        verdict = (
            f"this machine: each running company got {per_runner:.0f} of its {single_ceiling} payments/min while the "
            f"measured processes used {busy / (elapsed * cores) * 100:.0f}% of the cores; the load average "
            f"({load[0]}) shows what else was runnable"
        )
    print(f"bound by               {verdict}")


class CpuMeter:
    """CPU seconds (user + system, from /proc) of the qcluster process and its workers, of PostgreSQL's backends
    connected to `database`, and of the sandbox; the last figure seen for each process counts, so processes that
    exit during the run still count up to their last sample."""

    def __init__(self, *, cluster_pid: int, sandbox_pid: int, database: str):
        self.cluster_pid, self.sandbox_pid, self.database = cluster_pid, sandbox_pid, database
        self.start: dict[int, float] = {}
        self.last: dict[int, tuple[str, float]] = {}
        self.sample()
        self.start = {pid: seconds for pid, (_, seconds) in self.last.items()}

    def sample(self) -> None:
        children: dict[int, list[int]] = {}
        stats: dict[int, tuple[str, float]] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            pid, ppid = int(entry.name), int(fields[1])
            children.setdefault(ppid, []).append(pid)
            seconds = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
            if cmdline.startswith("postgres: ") and f" {self.database} " in cmdline:
                stats[pid] = ("PostgreSQL backends", seconds)
            elif pid == self.sandbox_pid:
                stats[pid] = ("sandbox", seconds)
            else:
                stats[pid] = ("", seconds)
        tree, stack = set(), [self.cluster_pid]
        while stack:
            pid = stack.pop()
            tree.add(pid)
            stack.extend(children.get(pid, []))
        for pid, (name, seconds) in stats.items():
            if pid in tree:
                name = "workers (qcluster)"
            if name:
                self.last[pid] = (name, seconds)

    def seconds(self) -> dict[str, float]:
        totals = {"workers (qcluster)": 0.0, "PostgreSQL backends": 0.0, "sandbox": 0.0}
        for pid, (name, seconds) in self.last.items():
            totals[name] += seconds - self.start.get(pid, 0.0)
        return totals

    def total(self) -> float:
        return sum(self.seconds().values())


if __name__ == "__main__":
    main()
