"""QuickBooks Desktop throughput: payments per Web Connector session-minute at a realistic per-request latency.

    .venv/bin/python bench/qbwc_throughput.py [--payments 300] [--customers 60] [--qb-ms-per-request 200]
                                             [--roundtrip-ms 60]

Seeds a throwaway company (SQLite in a temp dir unless DATABASE_URL is set), queues every payment for QuickBooks
Desktop, and runs one simulated Web Connector session against our SOAP endpoint through Django's full request stack.
A session-minute is what the Web Connector would spend: our server's measured time, plus QuickBooks Desktop's time
per qbXML request (--qb-ms-per-request, simulated, not slept), plus one network round trip per SOAP call
(--roundtrip-ms). The defaults are assumptions, not measurements of a real QuickBooks Desktop (none here): Intuit
publishes no per-request figure, and a company file's size and the PC's disk change it a lot. Figures only.
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

from benchutil import ROOT  # noqa: F401 - puts the project on sys.path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=300)
    parser.add_argument("--customers", type=int, default=60)
    parser.add_argument("--qb-ms-per-request", type=float, default=200.0)
    parser.add_argument("--roundtrip-ms", type=float, default=60.0)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="fieldsync-qbwc-bench-"))
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{workdir / 'bench.sqlite3'}")
    os.environ.update({"DJANGO_SETTINGS_MODULE": "fieldsync.settings.base", "FIELDSYNC_LOG_LEVEL": "WARNING"})

    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client

    from billing.demo import seed_scale
    from billing.models import Payment
    from quickbooks_desktop import services
    from quickbooks_desktop.simulator import DesktopCompany, DjangoClientTransport, WebConnectorSimulator

    call_command("migrate", verbosity=0)
    seed_scale(payments=args.payments, customers=args.customers, paid_in_full_ratio=1.0)
    password = "bench web connector password"
    services.desktop_password_set(password=password)
    services.desktop_connection_update(
        use_desktop=True, income_account_name="Services", deposit_account_name="", run_every_minutes=15, username="fs"
    )
    batch = services.desktop_export_batch_start(payments=Payment.objects.all(), selection="benchmark")

    calls = 0

    class CountingTransport(DjangoClientTransport):
        def __call__(self, operation, body):
            nonlocal calls
            calls += 1
            return super().__call__(operation, body)

    company = DesktopCompany()
    client = Client(HTTP_HOST="localhost")
    simulator = WebConnectorSimulator(
        CountingTransport(client, "/quickbooks-desktop/qbwc/"),
        username="fs",
        password=password,
        company=company,
        seconds_per_request=args.qb_ms_per_request / 1000,
    )
    started = time.monotonic()
    report = simulator.run()
    server_seconds = time.monotonic() - started
    network_seconds = calls * args.roundtrip_ms / 1000
    session_seconds = server_seconds + report.qb_seconds + network_seconds
    exported = Payment.objects.filter(export_status=Payment.ExportStatus.EXPORTED).count()
    refs = [t.ref_number for t in company.transactions("ReceivePayment")]

    print(f"payments exported          {exported} of {batch.items.count()} ({args.customers} customers)")
    print(f"qbXML message sets         {report.message_sets} ({report.requests} requests, {calls} SOAP calls)")
    print(f"requests per payment       {report.requests / max(exported, 1):.2f}")
    print(f"our server's time          {server_seconds:.1f} s (SQLite, in process)")
    print(f"QuickBooks time (simul.)   {report.qb_seconds:.1f} s at {args.qb_ms_per_request:.0f} ms per request")
    print(f"network (assumed)          {network_seconds:.1f} s at {args.roundtrip_ms:.0f} ms per SOAP call")
    print(f"session length             {session_seconds:.1f} s")
    print(f"payments per session-min   {exported / session_seconds * 60:.0f}")
    print(f"duplicates in QuickBooks   {len(refs) - len(set(refs))}")
    print(
        f"QuickBooks now holds       {len(company.records('Customer'))} customers, "
        f"{len(company.transactions('Invoice'))} invoices, {len(refs)} received payments"
    )


if __name__ == "__main__":
    main()
