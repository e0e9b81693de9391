from django.core.management.base import BaseCommand

from quickbooks_export.crypto import rotate_stored_tokens


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored QuickBooks token with the first key of FIELDSYNC_ENCRYPTION_KEYS. Put the new key "
        "first (keeping the old ones after it), run this, then remove the old keys."
    )

    def handle(self, *args, **options):
        count = rotate_stored_tokens()
        self.stdout.write(self.style.SUCCESS(f"Re-encrypted the tokens of {count} QuickBooks connection(s)."))
