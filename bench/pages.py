"""How fast the Payments, Customers and Invoices pages are over a big company (100,000 payments, invoices and
customers), and how long starting an export of 10,000 payments takes.

    .venv/bin/python bench/pages.py                          # a throwaway SQLite file, seeded with 100,000 payments
    .venv/bin/python bench/pages.py --database-url postgres://postgres@127.0.0.1:5432/fieldsync_bench
    .venv/bin/python bench/pages.py --payments 20000 --keep /tmp/fieldsync-bench.sqlite3

Times are server time (Django's test client: middleware, view, queries, template), the median of a few runs, with the
number of SQL queries each page made. Starting the batch goes through the real view (POST /payments/export/) and is
rolled back afterwards, so the database is left as it was and no export task is queued. Prints figures; asserts
nothing.
"""

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import benchutil  # noqa: F401 - puts the project on sys.path (this runs as a plain script)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="default: a new SQLite file in a temporary directory")
    parser.add_argument("--keep", help="SQLite file to create or reuse (kept afterwards)")
    parser.add_argument("--payments", type=int, default=100_000, help="bulk payments to seed (default 100,000)")
    parser.add_argument("--customers", type=int, default=100_000, help="customers at least (default 100,000)")
    parser.add_argument("--select", type=int, default=10_000, help="payments in the export batch (default 10,000)")
    parser.add_argument("--runs", type=int, default=5, help="runs per page (median is printed)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.database_url:
        os.environ["DATABASE_URL"] = args.database_url
    else:
        path = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="fieldsync-bench-")) / "bench.sqlite3"
        os.environ["DATABASE_URL"] = f"sqlite:///{path.resolve()}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fieldsync.settings.test")

    import django

    django.setup()

    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection, reset_queries, transaction
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from billing.demo import seed_scale, seed_story_company
    from billing.models import Customer, Payment
    from billing.selectors import payment_filter_exportable
    from billing.services import business_unit_default
    from quickbooks_export.models import ExportBatch, ExportBatchItem, QuickBooksConnection
    from tests.pages.conftest import OFFICE_PERMISSIONS, RECORD_PERMISSIONS, make_user

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    print(f"database: {connection.vendor} ({settings.DATABASES['default']['NAME']})")
    call_command("migrate", verbosity=0)

    have = Payment.objects.count()
    if have < args.payments:
        started = time.perf_counter()
        if not Payment.objects.filter(reference="10422").exists():
            seed_story_company()
        seed_scale(payments=args.payments - Payment.objects.count())
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
        print(f"seeded {Payment.objects.count():,} payments in {time.perf_counter() - started:.1f} s")
    else:
        print(f"using the {have:,} payments already there")

    # The bulk payments bring one customer per five; the Customers page is measured over --customers of them.
    missing = args.customers - Customer.objects.count()
    if missing > 0:
        start = Customer.objects.count()
        unit = business_unit_default()
        Customer.objects.bulk_create(
            [
                Customer(
                    business_unit=unit,
                    display_name=f"Bench Customer {start + i:06d}",
                    email=f"bench{start + i}@example.com",
                )
                for i in range(missing)
            ],
            batch_size=5000,
        )
        print(f"added {missing:,} customers ({Customer.objects.count():,} in all)")

    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    user = get_user_model().objects.filter(username="bench").first() or make_user("bench", *OFFICE_PERMISSIONS)
    user.user_permissions.add(*Permission.objects.filter(codename__in=RECORD_PERMISSIONS))
    # Starting an export needs a connected company; no request reaches QuickBooks here (the batch is rolled back).
    if not QuickBooksConnection.objects.filter(is_current=True).exists():
        QuickBooksConnection.objects.create(realm_id="bench", company_name="Bench company")
    client = Client()
    client.force_login(user)

    def timed(label: str, url: str, params: dict | None = None, *, row_marker: str = "<tr data-payment=") -> None:
        durations, queries = [], 0
        for _ in range(args.runs):
            reset_queries()
            with CaptureQueriesContext(connection) as captured:
                started = time.perf_counter()
                response = client.get(url, params or {})
                durations.append(time.perf_counter() - started)
            assert response.status_code == 200, response.status_code
            queries = len(captured)
        rows = response.content.decode().count(row_marker)
        print(
            f"  {label:<58} {statistics.median(durations) * 1000:8.1f} ms  "
            f"(min {min(durations) * 1000:.1f})  {queries:2d} queries  {rows:3d} rows"
        )

    print(f"\nPayments page, server time, median of {args.runs}:")
    timed("no filter, 50 rows", "/")
    timed("status ready to export, 50 rows", "/", {"status": "ready"})
    timed("status held, 50 rows", "/", {"status": "held"})
    timed(
        "ready + method check + received range + amount range",
        "/",
        {
            "status": "ready",
            "method": "check",
            "received_from": "2026-10-05",
            "received_to": "2026-11-30",
            "amount_min": "100",
            "amount_max": "2000",
        },
    )
    timed("search “Scale Customer 0123”", "/", {"q": "Scale Customer 0123"})
    timed("search an invoice number “S-00004242”", "/", {"q": "S-00004242"})
    timed("status ready, page 200 (offset 9,950)", "/", {"status": "ready", "page": "200"})
    timed("500 rows, no filter", "/", {"size": "500"})
    print("  the number of matches, loaded after the page (htmx):")
    timed("count fragment: every payment", "/payments/count/")
    timed("count fragment: status ready to export", "/payments/count/", {"status": "ready"})

    from billing.models import Invoice  # noqa: PLC0415

    print(f"\nCustomers page over {Customer.objects.count():,} customers, median of {args.runs}:")
    customer_row = '<td data-label="Name">'
    timed("first 50, by name", "/customers/", row_marker=customer_row)
    timed("page 200 (offset 9,950)", "/customers/", {"page": "200"}, row_marker=customer_row)
    timed("search “Scale Customer 0123”", "/customers/", {"q": "Scale Customer 0123"}, row_marker=customer_row)
    print(f"\nInvoices page over {Invoice.objects.count():,} invoices (balances computed), median of {args.runs}:")
    invoice_row = '<td data-label="Invoice">'
    timed("first 50, newest first", "/invoices/", row_marker=invoice_row)
    timed("status open", "/invoices/", {"status": "open"}, row_marker=invoice_row)
    timed("page 200 (offset 9,950)", "/invoices/", {"page": "200"}, row_marker=invoice_row)
    timed("search an invoice number “S-00004242”", "/invoices/", {"q": "S-00004242"}, row_marker=invoice_row)

    from quickbooks_export.services import export_batch_start

    selected = list(
        payment_filter_exportable(Payment.objects.filter(export_status=Payment.ExportStatus.NOT_EXPORTED))
        .order_by("-received_on", "-id")
        .values_list("pk", flat=True)[: args.select]
    )

    def start_batch(label: str, start) -> None:
        """Time `start()` (which starts a batch), then roll it all back: no batch is kept and no task is queued."""
        with transaction.atomic():
            with CaptureQueriesContext(connection) as captured:
                began = time.perf_counter()
                outcome = start()
                elapsed = time.perf_counter() - began
            batch = ExportBatch.objects.order_by("-pk").first()
            items = ExportBatchItem.objects.filter(batch=batch).count() if batch else 0
            queued = Payment.objects.filter(export_status=Payment.ExportStatus.QUEUED).count()
            transaction.set_rollback(True)
        print(
            f"  {label:<58} {elapsed:8.2f} s   {len(captured):3d} queries  "
            f"{outcome}, {items:,} items, {queued:,} queued"
        )

    print("\nStarting an export (rolled back afterwards):")
    start_batch(
        f"export_batch_start, {len(selected):,} selected payment ids",
        lambda: export_batch_start(payments=selected, selection="bench", user=user, source="page") and "batch",
    )
    # From the page, more than one page of ticks (500 at most) is "select all matching"; a week of ready payments is
    # about ten thousand in the bulk data.
    week = {"status": "ready", "received_from": "2026-10-20", "received_to": "2026-10-26"}
    start_batch(
        "POST /payments/export/ “select all matching” (ready, one week)",
        lambda: f"HTTP {client.post('/payments/export/', {'scope': 'matching', **week}).status_code}",
    )
    start_batch(
        "POST /payments/export/ with 500 ticked payments",
        lambda: f"HTTP {client.post('/payments/export/', {'payment': selected[:500]}).status_code}",
    )

    # "Everything exportable" also looks for invoices with nothing to pay ($0.00, no payment) not in QuickBooks yet:
    # a scan of the paid invoices under the balance annotations (docs/invoices_with_nothing_to_pay.md).
    from quickbooks_export.selectors import invoices_to_export_alone
    from quickbooks_export.services import export_all_exportable_start

    with CaptureQueriesContext(connection) as captured:
        began = time.perf_counter()
        found = invoices_to_export_alone(realm_id="bench").count()
        elapsed = time.perf_counter() - began
    label = "invoices with nothing to pay, not in QuickBooks (count)"
    print(f"  {label:<58} {elapsed:8.2f} s   {len(captured):3d} queries  {found:,} found")
    start_batch(
        "export_all_exportable_start (payments + $0.00 invoices)",
        lambda: export_all_exportable_start(user=user, source="page") and "batch",
    )


if __name__ == "__main__":
    main()
