"""What can go wrong when talking to QuickBooks, by meaning rather than by library exception class.

This module imports nothing from python-quickbooks or intuit-oauth, so services and tasks can catch these errors
without touching the QuickBooks libraries; `client.py` is the only place that turns library exceptions into these.

Every error has:
- `code`: a stable machine code of ours (what the API error handler returns), e.g. "quickbooks_throttled";
- `retryable`: True when the same request may succeed later unchanged (throttling, outages, timeouts);
- `qbo_code` / `qbo_message` / `qbo_detail`: what QuickBooks said, when it said something ("6240", ...).
Messages are written for the person reading them and never contain tokens or secrets.
"""

from fieldsync.exceptions import ApplicationError


class QuickBooksError(ApplicationError):
    code = "quickbooks_error"
    http_status = 502
    retryable = False

    def __init__(
        self,
        message: str,
        *,
        qbo_code: str = "",
        qbo_message: str = "",
        qbo_detail: str = "",
        http_status: int | None = None,
        extra: dict | None = None,
    ):
        self.qbo_code = str(qbo_code or "")
        self.qbo_message = qbo_message or ""
        self.qbo_detail = qbo_detail or ""
        # HTTP status QuickBooks answered with (None when no answer arrived, e.g. a timeout).
        self.qbo_http_status = http_status
        details = {"qbo_code": self.qbo_code, "qbo_message": self.qbo_message, "qbo_detail": self.qbo_detail}
        details.update(extra or {})
        super().__init__(message, extra=details)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, qbo_code={self.qbo_code!r}, message={self.message!r})"


class QuickBooksNotConnectedError(QuickBooksError):
    """No QuickBooks company is connected (never connected, or disconnected)."""

    code = "quickbooks_not_connected"
    http_status = 409


class QuickBooksAuthorizationError(QuickBooksError):
    """QuickBooks refuses our authorization: the connection needs reconnecting by a person (or a refresh failed)."""

    code = "quickbooks_authorization"
    http_status = 409

    def __init__(self, message: str, *, refreshable: bool = False, **kwargs):
        # True for a rejected access token (401): a token refresh may fix it, and the client tries that once.
        self.refreshable = refreshable
        super().__init__(message, **kwargs)


class QuickBooksValidationError(QuickBooksError):
    """QuickBooks rejected the request itself; sending it again unchanged fails again. Show QBO's code and words."""

    code = "quickbooks_validation"
    http_status = 400


class QuickBooksObjectNotFoundError(QuickBooksValidationError):
    """610 Object Not Found: the id we hold does not exist (any more) in the company."""

    code = "quickbooks_object_not_found"


class QuickBooksStaleObjectError(QuickBooksValidationError):
    """5010 Stale Object Error: our SyncToken is old; re-read the object and decide again."""

    code = "quickbooks_stale_object"
    http_status = 409


class QuickBooksDuplicateNameError(QuickBooksValidationError):
    """6240 Duplicate Name Exists: the name is taken by a customer, vendor or employee (case-insensitive)."""

    code = "quickbooks_duplicate_name"
    http_status = 409


class QuickBooksThrottledError(QuickBooksError):
    """429 ThrottleExceeded: over the company's request limits. Retry after `retry_after` seconds."""

    code = "quickbooks_throttled"
    http_status = 503
    retryable = True

    def __init__(self, message: str, *, retry_after: float = 60.0, **kwargs):
        self.retry_after = float(retry_after)
        kwargs.setdefault("extra", {})
        kwargs["extra"] = {**kwargs["extra"], "retry_after": self.retry_after}
        super().__init__(message, **kwargs)


class QuickBooksUnavailableError(QuickBooksError):
    """QuickBooks could not answer: a 5xx, a dropped connection or a timeout. Retry with backoff.

    After a timeout or a dropped connection the request may have been performed: retry with the same request id.
    """

    code = "quickbooks_unavailable"
    http_status = 503
    retryable = True
