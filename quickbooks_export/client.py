"""The QuickBooks boundary: the only module that imports python-quickbooks (`quickbooks`) or intuit-oauth (`intuitlib`).

- OAuth 2.0: `auth_client()`, `authorization_url()`, `exchange_code()`, `refresh_tokens()`, `revoke_token()`.
- `QuickBooksClient`: a per-use facade over python-quickbooks for the current connection. Payloads in and out are
  plain dicts in QBO's JSON shape; amounts come back as Decimal (`use_decimal=True`).
- Every library or transport error leaves this module as a `quickbooks_export.errors.QuickBooksError` subclass,
  chosen by QuickBooks' error code and the HTTP status, never by the library's exception class:

  | what QuickBooks / the network did                                 | raised                         | retryable |
  |-------------------------------------------------------------------|--------------------------------|-----------|
  | HTTP 401, code 3200 / AuthenticationFailed (after one refresh)    | QuickBooksAuthorizationError   | no        |
  | token endpoint `invalid_grant` (connection marked needs_reconnect) | QuickBooksAuthorizationError   | no        |
  | HTTP 403, code 3100 / ApplicationAuthorizationFailed              | QuickBooksAuthorizationError   | no        |
  | HTTP 429, code 003001 / ThrottleExceeded                          | QuickBooksThrottledError       | yes       |
  | HTTP 5xx, connection error, timeout, unreadable 200 answer        | QuickBooksUnavailableError     | yes       |
  | code 5010 Stale Object Error                                      | QuickBooksStaleObjectError     | no        |
  | code 6240 Duplicate Name Exists                                   | QuickBooksDuplicateNameError   | no        |
  | code 610 Object Not Found                                         | QuickBooksObjectNotFoundError  | no        |
  | any other Fault (2000-4999, 6000, 6140, 6540, ...)                | QuickBooksValidationError      | no        |

Why not dispatch on exception classes: python-quickbooks 0.9.12 raises the base QuickbooksException for codes 5000-9999
and `error_code=10000` for any non-JSON or lowercase-`fault` gateway answer (429, 500, 503 ...), and keeps neither the
HTTP status nor the other Errors of a Fault. Our HTTP session therefore remembers the last response, and we read the
status, the Retry-After header and the whole Fault from it.

Token lifecycle (see QuickBooksClient._refresh): refresh shortly before expiry and once after a 401; the refresh HTTP
call happens outside any transaction, then a short `select_for_update` transaction stores the new tokens only if the
stored token version is still the one we refreshed from. Tokens never reach logs, reprs or error messages.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TypeVar
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone
from intuitlib.client import AuthClient
from intuitlib.enums import Scopes
from intuitlib.exceptions import AuthClientError
from quickbooks import QuickBooks
from quickbooks.exceptions import QuickbooksException

from fieldsync.metrics import quickbooks_call_record
from quickbooks_export.crypto import TokenDecryptionError
from quickbooks_export.errors import (
    QuickBooksAuthorizationError,
    QuickBooksDuplicateNameError,
    QuickBooksError,
    QuickBooksNotConnectedError,
    QuickBooksObjectNotFoundError,
    QuickBooksStaleObjectError,
    QuickBooksThrottledError,
    QuickBooksUnavailableError,
    QuickBooksValidationError,
)
from quickbooks_export.mappers import quote
from quickbooks_export.models import QuickBooksConnection

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Refresh this long before the access token's stated expiry, so a request never leaves with a token about to die.
ACCESS_TOKEN_REFRESH_MARGIN = timedelta(minutes=5)
MAX_BATCH_ITEMS = 30
MAX_REQUEST_ID_LENGTH = 50
MAX_BATCH_REQUEST_ID_LENGTH = 36
QUERY_PAGE_SIZE = 1000  # QBO's maximum MAXRESULTS
# A "WHERE Id IN (...)" read names at most one page of ids, and its statement stays under this many characters:
# python-quickbooks POSTs the statement as the body (no URL length applies); Intuit documents no statement length
# ("Query operations and syntax"), so the bound is ours and conservative (*unconfirmed* what QuickBooks refuses).
QUERY_MAX_CHARS = 20_000
DEFAULT_RETRY_AFTER_SECONDS = 60.0  # QBO does not always send Retry-After; its throttle window is a minute
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}

# QBO error codes we dispatch on (strings as QBO sends them; python-quickbooks turns them into ints).
CODE_AUTHENTICATION_FAILED = 3200
CODE_AUTHORIZATION_FAILED = 3100
CODE_THROTTLED = 3001  # "003001"
CODE_OBJECT_NOT_FOUND = 610
CODE_STALE_OBJECT = 5010
CODE_DUPLICATE_NAME = 6240
CODE_SYSTEM_FAILURE = 10000  # QBO: "An application error has occurred while processing your request"
# python-quickbooks reuses 10000 for "not JSON" / "non-200 without a Fault"; _error_from_library drops that one.
CODE_LIBRARY_UNREADABLE = 10000


# --- plain values ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TokenSet:
    """A token response. The tokens are excluded from repr so they cannot leak through logging or tracebacks."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_in: int | None = None
    refresh_expires_in: int | None = None


