"""The API's JSON parser: bounded in size and depth, so no request body can exhaust memory or the stack.

DRF reads the request stream itself, so Django's DATA_UPLOAD_MAX_MEMORY_SIZE never applies to API bodies. This
parser refuses a body over FIELDSYNC_API_MAX_BODY_BYTES before reading it (Content-Length) and never reads more than
that many bytes (a body longer than it says is cut off and refused), answering 413 `request_too_large`.

Python's JSON decoder recurses once per nesting level: about 1,000 levels of `[` raise RecursionError, and anything
deep that does parse would recurse again in the idempotency fingerprint and the serializers. Our bodies are at most
a few levels deep (an invoice with lines), so anything deeper than MAX_DEPTH is refused as a parse error (400).
"""

from django.conf import settings
from rest_framework import exceptions, status
from rest_framework.parsers import JSONParser
from rest_framework.utils import json

# The deepest body we accept: {"lines": [{"service_name": ...}]} is 3 levels; 32 leaves room and stays far from the
# interpreter's recursion limit in everything that walks the data afterwards.
MAX_DEPTH = 32


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "request_too_large"
    default_detail = "The request body is too large."


def max_body_bytes() -> int:
    return settings.FIELDSYNC_API_MAX_BODY_BYTES


def _too_large() -> RequestTooLarge:
    limit = max_body_bytes()
    return RequestTooLarge(
        f"The request body is larger than {limit:,} bytes, the most one API request may send; "
        "send fewer records per request."
    )


def _depth_exceeds(data, limit: int) -> bool:
    """True when `data` nests deeper than `limit` containers. Iterative: a deep body cannot overflow the stack."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


class BoundedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        limit = max_body_bytes()
        request = parser_context.get("request")
        if request is not None:
            try:
                declared = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                declared = 0
            if declared > limit:
                raise _too_large()
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise _too_large()
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = raw.decode(encoding)
            data = json.loads(text) if self.strict else json.loads(text, parse_constant=None)
        except RecursionError:
            raise exceptions.ParseError(
                f"JSON parse error - the body nests deeper than {MAX_DEPTH} levels; no API request needs that."
            ) from None
        except ValueError as exc:  # includes UnicodeDecodeError and json.JSONDecodeError
            raise exceptions.ParseError(f"JSON parse error - {exc}") from None
        if _depth_exceeds(data, MAX_DEPTH):
            raise exceptions.ParseError(
                f"JSON parse error - the body nests deeper than {MAX_DEPTH} levels; no API request needs that."
            )
        return data
