"""Idempotency-Key for every POST: a retried request is answered, never done twice.

How a POST with a key runs (`idempotent` wraps the view's `post`; authentication and permissions ran before):

1. Claim: INSERT (owner, key, fingerprint, IN_PROGRESS, lease) in its own committed transaction. The unique
   constraint on (owner, key) decides between concurrent requests: exactly one INSERT succeeds. The loser
   (IntegrityError) reads the row and answers
     - a different fingerprint (method + path + canonical JSON body) → 422 idempotency_key_reused;
     - COMPLETED → the stored status and body, with `Idempotent-Replayed: true`;
     - IN_PROGRESS → 409 idempotency_key_in_progress (Retry-After), unless the lease expired: then the holder died
       before committing any work (see 2) and the row is taken over with a new claim token.
2. Work: one transaction runs the view and stores its response (status + rendered body) on the row, so the work
   and its record commit together or not at all. The store is an UPDATE fenced by the claim token: if another
   request took the row over meanwhile, the work is rolled back and this request answers 409. The view runs in a
   savepoint that is rolled back when it answers 4xx, so a refused request changes nothing — and the 4xx is stored
   too, so a retry gets the same answer.
3. A 5xx (an unexpected exception) rolls the work back and deletes the claim: the key is free for a retry.

On PostgreSQL (outside a caller's transaction: every web request) 1 and 2 share ONE transaction, so a POST commits
(and waits for its WAL flush, an fsync) once instead of twice: BEGIN; one SELECT takes pg_try_advisory_xact_lock on
(owner, key) and says whether the key was used before; the work (in its savepoint, as in 2); one INSERT of the key's
row, COMPLETED, with the answer; COMMIT. The transaction-scoped advisory lock does what the committed IN_PROGRESS
row did: a concurrent request with the same key cannot take it and answers 409 at once. A key already in the table
(a retry of a finished request, or a claim of the two-step path) is answered by the two-step path above (replay,
422, 409, or the take-over of an expired lease), before any work. A 5xx or a crash rolls everything back and no
row was written, so the key is free at once. SQLite (one writer at a time) and callers already in a transaction
keep the two-step path.

Keys are kept at least IDEMPOTENCY_KEY_RETENTION (24 hours); `manage.py purge_idempotency_keys` removes older ones.
"""

import functools
import hashlib
import json
import re
import secrets
from contextlib import nullcontext
from datetime import timedelta

from django.db import IntegrityError, connection, transaction
from django.http import HttpResponse
from django.utils import timezone

from fieldsync.exceptions import ApplicationError, ConflictError
from fieldsync.models import ApiClient, IdempotencyKey

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
IDEMPOTENCY_KEY_RETENTION = timedelta(hours=24)
# Longer than any request may run (gunicorn kills a worker after 30 s). A holder that outlives its lease cannot
# commit (the claim token fences it), so the lease only bounds how long a crashed request blocks its key.
LEASE = timedelta(minutes=2)
KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,255}$")  # printable ASCII without spaces: a UUID fits


class IdempotencyKeyRequired(ApplicationError):
    code = "idempotency_key_required"
    http_status = 400


class IdempotencyKeyInvalid(ApplicationError):
    code = "idempotency_key_invalid"
    http_status = 400


class IdempotencyKeyReused(ApplicationError):
    code = "idempotency_key_reused"
    http_status = 422


class IdempotencyKeyInProgress(ConflictError):
    code = "idempotency_key_in_progress"
    headers = {"Retry-After": "1"}


class _RefusedResponse(Exception):
    """Carries a 4xx response out of the savepoint so that the view's writes are rolled back."""

    def __init__(self, response):
        self.response = response


class _ServerError(Exception):
    def __init__(self, response):
        self.response = response


def request_fingerprint(request) -> str:
    """SHA-256 of the method, the path and the body as canonical JSON (sorted keys, no spaces)."""
    data = request.data
    if hasattr(data, "lists"):  # a QueryDict (form data): keep repeated keys
        data = {key: values for key, values in data.lists()}
    body = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(f"{request.method}\n{request.get_full_path()}\n{body}".encode()).hexdigest()


def _owner(request) -> dict:
    if isinstance(request.auth, ApiClient):
        return {"api_client": request.auth}
    return {"user": request.user}


