from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from fieldsync.api.idempotency import IDEMPOTENCY_KEY_RETENTION, idempotency_keys_purge
from fieldsync.exceptions import ApplicationError


class Command(BaseCommand):
    help = "Delete idempotency keys older than --hours (default 24, never less): run it daily."

    def add_arguments(self, parser):
        default = int(IDEMPOTENCY_KEY_RETENTION.total_seconds() // 3600)
        parser.add_argument("--hours", type=int, default=default, help=f"Keep keys this recent (at least {default}).")

    def handle(self, *args, hours, **options):
        try:
            deleted = idempotency_keys_purge(older_than=timedelta(hours=hours))
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(f"Deleted {deleted} idempotency key(s) older than {hours} hours.")
