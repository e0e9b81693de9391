"""Reconciliation of 10,000 exported invoices against the local QuickBooks sandbox at QuickBooks' limits.

    .venv/bin/python bench/reconcile.py [--invoices 10000] [--customers 200] [--latency-ms 150] [--differ 5]

Seeds a throwaway company (SQLite in a temp dir unless DATABASE_URL is set) with billing.demo.seed_scale: one
invoice per payment, each paid in full. One payment goes to QuickBooks through the real export engine; the others
are then written straight into our mapping table and into the sandbox's books (Books.insert: QuickBooks' own rules
compute totals, balances and links), in the shape the engine's export took. `--differ` payments are left out of
QuickBooks and as many invoices get another amount, so the run has something to find. The sandbox serves over HTTP
with QuickBooks' limits (500 requests/min, 10 in flight per company) and a realistic latency; the reconciliation
runs through the real client and prints wall time, QuickBooks reads, reads per invoice and what it found.
Figures only: nothing is asserted on time.
"""

import argparse
import copy
import os
import sys
import tempfile
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from benchutil import ROOT

SEED_BATCH = 5000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=10_000)
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--latency-ms", type=int, default=150)
    parser.add_argument("--differ", type=int, default=5, help="payments missing and invoice amounts changed")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="fieldsync-bench-"))
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{workdir / 'bench.sqlite3'}")
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "fieldsync.settings.base",
            "QBO_ENVIRONMENT": "local",
            "OAUTHLIB_INSECURE_TRANSPORT": "1",
            "FIELDSYNC_LOG_LEVEL": "WARNING",
        }
    )
    sys.path.insert(0, str(ROOT))
    from quickbooks_export.sandbox import SandboxConfig, SandboxServer

    server = SandboxServer(SandboxConfig(latency_ms=args.latency_ms)).start()
    os.environ.update(
        {
            "QBO_SANDBOX_URL": server.base_url,
            "QBO_DISCOVERY_URL": server.discovery_url,
            "QBO_API_BASE_URL": server.base_url,
        }
    )
    try:
        run(args, server)
    finally:
        server.stop()


def run(args, server) -> None:
    import django

    django.setup()
    from django.contrib.sessions.backends.db import SessionStore
    from django.core.management import call_command
    from django.test import RequestFactory

    from billing.demo import BASE_DATE, seed_scale
    from billing.models import Payment
    from quickbooks_export.connection import connection_complete_authorization, connection_start_authorization
    from quickbooks_export.reconciliation import reconciliation_run, reconciliation_start
    from quickbooks_export.services import export_batch_start, export_run

    call_command("migrate", verbosity=0)
    seeded = time.monotonic()
    seed_scale(payments=args.invoices, customers=args.customers, paid_in_full_ratio=1.0)

    request = RequestFactory().get("/")
    request.session = SessionStore()
    from urllib.parse import parse_qs, urlsplit

    from django.conf import settings

    state = parse_qs(urlsplit(connection_start_authorization(request=request)).query)["state"][0]
    approval = server.authorize(settings.QBO_REDIRECT_URI, state=state, company_name="Bench Plumbing")
    connection = connection_complete_authorization(
        request=request, code=approval.code, state=state, realm_id=approval.realm_id, user=None
    )
    realm = connection.realm_id

    # One payment through the real engine: the shape every other one takes in QuickBooks.
    first = Payment.objects.order_by("pk").first()
    export_batch_start(payments=[first.pk], selection="benchmark template", source="command")
    while export_run(realm_id=realm, sleep=lambda seconds: None) not in ("drained", "waiting"):
        pass
    first.refresh_from_db()
    if first.export_status != Payment.ExportStatus.EXPORTED:
        raise SystemExit(f"The template payment was not exported ({first.export_status}).")
    missing, changed = _seed_exported(realm, server, first, differ=args.differ)
    print(f"seeded                 {args.invoices} exported invoices and payments in {time.monotonic() - seeded:.1f} s")

    before = server.stats(realm)
    started = time.monotonic()
    date_to = BASE_DATE + timedelta(days=62)
    queued = reconciliation_start(date_from=BASE_DATE, date_to=date_to, trigger="command", enqueue=False)
    result = reconciliation_run(run_id=queued.pk)
    elapsed = time.monotonic() - started
    after = server.stats(realm)

    if result.state != "done":
        raise SystemExit(f"The reconciliation failed: {result.message}")
    problems = sorted({tuple(row.problems) for row in result.rows.filter(ok=False)})
    print(
        f"reconciled             {result.invoices_checked} invoices and {result.payments_checked} payments "
        f"({args.latency_ms} ms latency, limits 500 req/min, 10 in flight)"
    )
    print(f"wall time              {elapsed:.1f} s")
    print(f"QuickBooks reads       {result.quickbooks_reads} (sandbox saw {after['requests'] - before['requests']})")
    print(f"reads per invoice      {result.quickbooks_reads / max(result.invoices_checked, 1):.4f}")
    print(f"429s seen              {after['throttled'] - before['throttled']}")
    print(
        f"discrepancies          {result.discrepancies} (expected {2 * missing + changed}: {missing} payments "
        f"missing with their invoices' balances, {changed} invoice amounts); kinds {problems}"
    )