def _key_from(request) -> str:
    key = request.headers.get(HEADER)
    if key is None or key == "":
        raise IdempotencyKeyRequired(
            f"Send an {HEADER} header with every POST (a new UUID per operation, the same one when you retry it).",
            extra={HEADER: "required"},
        )
    if not KEY_PATTERN.match(key):
        raise IdempotencyKeyInvalid(
            f"{HEADER} must be 1 to 255 printable ASCII characters without spaces, such as a UUID.",
            extra={HEADER: "invalid"},
        )
    return key


def _replay(record: IdempotencyKey) -> HttpResponse:
    response = HttpResponse(record.response_body, status=record.response_status, content_type="application/json")
    response[REPLAYED_HEADER] = "true"
    return response


def _claim(*, owner: dict, key: str, fingerprint: str, request) -> tuple[IdempotencyKey | None, HttpResponse | None]:
    """Claim the key: (row, None) when this request may do the work, (None, replay) when it was done already.

    Raises IdempotencyKeyReused / IdempotencyKeyInProgress.
    """
    for _ in range(3):  # the row may vanish between our INSERT and SELECT (a 5xx released it): claim again
        now = timezone.now()
        token = secrets.token_hex(16)
        try:
            # Outside a transaction (every web request: no ATOMIC_REQUESTS) the INSERT commits on its own: one round
            # trip, not BEGIN / INSERT / COMMIT. Inside one (a caller's atomic block, the tests), a savepoint keeps a
            # duplicate key from breaking it.
            with transaction.atomic() if connection.in_atomic_block else nullcontext():
                record = IdempotencyKey.objects.create(
                    **owner,
                    key=key,
                    fingerprint=fingerprint,
                    method=request.method,
                    path=request.get_full_path()[:500],
                    claim_token=token,
                    locked_until=now + LEASE,
                    created_at=now,
                )
            return record, None
        except IntegrityError:
            existing = IdempotencyKey.objects.filter(**owner, key=key).first()
        if existing is None:
            continue
        if existing.fingerprint != fingerprint:
            raise IdempotencyKeyReused(
                f"This {HEADER} was already used for a different request ({existing.method} {existing.path}). "
                "Use a new key for a new operation.",
                extra={HEADER: "reused"},
            )
        if existing.state == IdempotencyKey.State.COMPLETED:
            return None, _replay(existing)
        if existing.locked_until < now:
            taken = IdempotencyKey.objects.filter(
                pk=existing.pk, state=IdempotencyKey.State.IN_PROGRESS, claim_token=existing.claim_token
            ).update(claim_token=token, locked_until=now + LEASE)
            if taken:
                existing.claim_token, existing.locked_until = token, now + LEASE
                return existing, None
            continue  # someone else completed or took it over first: look again
        raise IdempotencyKeyInProgress(
            f"A request with this {HEADER} is still being processed; retry in a moment to get its response.",
            extra={HEADER: "in_progress"},
        )
    raise IdempotencyKeyInProgress(
        f"A request with this {HEADER} is still being processed; retry in a moment to get its response.",
        extra={HEADER: "in_progress"},
    )


class _KeyTaken(Exception):
    """The one-transaction path found the key in the table: the two-step path decides what to answer."""


