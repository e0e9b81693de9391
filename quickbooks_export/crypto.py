"""Encryption at rest for OAuth tokens.

MultiFernet over settings.FIELDSYNC_ENCRYPTION_KEYS: the first key encrypts, every key decrypts. To rotate keys,
put a new key first, run `python manage.py rotate_encryption_keys` (re-encrypts every stored token with the new
key), then drop the old key from the list.
"""

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

from fieldsync.exceptions import ApplicationError


class TokenDecryptionError(ApplicationError):
    """A stored token cannot be decrypted with any configured key (wrong or missing FIELDSYNC_ENCRYPTION_KEYS)."""

    code = "token_decryption_failed"
    http_status = 500


def _fernet() -> MultiFernet:
    # Built per call (cheap) so a changed setting, e.g. in tests or after a rotation, takes effect at once.
    keys = [key for key in settings.FIELDSYNC_ENCRYPTION_KEYS if key]
    if not keys:
        raise ImproperlyConfigured("FIELDSYNC_ENCRYPTION_KEYS is empty: at least one Fernet key is needed.")
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except ValueError as exc:
        # Never echo the key itself.
        raise ImproperlyConfigured(
            "FIELDSYNC_ENCRYPTION_KEYS holds a value that is not a Fernet key (32 url-safe base64-encoded bytes)."
        ) from exc


def encrypt(plaintext: str) -> str:
    """Encrypt with the newest key. The empty string stays empty (no token stored)."""
    if not plaintext:
        return ""
    return _fernet().encrypt(plaintext.encode()).decode("ascii")


def decrypt(ciphertext: str) -> str:
    """Decrypt with any configured key; raise TokenDecryptionError (without any token text) when none fits."""
    if not ciphertext:
        return ""
    try:
        return _fernet().decrypt(ciphertext.encode("ascii")).decode()
    except (InvalidToken, UnicodeError):
        raise TokenDecryptionError(
            "A stored QuickBooks token cannot be decrypted with the configured FIELDSYNC_ENCRYPTION_KEYS. "
            "Restore the key it was encrypted with, or reconnect QuickBooks."
        ) from None


def reencrypt(ciphertext: str) -> str:
    """Re-encrypt with the newest key (keeps Fernet's original timestamp)."""
    if not ciphertext:
        return ""
    try:
        return _fernet().rotate(ciphertext.encode("ascii")).decode("ascii")
    except (InvalidToken, UnicodeError):
        raise TokenDecryptionError(
            "A stored QuickBooks token cannot be decrypted with any configured key; it was not rotated."
        ) from None


def rotate_stored_tokens() -> int:
    """Re-encrypt every stored token with the newest key. Returns the number of connections rewritten.

    Each row is locked while it is rewritten, so a concurrent token refresh cannot interleave; the token version is
    left alone (the tokens themselves do not change).
    """
    from quickbooks_export.models import QuickBooksConnection

    rewritten = 0
    ids = list(
        QuickBooksConnection.objects.exclude(access_token_ciphertext="", refresh_token_ciphertext="")
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    for pk in ids:
        with transaction.atomic():
            row = QuickBooksConnection.objects.select_for_update().filter(pk=pk).first()
            if row is None:
                continue
            row.access_token_ciphertext = reencrypt(row.access_token_ciphertext)
            row.refresh_token_ciphertext = reencrypt(row.refresh_token_ciphertext)
            row.save(update_fields=["access_token_ciphertext", "refresh_token_ciphertext", "updated_at"])
            rewritten += 1
    return rewritten
