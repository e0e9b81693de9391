"""The error mapping table on Fault shapes the sandbox does not produce (the sandbox tests cover the rest)."""

import pytest

from quickbooks_export.client import error_from_fault
from quickbooks_export.errors import (
    QuickBooksAuthorizationError,
    QuickBooksStaleObjectError,
    QuickBooksThrottledError,
    QuickBooksUnavailableError,
    QuickBooksValidationError,
)


def _error(code: str, message: str = "Something", detail: str = "Details") -> dict:
    return {"Message": message, "Detail": detail, "code": code, "element": ""}


@pytest.mark.parametrize(
    ("errors", "status", "expected", "retryable"),
    [
        ([_error("3200", "message=AuthenticationFailed; errorCode=003200; statusCode=401")], 200, "auth", False),
        ([_error("003001", "message=ThrottleExceeded; errorCode=003001; statusCode=429")], 200, "throttled", True),
        ([_error("10000", "An application error has occurred while processing your request")], 400, "down", True),
        ([_error("6000", "A business validation error has occurred")], 500, "down", True),
        ([_error("5010", "Stale Object Error"), _error("6000")], 400, "stale", False),
        ([{"message": "lowercase", "detail": "gateway", "code": "6140"}], 400, "validation", False),
        ([], 502, "down", True),
    ],
)
def test_mapping_by_code_and_status(errors, status, expected, retryable):
    classes = {
        "auth": QuickBooksAuthorizationError,
        "throttled": QuickBooksThrottledError,
        "down": QuickBooksUnavailableError,
        "stale": QuickBooksStaleObjectError,
        "validation": QuickBooksValidationError,
    }

    error = error_from_fault(errors, http_status=status)

    assert type(error) is classes[expected] and error.retryable is retryable
    assert error.extra.get("errors", []) == [
        {
            "code": e["code"],
            "message": e.get("Message") or e.get("message"),
            "detail": e.get("Detail") or e.get("detail"),
            "element": "",
        }
        for e in errors
    ]


def test_validation_message_is_plain_words_with_the_code():
    error = error_from_fault([_error("6140", "Duplicate Document Number Error", "DocNumber=INV-1 is used")])

    assert error.message == (
        "QuickBooks rejected the request: Duplicate Document Number Error; DocNumber=INV-1 is used "
        "(QuickBooks error 6140)"
    )
    assert (error.qbo_code, error.code, error.http_status) == ("6140", "quickbooks_validation", 400)
