"""QuickBooks Online error answers: the v3 `Fault` of the accounting service and the gateway's lowercase `fault`.

The accounting service answers `{"Fault": {"Error": [{"Message", "Detail", "code", "element"}], "type"}, "time"}`
with `code` a string (QBO.md). Intuit's API gateway, which authenticates and throttles before the accounting
service sees a request, answers with lowercase keys: `{"fault": {"error": [{"message", "detail", "code"}],
"type"}}`. python-quickbooks only recognises the capitalised form, which is why a 429 from the gateway reaches
callers as `QuickbooksException(error_code=10000)`.
"""

from __future__ import annotations

from dataclasses import dataclass

VALIDATION = "ValidationFault"
SYSTEM = "SystemFault"


class QboFault(Exception):
    """One QBO error. Raised by the accounting rules; the server turns it into an HTTP answer."""

    def __init__(
        self,
        code: str,
        message: str,
        detail: str,
        *,
        element: str = "",
        status: int = 400,
        fault_type: str = VALIDATION,
    ) -> None:
        super().__init__(f"{code} {message}: {detail}")
        self.code = code
        self.message = message
        self.detail = detail
        self.element = element
        self.status = status
        self.fault_type = fault_type

    def fault(self) -> dict:
        """The `Fault` object (without `time`), as it appears in an answer or in a batch item."""
        return {
            "Error": [{"Message": self.message, "Detail": self.detail, "code": self.code, "element": self.element}],
            "type": self.fault_type,
        }


# --- The accounting service's codes (https://developer.intuit.com/.../error-codes, QBO.md) ---


def object_not_found(entity: str, entity_id: str) -> QboFault:
    return QboFault(
        "610",
        "Object Not Found",
        f"Object Not Found : Something you're trying to use has been made inactive. Check the fields with "
        f"accounts, customers, items, vendors or employees. ({entity} Id={entity_id})",
    )


def required_param_missing(name: str) -> QboFault:
    return QboFault(
        "2020",
        "Required param missing, need to supply the required value for the API",
        f"Required parameter {name} is missing in the request",
        element=name,
    )


def string_too_long(name: str, maximum: int, supplied: int) -> QboFault:
    # Code and wording as QBO answers an over-long DocNumber (observed: "String length specified does not match
    # the supported length. Min:0 Max:21 supported. Supplied length:51").
    return QboFault(
        "2050",
        "String length is either shorter or longer than supported by specification",
        f"String length specified does not match the supported length. Min:0 Max:{maximum} supported. "
        f"Supplied length:{supplied}",
        element=name,
    )


def invalid_reference(what: str, ref_id: object) -> QboFault:
    return QboFault("2500", "Invalid Reference Id", f"Invalid Reference Id : {what} element id {ref_id} not found")


def invalid_property(detail: str) -> QboFault:
    # *unconfirmed*: 2010 is QBO's "Request has invalid or unsupported property"; we also use it for bodies we
    # cannot read (bad JSON, a non-numeric amount) and for line types the sandbox does not model.
    return QboFault("2010", "Request has invalid or unsupported property", detail)


def query_parser_error(detail: str) -> QboFault:
    return QboFault("4000", "Error parsing query", f"QueryParserError: {detail}")


def query_validation_error(detail: str) -> QboFault:
    return QboFault("4001", "Invalid query", f"QueryValidationError: {detail}")


def stale_object(entity: str, entity_id: str) -> QboFault:
    return QboFault(
        "5010",
        "Stale Object Error",
        f"Stale Object Error : You and someone else were working on this at the same time. Someone else finished "
        f"before you did, so your work was not saved. ({entity} Id={entity_id})",
        element="SyncToken",
    )


def business_validation(detail: str) -> QboFault:
    return QboFault(
        "6000",
        "A business validation error has occurred while processing your request",
        f"Business Validation Error: {detail}",
    )


def deposited_transaction(detail: str) -> QboFault:
    # Intuit, Payment reference: a deposited payment cannot be voided until its deposit is deleted (QBO.md: 6540).
    return QboFault(
        "6540", "Deposited Transaction cannot be changed", f"Deposited Transaction cannot be changed: {detail}"
    )


def duplicate_doc_number(doc_number: str, txn_id: str) -> QboFault:
    return QboFault(
        "6140",
        "Duplicate Document Number Error",
        f"Duplicate Document Number Error : You must specify a different number. This number has already been "
        f"used. DocNumber={doc_number} is assigned to TxnType=Invoice with TxnId={txn_id}",
    )


def amount_calculation_incorrect(supplied: object) -> QboFault:
    # Intuit's error-code list: 6070 "Amount calculation incorrect in the request", detail "Amount is not equal
    # to Qty * UnitPrice. Supplied value:XXX" (the exact live wording is *unconfirmed*).
    return QboFault(
        "6070",
        "Amount calculation incorrect in the request",
        f"Amount is not equal to Qty * UnitPrice. Supplied value:{supplied}",
        element="Line.Amount",
    )


def invalid_line_tax_code(supplied: str) -> QboFault:
    # Intuit's error-code list: 6100 "Invalid Line TaxCode in the request".
    return QboFault(
        "6100",
        "Invalid Line TaxCode in the request",
        f"Valid Line TaxCodes for US should be TAX or NON. Supplied value:{supplied}",
        element="Line.SalesItemLineDetail.TaxCodeRef",
    )


def duplicate_name(existing_id: str) -> QboFault:
    return QboFault("6240", "Duplicate Name Exists Error", f"The name supplied already exists. : Id={existing_id}")


def unsupported_operation(detail: str) -> QboFault:
    # Codes 500-599 are QBO's "unsupported" range (python-quickbooks raises UnsupportedException for them).
    return QboFault("500", "Unsupported Operation", f"Operation {detail} is not supported.")


# --- The gateway's lowercase bodies ---


@dataclass(frozen=True)
class GatewayError:
    status: int
    message: str
    detail: str
    code: str
    fault_type: str = "SERVICE"

    def body(self, detail: str | None = None) -> dict:
        error = {"message": self.message, "detail": detail or self.detail, "code": self.code}
        return {"fault": {"error": [error], "type": self.fault_type}}


AUTHENTICATION_FAILED = GatewayError(
    401, "message=AuthenticationFailed; errorCode=003200; statusCode=401", "Token invalid", "3200"
)
AUTHORIZATION_FAILED = GatewayError(
    403, "message=ApplicationAuthorizationFailed; errorCode=003100; statusCode=403", "Not authorized", "3100"
)
THROTTLE_EXCEEDED = GatewayError(
    429,
    "message=ThrottleExceeded; errorCode=003001; statusCode=429",
    "The request limit was reached.  Try again later",
    "3001",
)
# *unconfirmed*: Intuit documents 10000 "An application error has occurred while processing your request" for
# server failures; QBO.md reports gateway 5xx with a lowercase body, so injected 500/503 use that shape.
SERVER_ERROR = GatewayError(
    500,
    "An application error has occurred while processing your request",
    "System Failure Error: injected by the sandbox",
    "10000",
    SYSTEM,
)
SERVICE_UNAVAILABLE = GatewayError(
    503,
    "Service Unavailable",
    "The service is temporarily unavailable: injected by the sandbox",
    "10000",
    SYSTEM,
)