def _advisory_lock_id(owner: dict, key: str) -> int:
    """A signed 64-bit number for (owner, key): what pg_try_advisory_xact_lock takes. A collision of two different
    keys only makes one of two simultaneous requests answer 409 (retry in a second)."""
    who = f"client:{owner['api_client'].pk}" if "api_client" in owner else f"user:{owner['user'].pk}"
    digest = hashlib.sha256(f"fieldsync-idempotency\n{who}\n{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _in_one_transaction(view, request, handler, args, kwargs, *, owner: dict, key: str, fingerprint: str):
    """PostgreSQL outside a transaction: the key's lock, the work and the key's row with its answer, in one
    transaction (module docstring). Raises _KeyTaken when the key is already in the table."""
    ((owner_field, owner_value),) = owner.items()
    table = connection.ops.quote_name(IdempotencyKey._meta.db_table)
    owner_column = connection.ops.quote_name(IdempotencyKey._meta.get_field(owner_field).column)
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                # One round trip: the key's lock (held to COMMIT), and whether the key was used before.
                cursor.execute(
                    f"SELECT pg_try_advisory_xact_lock(%s), EXISTS (SELECT 1 FROM {table} "  # noqa: S608 (names only)
                    f"WHERE {owner_column} = %s AND {connection.ops.quote_name('key')} = %s)",
                    [_advisory_lock_id(owner, key), owner_value.pk, key],
                )
                locked, used = cursor.fetchone()
            if not locked:
                raise IdempotencyKeyInProgress(
                    f"A request with this {HEADER} is still being processed; retry in a moment to get its response.",
                    extra={HEADER: "in_progress"},
                )
            if used:
                raise _KeyTaken
            response = _render(view, request, _run(view, request, handler, args, kwargs), args, kwargs)
            now = timezone.now()
            # The key's row is written once, with its answer. Under the lock no request of this path can have
            # written it meanwhile; the unique constraint still stops any other (IntegrityError: all rolled back).
            try:
                IdempotencyKey.objects.create(
                    **owner,
                    key=key,
                    fingerprint=fingerprint,
                    method=request.method,
                    path=request.get_full_path()[:500],
                    state=IdempotencyKey.State.COMPLETED,
                    claim_token=secrets.token_hex(16),
                    locked_until=now,
                    created_at=now,
                    completed_at=now,
                    response_status=response.status_code,
                    response_body=response.content.decode("utf-8"),
                )
            except IntegrityError:
                raise _KeyTaken from None  # out of the atomic block: everything is rolled back
    except _ServerError as error:
        return error.response  # the work is rolled back and no row was written: the key is free for a retry
    return response


def _render(view, request, response, args, kwargs):
    response = view.finalize_response(request, response, *args, **kwargs)
    if hasattr(response, "render"):
        response.render()
    return response


def _run(view, request, handler, args, kwargs):
    """Run the view in a savepoint; roll it back if it answers 4xx. Exceptions become responses as DRF would."""
    try:
        with transaction.atomic():
            try:
                response = handler(view, request, *args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - turned into the response DRF would give (or re-raised)
                response = view.handle_exception(exc)
            if response.status_code >= 500:
                raise _ServerError(response)
            if response.status_code >= 400:
                raise _RefusedResponse(response)
    except _RefusedResponse as refused:
        return refused.response
    return response


def idempotent(handler):
    """Decorate an APIView's `post`: require an Idempotency-Key and answer retries from the stored response."""

    @functools.wraps(handler)
    def wrapper(view, request, *args, **kwargs):
        key = _key_from(request)
        owner = _owner(request)
        fingerprint = request_fingerprint(request)
        if connection.vendor == "postgresql" and not connection.in_atomic_block:
            try:
                return _in_one_transaction(
                    view, request, handler, args, kwargs, owner=owner, key=key, fingerprint=fingerprint
                )
            except _KeyTaken:
                pass  # a retry, or a key the two-step path holds: answered below
        record, replay = _claim(owner=owner, key=key, fingerprint=fingerprint, request=request)
        if replay is not None:
            return replay
        try:
            with transaction.atomic():
                response = _render(view, request, _run(view, request, handler, args, kwargs), args, kwargs)
                stored = IdempotencyKey.objects.filter(
                    pk=record.pk, state=IdempotencyKey.State.IN_PROGRESS, claim_token=record.claim_token
                ).update(
                    state=IdempotencyKey.State.COMPLETED,
                    response_status=response.status_code,
                    response_body=response.content.decode("utf-8"),
                    completed_at=timezone.now(),
                )
                if not stored:
                    # Our lease expired and another request took the key over: it does the work, not us.
                    raise IdempotencyKeyInProgress(
                        f"A request with this {HEADER} is being processed; retry in a moment to get its response.",
                        extra={HEADER: "in_progress"},
                    )
        except IdempotencyKeyInProgress:
            raise
        except _ServerError as error:
            _release(record)
            return error.response
        except BaseException:
            _release(record)
            raise
        return response

    wrapper.idempotent = True
    return wrapper


def _release(record: IdempotencyKey) -> None:
    IdempotencyKey.objects.filter(
        pk=record.pk, state=IdempotencyKey.State.IN_PROGRESS, claim_token=record.claim_token
    ).delete()


def idempotency_keys_purge(*, older_than: timedelta = IDEMPOTENCY_KEY_RETENTION) -> int:
    """Delete keys created before `older_than` ago (never less than the retention). Returns how many."""
    if older_than < IDEMPOTENCY_KEY_RETENTION:
        raise ApplicationError(
            f"Idempotency keys are kept at least {IDEMPOTENCY_KEY_RETENTION}; clients may retry until then.",
            code="retention_too_short",
        )
    deleted, _ = IdempotencyKey.objects.filter(created_at__lt=timezone.now() - older_than).delete()
    return deleted
