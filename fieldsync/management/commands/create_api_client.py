from django.core.management.base import BaseCommand, CommandError

from billing.models import BusinessUnit
from fieldsync.api.tokens import api_client_create
from fieldsync.exceptions import ApplicationError


class Command(BaseCommand):
    help = (
        "Create an API client and print its token, once: only a hash is stored, so write it down now. "
        "By default the client reads, writes and requests exports."
    )

    def add_arguments(self, parser):
        parser.add_argument("name", help="A name that says who calls, e.g. field-app or stripe-relay.")
        parser.add_argument("--read-only", action="store_true", help="May only read (no posts, no exports).")
        parser.add_argument("--no-export", action="store_true", help="May not request QuickBooks exports.")
        parser.add_argument(
            "--business-unit",
            action="append",
            dest="units",
            default=[],
            metavar="SLUG",
            help="A business unit whose records it acts on (repeat for several). Required when there are several.",
        )

    def handle(self, *args, name, read_only, no_export, units, **options):
        found = list(BusinessUnit.objects.filter(slug__in=units))
        if missing := sorted(set(units) - {unit.slug for unit in found}):
            raise CommandError(f"No business unit has the slug {', '.join(missing)}.")
        try:
            client, token = api_client_create(
                name=name, can_write=not read_only, can_export=not (read_only or no_export), business_units=found
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        self.stderr.write(
            f"Created API client {client.name!r} with scopes {', '.join(client.scopes)}. Its token is shown once "
            "(only a hash is kept); send it as 'Authorization: Bearer <token>':"
        )
        self.stdout.write(token)
