import os
import time

from django.core.management.base import BaseCommand

from billing.demo import DEMO_USERNAME, ensure_demo_user, seed_scale, seed_second_unit, seed_story_company
from billing.models import Customer, Invoice


class Command(BaseCommand):
    help = (
        "Create the demo company (customers, jobs, invoices in every state, payments, refunds), a second business "
        "unit with a few records of its own, and a staff login that is a member of both. "
        "--scale N adds N bulk payments for benchmarks."
    )

    def add_arguments(self, parser):
        parser.add_argument("--if-empty", action="store_true", help="Do nothing if the database has customers.")
        parser.add_argument("--scale", type=int, default=0, metavar="N", help="Also bulk-create N payments.")

    def handle(self, *args, if_empty: bool, scale: int, **options):
        password = os.environ.get("FIELDSYNC_DEMO_PASSWORD", "fieldsync-demo")
        if if_empty and Customer.objects.exists():
            self.stdout.write("Demo data already present; nothing to do.")
        elif not scale or not Customer.objects.filter(invoices__number="INV-1040").exists():
            summary = seed_story_company()
            self.stdout.write(
                f"Demo company: {summary.customers} customers, {summary.jobs} jobs, {summary.invoices} invoices, "
                f"{summary.payments} payments, {summary.refunds} refunds, {summary.manual_items} item(s) needing "
                "manual handling."
            )
            summary = seed_second_unit()
            self.stdout.write(
                f"Second business unit: {summary.customers} customers, {summary.invoices} invoices, "
                f"{summary.payments} payments."
            )
        if scale:
            started = time.monotonic()
            story_unit = Invoice.objects.get(number="INV-1040").business_unit
            summary = seed_scale(payments=scale, business_unit=story_unit)
            self.stdout.write(
                f"Bulk: {summary.payments} payments on {summary.invoices} invoices for {summary.customers} customers "
                f"in {time.monotonic() - started:.1f} s."
            )
        _, created = ensure_demo_user(password=password)
        if created:
            self.stdout.write(self.style.SUCCESS(f"Staff login: {DEMO_USERNAME} / {password}"))
        else:
            self.stdout.write(f"Staff login: {DEMO_USERNAME} (password unchanged)")
