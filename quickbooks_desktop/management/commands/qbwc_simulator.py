"""Run a simulated QuickBooks Web Connector + QuickBooks Desktop company file against a FieldSync endpoint.

    .venv/bin/python manage.py qbwc_simulator --url http://127.0.0.1:8000/quickbooks-desktop/qbwc/ \
        --username fieldsync --password '<the Web Connector password set on the QuickBooks Desktop page>'

The company file lives in this process's memory and starts empty (with a vendor named by --vendor, if given), so each
run shows the whole flow; FieldSync re-finds or re-creates what it had linked (a missing ListID answers 3120).
"""

from django.core.management.base import BaseCommand, CommandError

from quickbooks_desktop.simulator import DesktopCompany, HttpTransport, WebConnectorSimulator, run_interleaved


class Command(BaseCommand):
    help = "Drive a FieldSync QuickBooks Web Connector endpoint with a simulated Web Connector and company file."

    def add_arguments(self, parser):
        parser.add_argument(
            "--url", required=True, help="The endpoint, e.g. http://127.0.0.1:8000/quickbooks-desktop/qbwc/"
        )
        parser.add_argument("--username", required=True)
        parser.add_argument("--password", required=True)
        parser.add_argument("--sessions", type=int, default=1, help="Web Connector sessions run at once (default 1).")
        parser.add_argument(
            "--drop-every", type=int, default=0, help="Lose every n-th answer after QuickBooks applied it."
        )
        parser.add_argument("--kill-after", type=int, default=0, help="Kill the first session after n message sets.")
        parser.add_argument(
            "--seconds-per-request", type=float, default=0.0, help="Simulated QuickBooks time per request."
        )
        parser.add_argument("--vendor", action="append", default=[], help="A vendor already in the company file.")

    def handle(self, *args, **options):
        company = DesktopCompany()
        for vendor in options["vendor"]:
            company.add_vendor(vendor)
        try:
            transport = HttpTransport(options["url"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        drop = range(options["drop_every"], 10_000, options["drop_every"]) if options["drop_every"] > 0 else ()
        simulators = [
            WebConnectorSimulator(
                transport,
                username=options["username"],
                password=options["password"],
                company=company,
                drop_responses=drop,
                kill_after=(options["kill_after"] or None) if index == 0 else None,
                seconds_per_request=options["seconds_per_request"],
                real_sleep=True,
                noop_wait=0.5,
            )
            for index in range(max(1, options["sessions"]))
        ]
        try:
            reports = run_interleaved(*simulators)
        except OSError as exc:
            raise CommandError(f"Could not reach {options['url']}: {exc}. Is FieldSync running (make run)?") from None
        for number, report in enumerate(reports, 1):
            outcome = {"nvu": "wrong user name or password", "none": "nothing to do"}.get(report.auth_code, "worked")
            self.stdout.write(
                f"Session {number}: {outcome}; {report.message_sets} message sets, {report.requests} requests, "
                f"{report.dropped} answers lost, {report.noops} waits; progress {report.percents}"
                + ("; killed midway" if report.killed else f"; closed: {report.closed}")
            )
            for error in report.errors:
                self.stdout.write(f"  error: {error}")
        self.stdout.write(f"Company file: {len(company.records('Customer'))} customers, "
                          f"{len(company.records('ItemService'))} service items")  # fmt: skip
        for invoice in company.transactions("Invoice"):
            self.stdout.write(
                f"  invoice {invoice.ref_number}: {invoice.total} total, {company.invoice_balance(invoice.txn_id)} open"
            )
        for payment in company.transactions("ReceivePayment"):
            self.stdout.write(
                f"  payment {payment.ref_number}: {payment.total}, {company.unused_payment(payment)} left as credit"
            )