class _JsonEncoder(json.JSONEncoder):
    # Decimals go out as JSON strings ("100.10"), exactly as python-quickbooks sends them (QBO accepts both).
    def default(self, o):
        if isinstance(o, Decimal):
            return str(o)
        if isinstance(o, datetime | date):
            return o.isoformat()
        return super().default(o)


def _dumps(payload) -> str:
    return json.dumps(payload, cls=_JsonEncoder)


def _require_safe_transport(url: str) -> None:
    """Tokens only travel over https, except to a QuickBooks-compatible server on this machine (the local sandbox)."""
    parts = urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK_HOSTS):
        return
    raise ImproperlyConfigured(f"QuickBooks URL {url!r} must use https (plain http is allowed only for localhost).")


# --- HTTP sessions with timeouts ------------------------------------------------------------------------------------
class _TimeoutAuthClient(AuthClient):
    """intuit-oauth's AuthClient is itself a requests.Session and sends every call (discovery, token, revoke) through
    Session.request without a timeout; give this instance a default one."""

    def request(self, method, url, *args, **kwargs):
        kwargs.setdefault("timeout", settings.QBO_HTTP_TIMEOUT_SECONDS)
        return super().request(method, url, *args, **kwargs)


class _ApiSession(requests.Session):
    """The session python-quickbooks sends API requests through (`QuickBooks.process_request` calls
    `self.session.request(...)` with no timeout and reads `self.session.access_token` for the Bearer header).

    We give the client this plain session instead of the OAuth2Session it would build itself: it adds a default
    timeout, remembers the last response (python-quickbooks drops the HTTP status and the Retry-After header), and
    never logs the token (requests-oauthlib logs the token dict at DEBUG level)."""

    def __init__(self, *, access_token: str, timeout: float):
        super().__init__()
        self.access_token = access_token
        self.timeout = timeout
        self.last_response: requests.Response | None = None

    def request(self, method, url, *args, **kwargs):
        kwargs.setdefault("timeout", self.timeout)
        self.last_response = None
        started = time.monotonic()
        try:
            response = super().request(method, url, *args, **kwargs)
        except requests.RequestException:
            _log_call(method, url, None, started)
            raise
        _log_call(method, url, response.status_code, started)
        self.last_response = response
        return response

    def __repr__(self) -> str:
        return "<_ApiSession>"


def _log_call(method: str, url: str, status: int | None, started: float) -> None:
    """One log line and one metrics count per QuickBooks call. The path only: the query string carries QuickBooks
    queries (customer names), and the request id of the work comes with the record (fieldsync.observability)."""
    quickbooks_call_record(method=method, url=url, status=status)
    logger.info(
        "QuickBooks %s %s -> %s in %.0f ms",
        method.upper(),
        urlsplit(url).path,
        status or "no answer",
        (time.monotonic() - started) * 1000,
    )


# --- OAuth 2.0 ------------------------------------------------------------------------------------------------------
def _not_configured(setting: str) -> QuickBooksError:
    """No QuickBooks server is configured (the test settings, or a half-set deployment): refuse without dialing
    anything, with an error the pages show. Production settings' system checks refuse to start like this."""
    error = QuickBooksError(
        f"QuickBooks is not configured on this server ({setting} is empty); ask whoever runs FieldSync to set it.",
        extra={"setting": setting},
    )
    error.code = "quickbooks_not_configured"
    return error


def _discovery_target() -> str:
    environment = settings.QBO_ENVIRONMENT
    if environment in ("production", "sandbox"):
        return environment
    if not settings.QBO_DISCOVERY_URL:
        raise _not_configured("QBO_DISCOVERY_URL")
    _require_safe_transport(settings.QBO_DISCOVERY_URL)
    # intuit-oauth uses any other environment string as the discovery document's URL.
    return settings.QBO_DISCOVERY_URL


