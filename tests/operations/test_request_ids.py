"""A request id from the web request to the export task to each QuickBooks call, in plain or JSON logs, with
OAuth secrets still redacted."""

import io
import json
import logging

import pytest
from django_q.models import OrmQ

from fieldsync import metrics
from fieldsync.log_filters import RedactOAuthSecretsFilter
from fieldsync.models import QuickBooksCallCount
from fieldsync.observability import RequestIdLogFilter, request_id_bound
from quickbooks_export.tasks import export_run_task
from tests.api.conftest import make_api
from tests.factories import issued_invoice, pay
from tests.quickbooks_export.export.conftest import connect

pytestmark = pytest.mark.django_db


def test_a_request_gets_an_id_in_its_response(client):
    first = client.get("/health/live")["X-Request-ID"]
    second = client.get("/health/live")["X-Request-ID"]
    assert len(first) == 32 and first != second


def test_a_sane_incoming_id_is_kept_and_anything_else_replaced(client):
    assert client.get("/health/live", headers={"X-Request-ID": "lb-7f3a9c21e0"})["X-Request-ID"] == "lb-7f3a9c21e0"
    for bad in ("short", "x" * 65, "abc def ghi", "id\r\nSet-Cookie: a=b", "../../etc/passwd"):
        answered = client.get("/health/live", headers={"X-Request-ID": bad})["X-Request-ID"]
        assert answered != bad and len(answered) == 32


def test_a_server_error_quotes_the_request_id_of_the_request(rf):
    # An API path that fails outside DRF: the JSON 500 names the id the request runs under, as the header does.
    from fieldsync.middleware import ApiServerErrorMiddleware

    with request_id_bound("lb-0000000001"):
        response = ApiServerErrorMiddleware(lambda r: None).process_exception(rf.get("/api/v1/x"), RuntimeError("boom"))
    assert json.loads(response.content)["details"]["request_id"] == "lb-0000000001"
    assert response["X-Request-ID"] == "lb-0000000001"


def _json_handler() -> tuple[logging.Handler, io.StringIO]:
    """The console handler as settings.LOGGING builds it with FIELDSYNC_LOG_FORMAT=json."""
    from fieldsync.observability import JsonLogFormatter
    from fieldsync.settings.base import LOGGING

    spec = LOGGING["formatters"]["json"]
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    assert spec["()"] == "fieldsync.observability.JsonLogFormatter"
    handler.setFormatter(JsonLogFormatter(spec["fmt"], rename_fields=spec["rename_fields"]))
    handler.addFilter(RedactOAuthSecretsFilter())
    handler.addFilter(RequestIdLogFilter())
    return handler, stream


def test_json_logs_carry_the_request_id_and_no_oauth_code():
    handler, stream = _json_handler()
    log = logging.getLogger("fieldsync.tests.json")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        with request_id_bound("req-12345678"):
            log.info("GET %s", "/quickbooks/callback/?code=AB-secret-code&state=xyz&realmId=1")
        log.info("outside any request")
    finally:
        log.removeHandler(handler)

    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside["request_id"] == "req-12345678" and inside["level"] == "INFO"
    assert inside["logger"] == "fieldsync.tests.json" and "time" in inside and "pid" in inside
    assert "AB-secret-code" not in inside["message"] and "code=[redacted]" in inside["message"]
    assert outside["request_id"] == "-"


def test_json_logs_of_a_failed_request_keep_the_oauth_code_out(rf):
    """Django's request log passes the request object along; its repr has the whole URL, query string included."""
    handler, stream = _json_handler()
    log = logging.getLogger("fieldsync.tests.json")
    log.addHandler(handler)
    request = rf.get("/quickbooks/callback/?code=AB11-secret-code&state=s3cr3t-state&realmId=9")
    try:
        try:
            raise RuntimeError("failed at /quickbooks/callback/?code=AB11-secret-code")
        except RuntimeError:
            log.error("Internal Server Error: %s", request.path, exc_info=True, extra={"request": request})
    finally:
        log.removeHandler(handler)

    line = stream.getvalue()
    assert "AB11-secret-code" not in line and "s3cr3t-state" not in line
    record = json.loads(line)
    assert (record["http_method"], record["path"]) == ("GET", "/quickbooks/callback/")
    assert "code=[redacted]" in record["exc_info"]


def test_the_request_id_goes_from_the_api_call_to_the_export_task_to_the_quickbooks_calls(
    qbo_sandbox, settings, caplog, django_capture_on_commit_callbacks
):
    settings.EXPORT_MAX_RETRY_AFTER_SECONDS = 0.2
    company = connect(qbo_sandbox, settings)
    payment = pay(issued_invoice(amount="100.00"), "100.00")
    api = make_api()[0]

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("exports/", {"payment_ids": [payment.pk]}, **{"X-Request-ID": "field-app-0001"})
    assert response.status_code == 202 and response["X-Request-ID"] == "field-app-0001"

    # The queued task (django-q2's ORM broker) carries the id as an argument ...
    task = OrmQ.objects.get().task
    assert task["kwargs"]["request_id"] == "field-app-0001"

    # ... and the worker binds it: every QuickBooks call of the run is logged under it.
    metrics.quickbooks_calls_flush()  # the calls `connect` made, counted before the run
    counted_before = sum(QuickBooksCallCount.objects.values_list("count", flat=True))
    caplog.handler.addFilter(RequestIdLogFilter())
    with caplog.at_level(logging.INFO, logger="quickbooks_export.client"):
        result = export_run_task(*task["args"], **task["kwargs"])
    calls = [r for r in caplog.records if r.getMessage().startswith("QuickBooks ")]
    assert result == "drained" and calls
    assert {r.request_id for r in calls} == {"field-app-0001"}
    assert len(company.entities("Payment")) == 1
    # and the task counted them for /metrics
    assert sum(QuickBooksCallCount.objects.values_list("count", flat=True)) - counted_before == len(calls)
