"""One error type for everything a user can get wrong, and one mapping of it to HTTP for the API.

Services raise ApplicationError subclasses with a message a person can act on ("INV-1042 still has $50.00 open;
record the remaining payment first") and a stable machine `code`. Pages show the message; the API returns
{"code", "message", "details"} with the status the subclass names.
"""

import logging
import uuid

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError, IntegrityError
from django.http import Http404
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response

from fieldsync.observability import get_request_id

logger = logging.getLogger("fieldsync.api")


class ApplicationError(Exception):
    code = "invalid"
    http_status = 400

    def __init__(self, message: str, *, code: str | None = None, extra: dict | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.extra = extra or {}


class ConflictError(ApplicationError):
    """The request is valid but collides with the current state (a concurrent change, an illegal transition)."""

    code = "conflict"
    http_status = 409


def _first_message(details, path: str = "") -> str:
    """The first error message in DRF's nested details, prefixed by where it is ("applications.0.amount: ...")."""
    if isinstance(details, dict):
        if "message" in details and "code" in details and isinstance(details["message"], str):
            message, field = details["message"], path.rsplit(".", 1)[-1]
            if not path or field == "non_field_errors":
                return message
            if message.startswith(f"{field} "):  # "amount must be..." -> "applications.0.amount must be..."
                return f"{path}{message[len(field) :]}"
            return f"{path}: {message}"
        for key, value in details.items():
            found = _first_message(value, f"{path}.{key}" if path else str(key))
            if found:
                return found
    elif isinstance(details, list):
        for index, value in enumerate(details):
            inner = path if (value and isinstance(value, dict) and "code" in value) else f"{path}.{index}"
            found = _first_message(value, inner)
            if found:
                return found
    return ""


def _field_details(exc: ApplicationError) -> dict:
    """A service's Django message_dict ({"number": ["... already exists."]}) in the API's per-field shape
    ({"number": [{"code": "invalid", "message": "..."}]}); any other `extra` is context and stays as it is."""
    extra = exc.extra
    if extra and all(isinstance(v, list) and all(isinstance(m, str) for m in v) for v in extra.values()):
        return {field: [{"code": exc.code, "message": m} for m in messages] for field, messages in extra.items()}
    return extra


def _error(code: str, message: str, details: dict, status: int, headers: dict | None = None) -> Response:
    return Response({"code": code, "message": message, "details": details}, status=status, headers=headers)


def api_exception_handler(exc, context):
    """Give every API error the same shape: {"code", "message", "details"}.

    - ApplicationError (services): its status, `code`, `message`, and `extra` as details.
    - Invalid input (serializers, filters): 400, code "invalid", details per field as lists of {"code", "message"}
      (e.g. {"amount": [{"code": "float_not_allowed", "message": "..."}]}); the message names the first problem.
    - A unique or check constraint hit by a concurrent request: 409 "conflict" (nothing was written); a value the
      database cannot hold that validation let through: 400 "invalid".
    - DRF's own errors (401, 403, 404, 405, 415...): their code (not_authenticated, permission_denied, ...).
    Anything else is a bug: it is logged with a request id and answered 500 `server_error` in the same shape
    (never Django's HTML page), the id in `details` so a caller can quote it.
    """
    if isinstance(exc, ApplicationError):
        return _error(exc.code, exc.message, _field_details(exc), exc.http_status, getattr(exc, "headers", None))
    if isinstance(exc, DjangoValidationError):
        details = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        return _error("invalid", "; ".join(exc.messages), details, 400)
    if isinstance(exc, IntegrityError):
        return _error(
            "conflict",
            "The request collided with a change made at the same moment (a number already taken?); nothing was "
            "written. Check and retry.",
            {},
            409,
        )
    if isinstance(exc, DataError):
        # Input the database cannot hold that validation let through (a value out of a column's range).
        return _error("invalid", "A value in the request cannot be stored; check the fields and retry.", {}, 400)
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = drf_exceptions.PermissionDenied()

    # Imported here: rest_framework.views loads the authentication classes, which import this module.
    from rest_framework.views import exception_handler

    response = exception_handler(exc, context)
    if response is None:
        return server_error_response(exc, context.get("request"))
    if isinstance(exc, drf_exceptions.ValidationError):
        details = exc.get_full_details()
        if not isinstance(details, dict):
            details = {"non_field_errors": details}
        message = _first_message(details) or "The request has invalid fields."
        response.data = {"code": "invalid", "message": message, "details": details}
    elif isinstance(exc, drf_exceptions.APIException):
        detail = response.data.get("detail", "") if isinstance(response.data, dict) else response.data
        codes = exc.get_codes()
        response.data = {
            "code": codes if isinstance(codes, str) else exc.default_code,
            "message": str(detail),
            "details": {},
        }
    return response


def server_error_payload(exc: BaseException, request) -> tuple[dict, str]:
    """Log an unexpected exception (with its traceback) under a fresh request id; return the API's error body."""
    request_id = get_request_id() or uuid.uuid4().hex  # the id RequestIdMiddleware gave the request
    logger.error(
        "Unexpected error answering %s %s (request id %s)",
        getattr(request, "method", "?"),
        getattr(request, "path", "?"),
        request_id,
        exc_info=(type(exc), exc, exc.__traceback__),
    )
    body = {
        "code": "server_error",
        "message": "Something went wrong on our side; nothing was changed. If it happens again, quote request id "
        f"{request_id}.",
        "details": {"request_id": request_id},
    }
    return body, request_id


def server_error_response(exc: BaseException, request) -> Response:
    body, request_id = server_error_payload(exc, request)
    return Response(body, status=500, headers={"X-Request-ID": request_id})