def auth_client(
    *, access_token: str | None = None, refresh_token: str | None = None, realm_id: str | None = None
) -> AuthClient:
    """A new intuit-oauth AuthClient for our app. Fetches the discovery document (one HTTP GET).

    Raises QuickBooksUnavailableError when the discovery document cannot be fetched or read.
    """
    if not settings.QBO_CLIENT_ID or not settings.QBO_CLIENT_SECRET:
        raise ImproperlyConfigured("QBO_CLIENT_ID and QBO_CLIENT_SECRET must be set to connect to QuickBooks.")
    try:
        client = _TimeoutAuthClient(
            client_id=settings.QBO_CLIENT_ID,
            client_secret=settings.QBO_CLIENT_SECRET,
            redirect_uri=settings.QBO_REDIRECT_URI,
            environment=_discovery_target(),
            access_token=access_token,
            refresh_token=refresh_token,
            realm_id=realm_id,
        )
    except (requests.RequestException, AuthClientError, ValueError, KeyError) as exc:
        raise QuickBooksUnavailableError(
            "Could not read QuickBooks' sign-in configuration (discovery document); try again shortly.",
            http_status=getattr(exc, "status_code", None),
        ) from None
    for url in (client.token_endpoint, client.revoke_endpoint):
        _require_safe_transport(url)
    return client


def authorization_url(*, state: str) -> str:
    """The QuickBooks page where a person approves FieldSync for one company (accounting scope)."""
    return auth_client().get_authorization_url([Scopes.ACCOUNTING], state_token=state)


def _token_endpoint_error(exc: BaseException, *, action: str, remedy: str = "Reconnect QuickBooks.") -> QuickBooksError:
    """Map a failed token/revoke call. The response body ({"error": ...}) never carries a token."""
    if isinstance(exc, requests.Timeout):
        return QuickBooksUnavailableError(f"QuickBooks did not answer in time while {action}; try again shortly.")
    if isinstance(exc, requests.RequestException):
        return QuickBooksUnavailableError(f"Could not reach QuickBooks while {action}; try again shortly.")
    status = getattr(exc, "status_code", None)
    oauth_error = ""
    response = getattr(exc, "response", None)
    if response is not None:
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            oauth_error = str(body.get("error") or "")
    if oauth_error == "invalid_grant":
        return QuickBooksAuthorizationError(
            f"QuickBooks refused the authorization while {action} (invalid_grant: it expired, was already used or "
            f"was revoked). {remedy}",
            qbo_code="invalid_grant",
            http_status=status,
        )
    if oauth_error == "invalid_client" or status == 401:
        return QuickBooksAuthorizationError(
            f"QuickBooks refused FieldSync's app credentials while {action} (invalid_client); "
            "check QBO_CLIENT_ID and QBO_CLIENT_SECRET.",
            qbo_code=oauth_error or "invalid_client",
            http_status=status,
        )
    if status == 429:
        return QuickBooksThrottledError(
            f"QuickBooks is limiting requests while {action}; try again in a minute.", http_status=status
        )
    if status is None or status >= 500:
        return QuickBooksUnavailableError(
            f"QuickBooks could not complete {action} (HTTP {status}); try again shortly.", http_status=status
        )
    return QuickBooksAuthorizationError(
        f"QuickBooks refused {action} (HTTP {status}{', ' + oauth_error if oauth_error else ''}).",
        qbo_code=oauth_error,
        http_status=status,
    )


def _token_set(client: AuthClient) -> TokenSet:
    if not client.access_token or not client.refresh_token:
        raise QuickBooksUnavailableError("QuickBooks answered the token request without tokens; try again.")
    return TokenSet(
        access_token=client.access_token,
        refresh_token=client.refresh_token,
        expires_in=_int_or_none(client.expires_in),
        refresh_expires_in=_int_or_none(client.x_refresh_token_expires_in),
    )


def exchange_code(*, code: str, realm_id: str) -> TokenSet:
    """Trade the authorization code from the redirect for tokens (network; call outside any transaction)."""
    client = auth_client(realm_id=realm_id)
    try:
        client.get_bearer_token(code, realm_id=realm_id)
    except (AuthClientError, requests.RequestException) as exc:
        raise _token_endpoint_error(
            exc, action="exchanging the authorization code", remedy="Start again with Connect."
        ) from None
    return _token_set(client)


def refresh_tokens(*, refresh_token: str) -> TokenSet:
    """One refresh at the token endpoint. QuickBooks answers with a NEW refresh token: the caller must persist it.

    Raises QuickBooksAuthorizationError with qbo_code "invalid_grant" when the refresh token is dead.
    """
    client = auth_client(refresh_token=refresh_token)
    try:
        client.refresh(refresh_token=refresh_token)
    except (AuthClientError, requests.RequestException) as exc:
        raise _token_endpoint_error(exc, action="refreshing the access token") from None
    return _token_set(client)


def revoke_token(*, token: str) -> None:
    """Revoke a refresh (or access) token at QuickBooks: the company's authorization of FieldSync ends."""
    client = auth_client()
    try:
        client.revoke(token=token)
    except (AuthClientError, requests.RequestException) as exc:
        raise _token_endpoint_error(exc, action="revoking the authorization") from None