def _seed_exported(realm: str, server, template_payment, *, differ: int) -> tuple[int, int]:
    """Every seeded payment but the template one: exported (status + mappings in our DB, objects in QuickBooks).
    Returns (payments left out of QuickBooks, invoices with another amount there)."""
    from django.db import transaction
    from django.utils import timezone

    from billing.models import Customer, Invoice, Payment, PaymentApplication
    from quickbooks_export.models import QuickBooksMapping
    from quickbooks_export.sandbox.accounting import Books

    Kind = QuickBooksMapping.Kind
    company = server.app.store.get(realm)
    by_kind = {
        m.kind: m
        for m in QuickBooksMapping.objects.filter(realm_id=realm, kind__in=[Kind.CUSTOMER, Kind.INVOICE, Kind.PAYMENT])
    }
    with company.lock:
        books = Books(company, server.app.clock())
        templates = {
            "Customer": books.get("Customer", by_kind[Kind.CUSTOMER].qbo_id),
            "Invoice": books.get("Invoice", by_kind[Kind.INVOICE].qbo_id),
            "Payment": books.get("Payment", template_payment.export_reference),
        }
        fields = {name: books._writable(name, entity) for name, entity in templates.items()}  # noqa: SLF001

        customer_ids = {template_payment.customer_id: templates["Customer"]["Id"]}
        for customer in Customer.objects.exclude(pk=template_payment.customer_id).order_by("pk"):
            entity = books.insert(
                "Customer", {**copy.deepcopy(fields["Customer"]), "DisplayName": customer.display_name}
            )
            customer_ids[customer.pk] = entity["Id"]

        applications = (
            PaymentApplication.objects.exclude(payment_id=template_payment.pk)
            .select_related("invoice", "payment")
            .order_by("payment_id")
        )
        invoice_ids, payment_ids, missing, changed = {}, {}, 0, 0
        for application in applications.iterator(chunk_size=SEED_BATCH):
            invoice, payment = application.invoice, application.payment
            customer_ref = {"value": customer_ids[invoice.customer_id]}
            change_it = changed < differ
            leave_out = not change_it and missing < differ
            amount = application.amount + (Decimal("1.00") if change_it else 0)
            changed += change_it
            invoice_fields = copy.deepcopy(fields["Invoice"])
            line = next(line for line in invoice_fields["Line"] if line.get("DetailType") == "SalesItemLineDetail")
            line["Amount"] = amount
            line["SalesItemLineDetail"].update({"UnitPrice": amount, "Qty": Decimal("1")})
            invoice_fields["Line"] = [line]
            invoice_fields.update(
                DocNumber=invoice.number, TxnDate=invoice.issued_on.isoformat(), CustomerRef=customer_ref
            )
            qbo_invoice = books.insert("Invoice", invoice_fields)
            invoice_ids[invoice.pk] = qbo_invoice["Id"]
            if leave_out:
                missing += 1  # deleted in QuickBooks: left out
                payment_ids[payment.pk] = str(10_000_000 + payment.pk)
                continue
            payment_fields = copy.deepcopy(fields["Payment"])
            payment_fields.update(
                TotalAmt=payment.amount,
                TxnDate=payment.received_on.isoformat(),
                CustomerRef=customer_ref,
                PrivateNote=f"FieldSync payment #{payment.pk}",
                Line=[
                    {"Amount": application.amount, "LinkedTxn": [{"TxnId": qbo_invoice["Id"], "TxnType": "Invoice"}]}
                ],
            )
            payment_ids[payment.pk] = books.insert("Payment", payment_fields)["Id"]

    def mappings(kind: str, ids: dict) -> list[QuickBooksMapping]:
        return [QuickBooksMapping(realm_id=realm, kind=kind, local_key=str(k), qbo_id=v) for k, v in ids.items()]

    with transaction.atomic():
        del customer_ids[template_payment.customer_id]
        for kind, ids in ((Kind.CUSTOMER, customer_ids), (Kind.INVOICE, invoice_ids), (Kind.PAYMENT, payment_ids)):
            QuickBooksMapping.objects.bulk_create(mappings(kind, ids), batch_size=SEED_BATCH)
        Payment.objects.exclude(pk=template_payment.pk).update(
            export_status=Payment.ExportStatus.EXPORTED, export_status_changed_at=timezone.now()
        )
        Invoice.objects.update(status=Invoice.Status.PAID)
    return missing, changed


if __name__ == "__main__":
    main()
