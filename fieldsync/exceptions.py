"""One error type for everything a user can get wrong, and one mapping of it to HTTP for the API.

Services raise ApplicationError subclasses with a message a person can act on ("INV-1042 still has $50.00 open;
record the remaining payment first") and a stable machine `code`. Pages show the message; the API returns
{"code", "message", "details"} with the status the subclass names.
"""

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler


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


def api_exception_handler(exc, context):
    """Give every API error the same shape: {"code", "message", "details"}."""
    if isinstance(exc, ApplicationError):
        return Response({"code": exc.code, "message": exc.message, "details": exc.extra}, status=exc.http_status)
    if isinstance(exc, DjangoValidationError):
        details = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        return Response({"code": "invalid", "message": "; ".join(exc.messages), "details": details}, status=400)
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = drf_exceptions.PermissionDenied()

    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, drf_exceptions.ValidationError):
        response.data = {
            "code": "invalid",
            "message": "The request has invalid fields.",
            "details": response.data,
        }
    elif isinstance(exc, drf_exceptions.APIException):
        detail = response.data.get("detail", "") if isinstance(response.data, dict) else response.data
        response.data = {
            "code": exc.get_codes() if isinstance(exc.get_codes(), str) else exc.default_code,
            "message": str(detail),
            "details": {},
        }
    return response