# --- error mapping --------------------------------------------------------------------------------------------------
def _int_or_none(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _fault_errors(body) -> list[dict]:
    """The Errors of a Fault in either spelling: API `{"Fault": {"Error": [...]}}` or gateway `{"fault": {"error"}}`."""
    if not isinstance(body, dict):
        return []
    fault = body.get("Fault") or body.get("fault") or {}
    if not isinstance(fault, dict):
        return []
    errors = fault.get("Error") or fault.get("error") or []
    return [
        _normalized_error(error) for error in (errors if isinstance(errors, list) else []) if isinstance(error, dict)
    ]


def _normalized_error(error: dict) -> dict:
    """One Fault Error as {"code", "message", "detail", "element"}, from either QBO spelling."""
    return {
        "code": str(error.get("code") or ""),
        "message": str(error.get("Message") or error.get("message") or ""),
        "detail": str(error.get("Detail") or error.get("detail") or ""),
        "element": str(error.get("element") or ""),
    }


def _gateway_error_code(error: dict) -> int | None:
    # Gateway faults carry e.g. "message=ThrottleExceeded; errorCode=003001; statusCode=429".
    match = re.search(r"errorCode=(\d+)", error.get("message", ""))
    return int(match.group(1)) if match else _int_or_none(error.get("code"))


def _retry_after_seconds(response: requests.Response | None) -> float:
    if response is not None:
        value = response.headers.get("Retry-After", "")
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
    return DEFAULT_RETRY_AFTER_SECONDS


def error_from_fault(
    errors: list[dict], *, http_status: int | None = None, response: requests.Response | None = None
) -> QuickBooksError:
    """Turn the Errors of a QBO Fault (e.g. `item["Fault"]["Error"]` of a BatchItemResponse; QBO's
    Message/Detail/code spelling or lowercase keys) into our error.

    Dispatch is on HTTP status first (401/403/429/5xx mean the same whatever the body says), then on the code of
    the first Error. All Errors are kept in `extra["errors"]`.
    """
    errors = [_normalized_error(error) for error in errors if isinstance(error, dict)]
    first = errors[0] if errors else {"code": "", "message": "", "detail": "", "element": ""}
    code = _gateway_error_code(first)
    text = f"{first['message']} {first['detail']}"
    kwargs = {
        "qbo_code": first["code"],
        "qbo_message": first["message"],
        "qbo_detail": first["detail"],
        "http_status": http_status,
        "extra": {"errors": errors} if errors else {},
    }
    said = "; ".join(part for part in (first["message"], first["detail"]) if part)
    said = f": {said}" if said else ""

    if http_status == 401 or code in (401, CODE_AUTHENTICATION_FAILED) or "AuthenticationFailed" in text:
        return QuickBooksAuthorizationError(
            f"QuickBooks rejected FieldSync's access token{said}", refreshable=True, **kwargs
        )
    if http_status == 403 or code == CODE_AUTHORIZATION_FAILED or "ApplicationAuthorizationFailed" in text:
        return QuickBooksAuthorizationError(
            f"QuickBooks refused access to this company{said}. The person who connected FieldSync may have lost "
            "admin rights; reconnect QuickBooks.",
            **kwargs,
        )
    if http_status == 429 or code in (429, CODE_THROTTLED) or "ThrottleExceeded" in text:
        retry_after = _retry_after_seconds(response)
        return QuickBooksThrottledError(
            f"QuickBooks is limiting requests for this company (ThrottleExceeded); retry in {retry_after:.0f} s.",
            retry_after=retry_after,
            **kwargs,
        )
    if (http_status is not None and http_status >= 500) or code == CODE_SYSTEM_FAILURE:
        return QuickBooksUnavailableError(
            f"QuickBooks is unavailable (HTTP {http_status}){said}. Try again shortly.", **kwargs
        )
    if code == CODE_STALE_OBJECT:
        return QuickBooksStaleObjectError(
            f"The object changed in QuickBooks since FieldSync read it (Stale Object Error 5010){said}. "
            "Read it again before changing it.",
            **kwargs,
        )
    if code == CODE_DUPLICATE_NAME:
        return QuickBooksDuplicateNameError(
            "QuickBooks already has a customer, vendor or employee with this name "
            f"(Duplicate Name Exists Error 6240){said}",
            **kwargs,
        )
    if code == CODE_OBJECT_NOT_FOUND:
        return QuickBooksObjectNotFoundError(f"QuickBooks has no such object (610 Object Not Found){said}", **kwargs)
    if not errors and http_status in (None, 200):
        return QuickBooksUnavailableError("QuickBooks sent an answer FieldSync cannot read; try again.", **kwargs)
    code_text = f" (QuickBooks error {first['code']})" if first["code"] else f" (HTTP {http_status})"
    return QuickBooksValidationError(f"QuickBooks rejected the request{said}{code_text}", **kwargs)


def _error_from_library(exc: BaseException, response: requests.Response | None) -> QuickBooksError:
    if isinstance(exc, requests.Timeout):
        return QuickBooksUnavailableError(
            f"QuickBooks did not answer within {settings.QBO_HTTP_TIMEOUT_SECONDS:g} s. The request may still have "
            "been performed; retry with the same request id."
        )
    if isinstance(exc, requests.RequestException):
        return QuickBooksUnavailableError(
            "Could not reach QuickBooks (connection failed or dropped). The request may have been performed; "
            "retry with the same request id."
        )
    status = response.status_code if response is not None else None
    body = None
    if response is not None:
        try:
            body = response.json()
        except ValueError:
            body = None
    errors = _fault_errors(body)
    if not errors and isinstance(exc, QuickbooksException):
        # No readable Fault in the body: fall back to what the library raised.
        library_code = exc.error_code if exc.error_code != CODE_LIBRARY_UNREADABLE else ""
        if library_code and library_code != status:
            errors = [{"code": str(library_code), "message": exc.message, "detail": "", "element": ""}]
    return error_from_fault(errors, http_status=status, response=response)


# --- the API facade -------------------------------------------------------------------------------------------------
_VOID_PARAMS = {
    "Payment": {"operation": "update", "include": "void"},
    "SalesReceipt": {"operation": "update", "include": "void"},
    "BillPayment": {"operation": "update", "include": "void"},
    "Invoice": {"operation": "void"},
}


class QuickBooksClient:
    """QuickBooks Accounting API for the current connection. Build one per use (per task, per page): it holds the
    decrypted tokens in memory only, and is not shared between threads.

    All methods raise QuickBooksError subclasses (see the table at the top of this module). Call them outside any
    database transaction: a token refresh commits its own short transaction.
    """

    def __init__(self, connection: QuickBooksConnection):
        _ensure_usable(connection)
        self.realm_id = connection.realm_id
        self._connection_id = connection.pk
        self._adopt(connection, build=True)

    @classmethod
    def for_current_connection(cls, *, business_unit=None, realm_id: str | None = None) -> QuickBooksClient:
        """A client for the current connection of the company `realm_id`, else of `business_unit` (default: the only
        unit; see billing.services.business_unit_default)."""
        if realm_id is not None:
            current = QuickBooksConnection.objects.filter(is_current=True, realm_id=realm_id)
        else:
            from billing.services import business_unit_default  # noqa: PLC0415 - billing loads after this module

            current = QuickBooksConnection.objects.filter(
                is_current=True, business_unit=business_unit or business_unit_default()
            )
        connection = current.first()
        if connection is None:
            raise QuickBooksNotConnectedError("QuickBooks is not connected. Connect a company in QuickBooks settings.")
        return cls(connection)

    def __repr__(self) -> str:
        return f"<QuickBooksClient realm_id={self.realm_id!r} token_version={self._token_version}>"

    # --- entities -----------------------------------------------------------------------------------------------
    def create(self, entity: str, payload: dict, *, request_id: str) -> dict:
        """Create one object; `request_id` makes a retry return the original answer instead of creating twice."""
        self._check_entity(entity)
        _check_request_id(request_id, MAX_REQUEST_ID_LENGTH, required=True)
        body = _dumps(payload)
        result = self._call(lambda qb: qb.create_object(entity, body, request_id=request_id))
        return _unwrap(result, entity)

    def read(self, entity: str, id: str) -> dict:
        self._check_entity(entity)
        result = self._call(lambda qb: qb.get_single_object(entity, pk=id))
        return _unwrap(result, entity)

    def update(self, entity: str, payload: dict, *, sparse: bool = True, request_id: str | None = None) -> dict:
        """Update an object (payload carries Id and SyncToken). Sparse by default: a full update would null every
        writable field the payload leaves out."""
        self._check_entity(entity)
        _check_request_id(request_id, MAX_REQUEST_ID_LENGTH)
        if not payload.get("Id") or payload.get("SyncToken") in (None, ""):
            raise ValueError("An update needs the object's Id and SyncToken.")
        body = _dumps({**payload, "sparse": True} if sparse else payload)
        result = self._call(lambda qb: qb.update_object(entity, body, request_id=request_id))
        return _unwrap(result, entity)

    def void(self, entity: str, *, id: str, sync_token: str, request_id: str | None = None) -> dict:
        """Void a Payment / SalesReceipt / BillPayment (sparse update with include=void) or an Invoice."""
        if entity not in _VOID_PARAMS:
            raise ValueError(f"QuickBooks cannot void a {entity}.")
        _check_request_id(request_id, MAX_REQUEST_ID_LENGTH)
        data = {"Id": id, "SyncToken": sync_token}
        if entity != "Invoice":
            data["sparse"] = True
        body = _dumps(data)

        def send(qb: QuickBooks):
            url = f"{qb.api_url}/company/{qb.company_id}/{entity.lower()}"
            return qb.post(url, body, params=dict(_VOID_PARAMS[entity]), request_id=request_id)

        return _unwrap(self._call(send), entity)

    def delete(self, entity: str, *, id: str, sync_token: str, request_id: str | None = None) -> dict:
        self._check_entity(entity)
        _check_request_id(request_id, MAX_REQUEST_ID_LENGTH)
        body = _dumps({"Id": id, "SyncToken": sync_token})
        result = self._call(lambda qb: qb.delete_object(entity, body, request_id=request_id))
        return _unwrap(result, entity)

    def query(self, statement: str) -> list[dict]:
        """One page of a QBO query (`SELECT * FROM Customer WHERE ...`); [] when nothing matches."""
        response = self._call(lambda qb: qb.query(statement)).get("QueryResponse") or {}
        match = re.search(r"\bFROM\s+(\w+)", statement, flags=re.IGNORECASE)
        if match and isinstance(response.get(match.group(1)), list):
            return response[match.group(1)]
        return next((value for value in response.values() if isinstance(value, list)), [])

    def query_all(self, statement: str, *, page_size: int = QUERY_PAGE_SIZE) -> list[dict]:
        """Every row of a query, paging with STARTPOSITION/MAXRESULTS (the statement must not page itself)."""
        if re.search(r"\b(STARTPOSITION|MAXRESULTS)\b", statement, flags=re.IGNORECASE):
            raise ValueError("query_all() adds STARTPOSITION/MAXRESULTS itself; leave them out of the statement.")
        rows: list[dict] = []
        start = 1
        while True:
            page = self.query(f"{statement} STARTPOSITION {start} MAXRESULTS {page_size}")
            rows.extend(page)
            if len(page) < page_size:
                return rows
            start += page_size

    def query_by_ids(self, entity: str, ids: list[str]) -> dict[str, dict]:
        """One read of up to a page of objects by Id (`SELECT * FROM Invoice WHERE Id IN ('1', '2')`): Id -> object.
        Ids QuickBooks does not answer are gone (deleted). Split longer lists with `id_chunks` first."""
        self._check_entity(entity)
        if not ids or len(ids) > QUERY_PAGE_SIZE:
            raise ValueError(f"One query reads 1 to {QUERY_PAGE_SIZE} ids, not {len(ids)}.")
        statement = _ids_statement(entity, ids)
        if len(statement) > QUERY_MAX_CHARS:
            raise ValueError(f"A query by ids is at most {QUERY_MAX_CHARS} characters; split the ids with id_chunks.")
        return {str(row["Id"]): row for row in self.query(statement)}

    def cdc(self, entities: list[str], *, changed_since: str) -> dict[str, list[dict]]:
        """Change Data Capture: entity -> the objects changed since `changed_since` (ISO time), deleted ones as
        {"Id", "status": "Deleted"}. QuickBooks answers at most 1,000 objects and looks back at most 30 days."""
        for entity in entities:
            self._check_entity(entity)

        def send(qb: QuickBooks):
            url = f"{qb.api_url}/company/{qb.company_id}/cdc"
            return qb.get(url, params={"entities": ",".join(entities), "changedSince": changed_since})

        answer = self._call(send)
        result: dict[str, list[dict]] = {entity: [] for entity in entities}
        for block in answer.get("CDCResponse") or []:
            for response in block.get("QueryResponse") or []:
                for entity in entities:
                    result[entity].extend(response.get(entity) or [])
        return result

    def batch(self, items: list[dict], *, request_id: str | None) -> list[dict]:
        """Send up to 30 items in QBO's batch wire format (`{"bId", "operation", "Payment": {...}}` or
        `{"bId", "Query": "..."}`); returns the BatchItemResponse items (order not guaranteed; match on bId).

        Unlike python-quickbooks' BatchManager, this sends `?requestid=` so a retried batch is not performed twice.
        Item Faults are returned as they are; `error_from_fault(item["Fault"]["Error"])` maps one to our errors.
        """
        if not items or len(items) > MAX_BATCH_ITEMS:
            raise ValueError(f"A batch holds 1 to {MAX_BATCH_ITEMS} items, not {len(items)}.")
        if len({item.get("bId") for item in items}) != len(items) or any(not item.get("bId") for item in items):
            raise ValueError("Every batch item needs its own bId.")
        _check_request_id(request_id, MAX_BATCH_REQUEST_ID_LENGTH)
        body = _dumps({"BatchItemRequest": items})

        def send(qb: QuickBooks):
            url = f"{qb.api_url}/company/{qb.company_id}/batch"
            return qb.post(url, body, request_id=request_id)

        result = self._call(send)
        return list(result.get("BatchItemResponse") or [])

    # --- company lists ------------------------------------------------------------------------------------------
    def company_info(self) -> dict:
        return self._unwrap_call(lambda qb: qb.get_single_object("CompanyInfo", pk=self.realm_id), "CompanyInfo")

    def accounts(self) -> list[dict]:
        """Active accounts of the company (QBO queries return active list objects only by default)."""
        return self.query_all("SELECT * FROM Account")

    def payment_methods(self) -> list[dict]:
        return self.query_all("SELECT * FROM PaymentMethod")

    # --- plumbing -----------------------------------------------------------------------------------------------
    def _unwrap_call(self, operation: Callable[[QuickBooks], dict], entity: str) -> dict:
        return _unwrap(self._call(operation), entity)

    def _check_entity(self, entity: str) -> None:
        try:
            self._qb.isvalid_object_name(entity)
        except Exception:  # python-quickbooks raises a bare Exception
            raise ValueError(f"{entity!r} is not a QuickBooks Online business object.") from None

    def _call(self, operation: Callable[[QuickBooks], T]) -> T:
        """Run one library call with a fresh token; after a 401, refresh once and run it once more."""
        if self._access_token_expiring():
            self._refresh(rejected_access_token=None)
        for attempt in (1, 2):
            try:
                return operation(self._qb)
            except (QuickbooksException, requests.RequestException) as exc:
                error = _error_from_library(exc, self._qb.session.last_response)
            if attempt == 1 and isinstance(error, QuickBooksAuthorizationError) and error.refreshable:
                logger.info("QuickBooks rejected the access token for realm %s; refreshing once", self.realm_id)
                self._refresh(rejected_access_token=self._access_token)
                continue
            raise error
        raise AssertionError("unreachable")

    def _build_qb(self) -> QuickBooks:
        qb = QuickBooks(
            company_id=self.realm_id,
            minorversion=settings.QBO_MINOR_VERSION,
            use_decimal=True,
        )
        if settings.QBO_API_BASE_URL:
            qb.api_url_v3 = settings.QBO_API_BASE_URL.rstrip("/") + "/v3"
            qb.sandbox = False
        elif settings.QBO_ENVIRONMENT not in ("production", "sandbox"):
            raise _not_configured("QBO_API_BASE_URL")  # never fall back to Intuit's servers for a local setup
        else:
            qb.sandbox = settings.QBO_ENVIRONMENT == "sandbox"
        _require_safe_transport(qb.api_url)
        qb.session = _ApiSession(access_token=self._access_token, timeout=settings.QBO_HTTP_TIMEOUT_SECONDS)
        return qb

    def _adopt(self, connection: QuickBooksConnection, *, build: bool = False) -> None:
        """Use the tokens stored on `connection` from now on."""
        try:
            self._access_token = connection.get_access_token()
            self._refresh_token = connection.get_refresh_token()
        except TokenDecryptionError as exc:
            raise QuickBooksAuthorizationError(exc.message) from None
        self._token_version = connection.token_version
        self._access_expires_at = connection.access_token_expires_at
        if build:
            self._qb = self._build_qb()
        else:
            self._qb.session.access_token = self._access_token

    def _access_token_expiring(self) -> bool:
        expires_at = self._access_expires_at
        return (
            not self._access_token or expires_at is None or timezone.now() >= expires_at - ACCESS_TOKEN_REFRESH_MARGIN
        )

    def _refresh(self, *, rejected_access_token: str | None) -> None:
        """Get a new access token and persist the rotated refresh token, without holding a row lock over HTTP.

        1. Re-read the row: if another worker stored newer tokens that are still good, just use them.
        2. Refresh at QuickBooks from the stored version's refresh token (no transaction open).
        3. Short transaction with select_for_update: if the stored version is still the one we refreshed from,
           store our tokens and bump the version; otherwise another worker rotated first. Both new refresh tokens
           are valid (QuickBooks keeps a rotated one alive for about a day), so keep theirs and use their access
           token; our unsaved pair is simply never used again.
        """
        stored = QuickBooksConnection.objects.filter(pk=self._connection_id).first()
        _ensure_usable(stored)
        if stored.token_version != self._token_version:
            self._adopt(stored)
            if not self._access_token_expiring() and self._access_token != rejected_access_token:
                return
        base_version = stored.token_version
        try:
            tokens = refresh_tokens(refresh_token=self._refresh_token)
        except QuickBooksAuthorizationError as exc:
            if exc.qbo_code == "invalid_grant" and self._recover_or_mark_needs_reconnect(base_version, exc):
                return
            raise

        with transaction.atomic():
            row = QuickBooksConnection.objects.select_for_update().get(pk=self._connection_id)
            if row.state == QuickBooksConnection.State.DISCONNECTED:
                raise QuickBooksNotConnectedError("QuickBooks was disconnected while FieldSync was refreshing access.")
            if row.token_version == base_version:
                row.set_tokens(
                    access_token=tokens.access_token,
                    refresh_token=tokens.refresh_token,
                    access_expires_in=tokens.expires_in,
                    refresh_expires_in=tokens.refresh_expires_in,
                )
                row.transition_to(QuickBooksConnection.State.CONNECTED)  # the tokens demonstrably work
                row.last_error = ""
                row.save()
                logger.info(
                    "Stored refreshed QuickBooks tokens for realm %s (token version %s -> %s)",
                    row.realm_id,
                    base_version,
                    row.token_version,
                )
            else:
                logger.info(
                    "Another worker rotated the QuickBooks tokens for realm %s first (version %s -> %s); using theirs",
                    row.realm_id,
                    base_version,
                    row.token_version,
                )
            self._adopt(row)

    def _recover_or_mark_needs_reconnect(self, base_version: int, error: QuickBooksAuthorizationError) -> bool:
        """After invalid_grant: if another worker stored newer tokens meanwhile, adopt them (True). Otherwise the
        authorization is dead: mark the connection needs_reconnect with the reason (False)."""
        with transaction.atomic():
            row = QuickBooksConnection.objects.select_for_update().get(pk=self._connection_id)
            if row.token_version != base_version and row.state == QuickBooksConnection.State.CONNECTED:
                self._adopt(row)
                return not self._access_token_expiring()
            if row.state == QuickBooksConnection.State.CONNECTED:
                row.transition_to(QuickBooksConnection.State.NEEDS_RECONNECT)
                row.last_error = (
                    "QuickBooks refused FieldSync's saved authorization (invalid_grant): it expired or was revoked. "
                    "Reconnect QuickBooks to resume exports."
                )
                row.last_error_at = timezone.now()
                row.save(update_fields=["state", "last_error", "last_error_at", "updated_at"])
                logger.warning("QuickBooks connection for realm %s needs reconnecting (invalid_grant)", row.realm_id)
        return False


def _ensure_usable(connection: QuickBooksConnection | None) -> None:
    if connection is None or connection.state == QuickBooksConnection.State.DISCONNECTED:
        raise QuickBooksNotConnectedError("QuickBooks is not connected. Connect a company in QuickBooks settings.")
    if connection.state == QuickBooksConnection.State.NEEDS_RECONNECT:
        raise QuickBooksAuthorizationError(
            "QuickBooks needs reconnecting: "
            + (connection.last_error or "its authorization is no longer valid.")
            + " Reconnect in QuickBooks settings."
        )


def _check_request_id(request_id: str | None, limit: int, *, required: bool = False) -> None:
    if not request_id:
        if required:
            raise ValueError("A request_id is required so a retry cannot create the object twice.")
        return
    if len(request_id) > limit:
        raise ValueError(f"QuickBooks request ids are at most {limit} characters; {request_id!r} is longer.")


def _ids_statement(entity: str, ids: list[str]) -> str:
    # A QuickBooks query, not SQL: every id is quoted.
    return f"SELECT * FROM {entity} WHERE Id IN ({', '.join(quote(str(i)) for i in ids)}) MAXRESULTS {len(ids)}"  # noqa: S608


def id_chunks(entity: str, ids: list[str], *, size: int = QUERY_PAGE_SIZE) -> list[list[str]]:
    """`ids` split into the lists QuickBooksClient.query_by_ids reads in one request each: at most `size` ids (never
    more than a page) and a statement within QUERY_MAX_CHARS."""
    size = min(size, QUERY_PAGE_SIZE)
    empty = len(_ids_statement(entity, [])) + len(str(QUERY_PAGE_SIZE))
    chunks: list[list[str]] = []
    current: list[str] = []
    length = empty
    for qbo_id in map(str, ids):
        grows = len(quote(qbo_id)) + 2  # the literal and its ", "
        if current and (len(current) >= size or length + grows > QUERY_MAX_CHARS):
            chunks.append(current)
            current, length = [], empty
        current.append(qbo_id)
        length += grows
    if current:
        chunks.append(current)
    return chunks


def _unwrap(result: dict, entity: str) -> dict:
    if not isinstance(result, dict) or not isinstance(result.get(entity), dict):
        raise QuickBooksUnavailableError(f"QuickBooks answered without the expected {entity}; try again.")
    return result[entity]
