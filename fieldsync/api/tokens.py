"""API client accounts and their tokens: create (the token is shown once), revoke, authenticate.

A token is "fsk_" followed by 43 URL-safe characters (32 random bytes). Only its SHA-256 is stored, with the first
12 characters as a visible prefix that finds the row; the hash is then compared in constant time. A fast hash is
right here (as in django-rest-knox): the token has 256 bits of entropy, so there is nothing to brute-force.
"""

import hashlib
import hmac
import secrets
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.services import business_unit_default
from fieldsync.exceptions import ApplicationError, ConflictError
from fieldsync.models import ApiClient

TOKEN_PREFIX = "fsk_"
PREFIX_LENGTH = len(TOKEN_PREFIX) + 8
# last_used_at is for people ("is this client still in use?"): once a minute is precise enough and spares a write
# on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)
# Compared against when no client has the prefix, so a wrong prefix takes as long as a wrong secret.
_DUMMY_HASH = hashlib.sha256(b"no such token").hexdigest()


class InvalidToken(ApplicationError):
    code = "invalid_token"
    http_status = 401


class RevokedToken(InvalidToken):
    code = "token_revoked"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def api_client_create(
    *, name: str, can_write: bool = True, can_export: bool = True, user=None, business_units=None
) -> tuple[ApiClient, str]:
    """Create a client acting on `business_units` (default: the only unit) and return it with its token. The token is
    not stored anywhere: show it once.

    Raises ConflictError (code api_client_exists) when the name is taken, and ApplicationError (code
    business_unit_required) when the installation has several units and none is given.
    """
    name = name.strip()
    if not name:
        raise ApplicationError("An API client needs a name.", code="name_required")
    units = list(business_units) if business_units else [business_unit_default()]
    if ApiClient.objects.filter(name=name).exists():
        raise ConflictError(f"An API client named {name!r} already exists.", code="api_client_exists")
    for _ in range(5):  # a prefix collision (48 random bits) is unlikely; draw again rather than fail
        token = _new_token()
        try:
            with transaction.atomic():
                client = ApiClient.objects.create(
                    name=name,
                    token_prefix=token[:PREFIX_LENGTH],
                    token_hash=token_hash(token),
                    can_write=can_write,
                    can_export=can_export,
                    created_by=user,
                )
                client.business_units.set(units)
        except IntegrityError:
            if ApiClient.objects.filter(name=name).exists():
                raise ConflictError(f"An API client named {name!r} already exists.", code="api_client_exists") from None
            continue
        return client, token
    raise ApplicationError("Could not draw a unique token prefix; try again.", code="token_prefix_collision")


def api_client_revoke(*, name: str) -> ApiClient:
    """Revoke a client's token for good: its next request gets 401 (code token_revoked)."""
    with transaction.atomic():
        client = ApiClient.objects.select_for_update().filter(name=name).first()
        if client is None:
            raise ApplicationError(f"No API client is named {name!r}.", code="api_client_not_found")
        if client.revoked_at is not None:
            raise ConflictError(
                f"{name!r} was already revoked on {client.revoked_at:%Y-%m-%d %H:%M}.", code="already_revoked"
            )
        client.revoked_at = timezone.now()
        client.save(update_fields=["revoked_at"])
    return client


def api_client_authenticate(*, token: str) -> ApiClient:
    """The client a token belongs to. Raises InvalidToken (unknown token) or RevokedToken.

    Side effect: refreshes the client's last_used_at when it is older than a minute.
    """
    client = None
    if token.startswith(TOKEN_PREFIX) and len(token) > PREFIX_LENGTH:
        client = ApiClient.objects.filter(token_prefix=token[:PREFIX_LENGTH]).first()
    expected = client.token_hash if client is not None else _DUMMY_HASH
    if not hmac.compare_digest(token_hash(token), expected) or client is None:
        raise InvalidToken("The API token is not valid.")
    if client.revoked_at is not None:
        raise RevokedToken(f"The API token of {client.name!r} has been revoked; ask for a new one.")
    now = timezone.now()
    if client.last_used_at is None or client.last_used_at < now - LAST_USED_RESOLUTION:
        ApiClient.objects.filter(pk=client.pk).update(last_used_at=now)
        client.last_used_at = now
    return client
