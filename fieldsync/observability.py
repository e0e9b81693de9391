"""Request ids that follow a piece of work from the web request to the export task to each QuickBooks call, and the
log formats that carry them.

A request id is bound to a context variable for as long as the work runs: RequestIdMiddleware binds it for a web
request (an incoming X-Request-ID when it is sane, else a fresh one, echoed in the response header), and
quickbooks_export.tasks passes it to the export task as an argument and binds it again in the worker. Every log record
gets it as `request_id` from RequestIdLogFilter (on every handler of settings.LOGGING), so the QuickBooks client's log
lines carry the id of the request that started the export without the client knowing about requests.
"""

import contextlib
import logging
import re
import uuid
from collections.abc import Iterator
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter

from fieldsync.log_filters import redact

_request_id: ContextVar[str | None] = ContextVar("fieldsync_request_id", default=None)

# What we accept from a caller or a proxy: short, printable, nothing that could forge a log line or a header.
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{7,63}$")
REQUEST_ID_HEADER = "X-Request-ID"


def new_request_id() -> str:
    return uuid.uuid4().hex


def get_request_id() -> str | None:
    """The request id of the work running now, or None outside any request or task."""
    return _request_id.get()


def sane_request_id(value: str | None) -> str | None:
    """`value` if it is a request id we can log and echo safely (8-64 of letters, digits, . _ : -), else None."""
    if value and _SANE_REQUEST_ID.match(value):
        return value
    return None


@contextlib.contextmanager
def request_id_bound(value: str | None) -> Iterator[str]:
    """Bind `value` (or a fresh id when it is missing or not sane) for the duration of the block."""
    request_id = sane_request_id(value) or new_request_id()
    token = _request_id.set(request_id)
    try:
        yield request_id
    finally:
        _request_id.reset(token)


class RequestIdMiddleware:
    """First in MIDDLEWARE: every log line of the request carries its id, and the response says which id it was."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        from fieldsync import metrics

        with request_id_bound(request.headers.get(REQUEST_ID_HEADER)) as request_id:
            request.request_id = request_id
            calls_before = metrics.quickbooks_calls_recorded()
            response = self.get_response(request)
            response[REQUEST_ID_HEADER] = request_id
            if metrics.quickbooks_calls_recorded() != calls_before:
                metrics.quickbooks_calls_flush()  # this request called QuickBooks (connecting, the QuickBooks page)
            return response


class RequestIdLogFilter(logging.Filter):
    """Give every record a `request_id` attribute ("-" outside a request or task) for the formatters."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = get_request_id() or "-"
        return True


class JsonLogFormatter(JsonFormatter):
    """python-json-logger's formatter, made safe for our records: it writes a record's extra attributes too, and
    Django's request logs carry the request object, whose repr holds the full URL with its query string (the OAuth
    `code` on /quickbooks/callback/). The request becomes its method and path; every other value is written as text
    and redacted (fieldsync.log_filters), tracebacks included."""

    def process_log_record(self, log_data: dict) -> dict:
        request = log_data.pop("request", None)
        if request is not None and hasattr(request, "path") and hasattr(request, "method"):
            log_data["http_method"], log_data["path"] = request.method, request.path
        return {key: _safe(value) for key, value in log_data.items()}


def _safe(value):
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact(value if isinstance(value, str) else str(value))
