from django.core.management.base import BaseCommand, CommandError

from fieldsync.api.tokens import api_client_revoke
from fieldsync.exceptions import ApplicationError


class Command(BaseCommand):
    help = "Revoke an API client's token for good: its next request is refused (401). Create a new client to resume."

    def add_arguments(self, parser):
        parser.add_argument("name")

    def handle(self, *args, name, **options):
        try:
            client = api_client_revoke(name=name)
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(self.style.SUCCESS(f"Revoked the token of {client.name!r} ({client.token_prefix}…)."))
