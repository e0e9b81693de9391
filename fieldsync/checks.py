"""System checks that keep unsafe settings out of production (fieldsync.settings.production sets
FIELDSYNC_PRODUCTION). They run with every management command (`check`, `migrate`, `runserver`, `qcluster`), and
wsgi.py / asgi.py run them before serving, so a production process with any of these refuses to start.
"""

from urllib.parse import urlsplit

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

TAG = "fieldsync_production"


@checks.register(TAG, checks.Tags.security)
def production_settings_check(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    if not getattr(settings, "FIELDSYNC_PRODUCTION", False):
        return []
    errors = []
    if settings.DEBUG:
        errors.append(checks.Error("DEBUG is on.", hint="Production never shows debug pages.", id="fieldsync.E001"))
    if settings.SECRET_KEY == settings.DEVELOPMENT_SECRET_KEY:
        errors.append(
            checks.Error(
                "DJANGO_SECRET_KEY is the development key published in the repository: sessions could be forged.",
                hint="Set DJANGO_SECRET_KEY to a long random value (python -c 'import secrets; "
                "print(secrets.token_urlsafe(50))').",
                id="fieldsync.E002",
            )
        )
    if settings.DEVELOPMENT_ENCRYPTION_KEY in settings.FIELDSYNC_ENCRYPTION_KEYS:
        errors.append(
            checks.Error(
                "FIELDSYNC_ENCRYPTION_KEYS contains the key shipped in the repository: QuickBooks tokens at rest "
                "would be readable by anyone.",
                hint="Generate a key: python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())' (if tokens were stored under the shipped key, put the new key "
                "first, keep the old one until they were re-encrypted, then reconnect QuickBooks).",
                id="fieldsync.E003",
            )
        )
    if getattr(settings, "FIELDSYNC_PROD_CHECK_LOCAL_QUICKBOOKS", False) and _all_on_this_machine():
        # `make prod-check` only: production settings against the QuickBooks sandbox on this machine. A warning, so
        # `check --deploy --fail-level WARNING` (CI, any real deployment's check) still fails with it set.
        errors.append(
            checks.Warning(
                "FIELDSYNC_PROD_CHECK_LOCAL_QUICKBOOKS is set: QuickBooks is the local sandbox on this machine over "
                "plain http. This is for `make prod-check` only.",
                hint="Unset FIELDSYNC_PROD_CHECK_LOCAL_QUICKBOOKS and point QBO_* at Intuit.",
                id="fieldsync.W001",
            )
        )
        return errors + _client_keys_errors()
    if settings.QBO_ENVIRONMENT not in ("production", "sandbox"):
        errors.append(
            checks.Error(
                f"QBO_ENVIRONMENT is {settings.QBO_ENVIRONMENT!r}: the local QuickBooks sandbox is for development.",
                hint="Set QBO_ENVIRONMENT=production (or sandbox for Intuit's sandbox companies).",
                id="fieldsync.E004",
            )
        )
    for name in ("QBO_DISCOVERY_URL", "QBO_API_BASE_URL", "QBO_REDIRECT_URI"):
        value = getattr(settings, name, "")
        if value and urlsplit(value).scheme != "https":
            errors.append(
                checks.Error(
                    f"{name} is {value!r}: QuickBooks URLs carry OAuth codes and tokens and must use https.",
                    id="fieldsync.E005",
                )
            )
    return errors + _client_keys_errors()


_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _all_on_this_machine() -> bool:
    """Every QuickBooks URL (and our OAuth callback) points at this machine: nothing can leave it over plain http."""
    urls = [settings.QBO_DISCOVERY_URL, settings.QBO_API_BASE_URL, settings.QBO_REDIRECT_URI]
    return settings.QBO_ENVIRONMENT == "local" and all(urls) and all(urlsplit(u).hostname in _LOOPBACK for u in urls)


def _client_keys_errors() -> list[checks.CheckMessage]:
    errors = []
    if not settings.QBO_CLIENT_ID or not settings.QBO_CLIENT_SECRET:
        errors.append(
            checks.Error(
                "QBO_CLIENT_ID and QBO_CLIENT_SECRET are not set.",
                hint="Use the Intuit app's production keys.",
                id="fieldsync.E006",
            )
        )
    return errors


def refuse_to_start_if_unsafe() -> None:
    """For wsgi.py / asgi.py: the web server runs no management command, so run the production checks here."""
    errors = [message for message in production_settings_check() if message.is_serious()]
    if errors:
        raise ImproperlyConfigured(
            "FieldSync refuses to start with unsafe production settings:\n"
            + "\n".join(f"  {message.id}: {message.msg}" for message in errors)
        )
