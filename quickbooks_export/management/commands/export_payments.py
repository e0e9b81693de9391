import time

from django.core.management.base import BaseCommand, CommandError

from fieldsync.exceptions import ApplicationError
from fieldsync.metrics import quickbooks_calls_flush
from quickbooks_export.models import ExportBatch, ExportBatchItem
from quickbooks_export.selectors import export_batch_counts
from quickbooks_export.services import export_all_exportable_start, export_batch_start, export_run

Outcome = ExportBatchItem.Outcome


class Command(BaseCommand):
    help = (
        "Export payments to QuickBooks and wait for the result: --payment ID [ID ...] or --all-exportable. "
        "Runs the exporter in this process (or follows a worker that is already running it)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--payment", type=int, nargs="+", default=[], metavar="ID", help="payment ids")
        parser.add_argument("--all-exportable", action="store_true", help="every exportable payment not yet exported")

    def handle(self, *args, payment: list[int], all_exportable: bool, **options):
        if bool(payment) == all_exportable:
            raise CommandError("Give either --payment ID [ID ...] or --all-exportable.")
        from quickbooks_desktop.services import desktop_is_target

        if desktop_is_target():
            raise CommandError(
                "Exports go to QuickBooks Desktop, which the Web Connector runs on its schedule: start them from the "
                "Payments page or the API (or switch back to QuickBooks Online on the QuickBooks Desktop page)."
            )
        try:
            if all_exportable:
                batch = export_all_exportable_start(source=ExportBatch.Source.COMMAND)
            else:
                batch = export_batch_start(
                    payments=payment, selection=f"payments {', '.join(map(str, payment))}", source="command"
                )
        except ApplicationError as exc:
            raise CommandError(exc.message) from None

        self.stdout.write(f"Export #{batch.pk}: {batch.selection}")
        while True:
            batch.refresh_from_db()
            counts = export_batch_counts(batch_id=batch.pk)
            self._progress(counts, batch.waiting_reason)
            if batch.status == ExportBatch.Status.FINISHED:
                break
            if export_run(realm_id=batch.realm_id) in ("busy", "waiting", "backoff"):
                time.sleep(1)  # another worker is exporting, or QuickBooks asks us to wait: follow along
        self.stdout.write("")
        quickbooks_calls_flush()  # this process's QuickBooks calls, into the /metrics totals
        self._summary(batch)

    def _progress(self, counts: dict, waiting: str) -> None:
        total, done = counts["total"], counts["done"]
        width = 30
        filled = int(width * done / total) if total else width
        bar = "#" * filled + "-" * (width - filled)
        note = f"  {waiting}" if waiting else ""
        self.stdout.write(f"\r[{bar}] {done}/{total}{note}"[:160], ending="")
        self.stdout.flush()

    def _summary(self, batch: ExportBatch) -> None:
        counts = export_batch_counts(batch_id=batch.pk)
        rows = [(label, counts[value]) for value, label in Outcome.choices if value != Outcome.PENDING]
        self.stdout.write(f"{'Outcome':<24}{'Payments':>9}")
        for label, count in rows:
            self.stdout.write(f"{label:<24}{count:>9}")
        self.stdout.write(f"{'Total':<24}{counts['total']:>9}")
        for item in batch.items.filter(outcome__in=[Outcome.FAILED, Outcome.SKIPPED]).order_by("id")[:50]:
            what = item.subject_label[0].lower() + item.subject_label[1:]
            self.stdout.write(f"  {what} {item.get_outcome_display().lower()}: {item.message}")
