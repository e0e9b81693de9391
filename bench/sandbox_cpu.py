"""CPU the local QuickBooks sandbox spends per exported payment, measured from /proc on its own process.

    .venv/bin/python bench/sandbox_cpu.py [--payments 1000] [--customers 200] [--latency-ms 0] [--profile out.prof]

The same traffic as bench/export_throughput.py (a throwaway company, the sandbox as its own process with QuickBooks'
real limits and a data file, the real OAuth flow and export runner); prints the sandbox process's user + system CPU
time from just before the export starts to just after it ends, per exported payment. `--profile FILE` runs the
sandbox in-process under one cProfile profiler (requests one at a time) and writes its stats to FILE when it stops:
that inflates the CPU figure, use it to see where the time goes. Linux only (/proc). Figures only: nothing asserted.
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchutil import free_port, sandbox_connect, sandbox_environ, sandbox_start

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def start_profiled(*, port: int, latency_ms: int, data_file: Path, output: str) -> subprocess.Popen:
    """This script as the sandbox (`--serve-profiled`): SandboxServer in its own process, with every request and
    every data-file write run under one cProfile profiler (one at a time, so the profile sees all threads)."""
    import requests

    command = [sys.executable, __file__, "--serve-profiled", str(port), str(latency_ms), str(data_file), output]
    process = subprocess.Popen(command)  # noqa: S603 - this script
    for _ in range(200):
        try:
            requests.get(f"http://127.0.0.1:{port}/.well-known/openid_configuration", timeout=1)
            return process
        except requests.ConnectionError:
            time.sleep(0.1)
    process.terminate()
    raise RuntimeError(f"the sandbox did not answer on port {port}")


def serve_profiled(port: int, latency_ms: int, data_file: str, output: str) -> None:
    import cProfile
    import threading

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fieldsync.settings.base")
    from quickbooks_export.sandbox import server as sandbox_server
    from quickbooks_export.sandbox import store as sandbox_store

    profiler = cProfile.Profile()
    lock = threading.Lock()

    def profiled(function):
        def wrapper(*args, **kwargs):
            with lock:
                profiler.enable()
                try:
                    return function(*args, **kwargs)
                finally:
                    profiler.disable()

        return wrapper

    sandbox_server.SandboxApp.handle = profiled(sandbox_server.SandboxApp.handle)
    sandbox_store.DataFile.write = profiled(sandbox_store.DataFile.write)
    config = sandbox_server.SandboxConfig(latency_ms=latency_ms, data_file=data_file, company_seed="collisions")
    server = sandbox_server.SandboxServer(config, port=port)

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)  # a background job may have inherited SIGINT ignored
    signal.signal(signal.SIGTERM, interrupt)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        profiler.dump_stats(output)


def main() -> None:
    if len(sys.argv) == 6 and sys.argv[1] == "--serve-profiled":
        serve_profiled(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=1000)
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--profile", default="", help="run the sandbox under cProfile, stats written to this file")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="fieldsync-bench-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{workdir / 'bench.sqlite3'}")
    os.environ.update(sandbox_environ(base))
    data_file = workdir / "sandbox.json"
    if args.profile:
        sandbox = start_profiled(port=port, latency_ms=args.latency_ms, data_file=data_file, output=args.profile)
    else:
        sandbox = sandbox_start(port=port, latency_ms=args.latency_ms, data_file=data_file)
    try:
        run(args, base, sandbox.pid)
    finally:
        sandbox.terminate()  # SIGTERM: the command (or --serve-profiled) stops cleanly, writing its data file
        try:
            sandbox.wait(timeout=30)
        except subprocess.TimeoutExpired:
            sandbox.terminate()
            sandbox.wait(timeout=10)


def run(args, base: str, pid: int) -> None:
    import django

    django.setup()
    from django.core.management import call_command

    from billing.demo import seed_scale
    from billing.models import Payment
    from quickbooks_export.selectors import export_batch_counts
    from quickbooks_export.services import export_batch_start, export_run

    call_command("migrate", verbosity=0)
    seed_scale(payments=args.payments, customers=args.customers, paid_in_full_ratio=1.0)
    realm = sandbox_connect(base, company_name="Bench Plumbing")

    cpu_before = cpu_seconds(pid)
    started = time.monotonic()
    batch = export_batch_start(payments=Payment.objects.all(), selection="benchmark", source="command")
    while export_run(realm_id=realm) not in ("drained", "waiting"):
        pass
    elapsed = time.monotonic() - started
    time.sleep(0.5)  # let the sandbox's data-file thread finish the write the last requests scheduled
    cpu = cpu_seconds(pid) - cpu_before

    counts = export_batch_counts(batch_id=batch.pk)
    exported = counts["created"] + counts["linked"]
    print(f"payments exported      {exported} of {counts['total']} ({args.customers} customers, {args.latency_ms} ms)")
    print(f"elapsed                {elapsed:.1f} s")
    print(f"sandbox CPU            {cpu * 1000:.0f} ms ({cpu * 1000 / max(exported, 1):.2f} ms per exported payment)")
    print(f"failed records         {counts['failed']}")


if __name__ == "__main__":
    main()
