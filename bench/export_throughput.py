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
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from benchutil import ROOT, free_port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=1000)
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--latency-ms", type=int, default=150)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="fieldsync-bench-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{workdir / 'bench.sqlite3'}")
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "fieldsync.settings.base",
            "QBO_ENVIRONMENT": "local",
            "QBO_SANDBOX_URL": base,
            "QBO_DISCOVERY_URL": f"{base}/.well-known/openid_configuration",
            "QBO_API_BASE_URL": base,
            "OAUTHLIB_INSECURE_TRANSPORT": "1",
            "FIELDSYNC_LOG_LEVEL": "WARNING",
            "EXPORT_RUN_SECONDS": "3600",
        }
    )
    sandbox = subprocess.Popen(  # noqa: S603 - our own manage.py
        [
            sys.executable,
            str(ROOT / "manage.py"),
            "qbo_sandbox",
            "--port",
            str(port),
            "--latency-ms",
            str(args.latency_ms),
            "--data-file",
            str(workdir / "sandbox.json"),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        run(args, base)
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)


def run(args, base: str) -> None:
    import django

    django.setup()
    import requests
    from django.conf import settings
    from django.contrib.sessions.backends.db import SessionStore
    from django.core.management import call_command
    from django.test import RequestFactory

    from billing.demo import seed_scale
    from billing.models import Payment
    from quickbooks_export.connection import connection_complete_authorization, connection_start_authorization
    from quickbooks_export.models import ExportBatch
    from quickbooks_export.selectors import export_batch_counts
    from quickbooks_export.services import export_batch_start, export_run

    call_command("migrate", verbosity=0)
    seed_scale(payments=args.payments, customers=args.customers, paid_in_full_ratio=1.0)
    for _ in range(50):
        try:
            requests.get(f"{base}/.well-known/openid_configuration", timeout=1)
            break
        except requests.ConnectionError:
            time.sleep(0.1)

    request = RequestFactory().get("/")
    request.session = SessionStore()
    state = parse_qs(urlsplit(connection_start_authorization(request=request)).query)["state"][0]
    approve = requests.post(
        f"{base}/_sandbox/authorize",
        json={"redirect_uri": settings.QBO_REDIRECT_URI, "state": state, "company_name": "Bench Plumbing"},
        timeout=10,
    ).json()
    connection = connection_complete_authorization(
        request=request, code=approve["code"], state=state, realm_id=approve["realm_id"], user=None
    )
    realm = connection.realm_id
    before = requests.get(f"{base}/_sandbox/companies/{realm}", timeout=10).json()["stats"]

    started = time.monotonic()
    batch = export_batch_start(payments=Payment.objects.all(), selection="benchmark", source="command")
    while export_run(realm_id=realm) not in ("drained", "waiting"):
        pass
    elapsed = time.monotonic() - started

    batch = ExportBatch.objects.get(pk=batch.pk)
    counts = export_batch_counts(batch_id=batch.pk)
    after = requests.get(f"{base}/_sandbox/companies/{realm}", timeout=10).json()
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
    print(
        f"QuickBooks now holds   {len(after['entities'].get('Customer', []))} customers, "
        f"{len(after['entities'].get('Invoice', []))} invoices, {len(qbo_payments)} payments"
    )


if __name__ == "__main__":
    main()
