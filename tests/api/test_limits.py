"""Bounded API input (issue 11): nesting, body size, money limits, number characters, page_size, methods, and the
API's own 500. Each refusal is in the API's error shape and changes nothing."""

import json
import logging

import pytest

from billing.models import Customer, Invoice, Job, Payment
from fieldsync.api import selectors
from tests.factories import CustomerFactory, issued_invoice

pytestmark = pytest.mark.django_db

MAX = "9999999999.99"


def assert_error_shape(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"code", "message", "details"} and body["code"] == code, body
    return body


# --- 1. nesting -----------------------------------------------------------------------------------------------------


def test_deeply_nested_json_is_a_parse_error_not_a_500(api):
    body = assert_error_shape(api.post("customers/", raw="[" * 1000 + "]" * 1000), 400, "parse_error")

    assert "nests deeper" in body["message"]
    assert not Customer.objects.exists()


def test_json_nested_past_the_limit_but_parseable_is_refused_too(api):
    raw = '{"display_name": "Rosa", "x": ' + "[" * 100 + "]" * 100 + "}"

    assert_error_shape(api.post("customers/", raw=raw), 400, "parse_error")
    assert not Customer.objects.exists()


def test_ordinary_nesting_is_still_accepted(api):
    customer = CustomerFactory()
    body = {"customer": customer.pk, "number": "INV-1", "lines": [{"service_name": "Labor", "unit_price": "95.00"}]}

    assert api.post("invoices/", body).status_code == 201


# --- 2. body size ---------------------------------------------------------------------------------------------------


def test_a_body_over_the_limit_is_refused_with_413_before_anything_is_written(api, settings):
    settings.FIELDSYNC_API_MAX_BODY_BYTES = 10_000
    raw = json.dumps({"display_name": "Rosa", "memo": "x" * 20_000})

    body = assert_error_shape(api.post("customers/", raw=raw), 413, "request_too_large")

    assert "10,000 bytes" in body["message"]
    assert not Customer.objects.exists()


def test_the_default_limit_refuses_a_10_megabyte_body(api):
    raw = json.dumps({"display_name": "Rosa", "company_name": "x" * (10 * 1024 * 1024)})

    assert_error_shape(api.post("customers/", raw=raw), 413, "request_too_large")
    assert not Customer.objects.exists()


def test_a_body_longer_than_its_content_length_is_not_read_past_the_limit(api, settings):
    """The stream is read at most limit + 1 bytes whatever Content-Length says (here it understates the body)."""
    from django.test import RequestFactory
    from rest_framework.request import Request

    from fieldsync.api.parsers import BoundedJSONParser, RequestTooLarge

    settings.FIELDSYNC_API_MAX_BODY_BYTES = 100
    raw = json.dumps({"display_name": "x" * 500}).encode()
    django_request = RequestFactory().post("/api/v1/customers/", raw, content_type="application/json")
    django_request.META["CONTENT_LENGTH"] = "50"
    read = []

    class Stream:
        def __init__(self, data):
            self.data = data

        def read(self, size=-1):
            read.append(size)
            return self.data[: size if size >= 0 else None]

    with pytest.raises(RequestTooLarge):
        BoundedJSONParser().parse(Stream(raw), parser_context={"request": Request(django_request)})
    assert read == [101]


def test_a_body_at_the_limit_is_accepted(api, settings):
    raw = json.dumps({"display_name": "Rosa"})
    settings.FIELDSYNC_API_MAX_BODY_BYTES = len(raw.encode())

    assert api.post("customers/", raw=raw).status_code == 201


# --- 3. money limits ------------------------------------------------------------------------------------------------


def test_an_invoice_total_over_the_money_column_is_a_field_error_at_input(api):
    customer = CustomerFactory()
    lines = [{"service_name": "Labor", "unit_price": MAX} for _ in range(101)]

    body = assert_error_shape(
        api.post("invoices/", {"customer": customer.pk, "number": "INV-BIG", "lines": lines}), 400, "too_large"
    )

    assert "lines" in body["details"] and "9,999,999,999.99" in body["message"]
    assert not Invoice.objects.exists()


def test_a_line_over_the_money_column_is_a_field_error(api):
    customer = CustomerFactory()
    lines = [{"service_name": "Labor", "quantity": "2", "unit_price": MAX}]

    body = assert_error_shape(
        api.post("invoices/", {"customer": customer.pk, "number": "INV-BIG", "lines": lines}), 400, "too_large"
    )
    assert "lines" in body["details"]
    assert not Invoice.objects.exists()


def test_tax_that_pushes_the_total_over_the_limit_is_refused(api):
    customer = CustomerFactory()
    lines = [{"service_name": "Labor", "unit_price": MAX}]
    response = api.post("invoices/", {"customer": customer.pk, "number": "INV-T", "sales_tax": "0.01", "lines": lines})

    assert_error_shape(response, 400, "too_large")
    assert not Invoice.objects.exists()


def test_an_invoice_of_exactly_the_maximum_is_accepted_and_rendered(api):
    customer = CustomerFactory()
    lines = [{"service_name": "Labor", "unit_price": "9999999990.00"}]

    response = api.post("invoices/", {"customer": customer.pk, "number": "INV-M", "sales_tax": "9.99", "lines": lines})

    assert response.status_code == 201 and response.json()["total"] == MAX


@pytest.mark.parametrize(
    ("field", "value"),
    [("amount", "10000000000.00"), ("amount", "99999999999")],
)
def test_a_payment_over_the_money_column_is_a_field_error(api, field, value):
    invoice = issued_invoice(amount="100.00")
    body = {"invoice": invoice.number, "amount": value, "method": "cash", "received_on": "2026-11-03"}

    error = assert_error_shape(api.post("payments/", body), 400, "invalid")

    assert error["details"][field][0]["code"] == "too_large"
    assert not Payment.objects.exists()


def test_the_service_refuses_an_amount_over_the_column_whatever_calls_it():
    from billing import services
    from billing.money import InvalidAmountError

    invoice = issued_invoice(amount="100.00")
    with pytest.raises(InvalidAmountError) as refused:
        services.payment_record(
            customer=invoice.customer, amount="10000000000.00", method="cash", received_on=invoice.issued_on
        )
    assert refused.value.extra == {"amount": "too_large"}


# --- 8. numbers, page_size, methods ---------------------------------------------------------------------------------


@pytest.mark.parametrize("number", ["INV/1", "INV 1", "INV?1", "INV#1", "..", "-1", "INV%2F1", "ÍNV-1"])
def test_invoice_numbers_outside_the_safe_characters_are_refused(api, number):
    customer = CustomerFactory()
    body = {"customer": customer.pk, "number": number, "lines": [{"service_name": "L", "unit_price": "1.00"}]}

    error = assert_error_shape(api.post("invoices/", body), 400, "invalid")

    assert error["details"]["number"][0]["code"] == "invalid_number"
    assert "letters A-Z" in error["message"]
    assert not Invoice.objects.exists()


def test_job_numbers_outside_the_safe_characters_are_refused(api):
    customer = CustomerFactory()
    response = api.post("jobs/", {"customer": customer.pk, "number": "JOB/7", "title": "Leak"})

    assert assert_error_shape(response, 400, "invalid")["details"]["number"][0]["code"] == "invalid_number"
    assert not Job.objects.exists()


def test_every_safe_number_is_reachable_at_its_url(api):
    customer = CustomerFactory()
    for number in ["INV-1042", "2026.11-7", "S_00004242", "a.b"]:
        lines = [{"service_name": "L", "unit_price": "1.00"}]
        assert api.post("invoices/", {"customer": customer.pk, "number": number, "lines": lines}).status_code == 201
        assert api.get(f"invoices/{number}/").json()["number"] == number


def test_the_service_refuses_unsafe_numbers_for_every_caller():
    from billing import services
    from fieldsync.exceptions import ApplicationError

    customer = CustomerFactory()
    with pytest.raises(ApplicationError) as refused:
        services.invoice_create(customer=customer, number="INV/1")
    assert "number" in refused.value.extra
    with pytest.raises(ApplicationError):
        services.job_create(customer=customer, number="JOB 1", title="Leak")


@pytest.mark.parametrize("page_size", ["abc", "1.5", "0", "-3", "201", ""])
def test_a_page_size_that_is_not_a_whole_number_in_range_is_refused(api, page_size):
    CustomerFactory.create_batch(3)

    error = assert_error_shape(api.get("customers/", {"page_size": page_size}), 400, "invalid")

    assert error["details"]["page_size"][0]["code"] == "invalid_page_size"


def test_a_valid_page_size_is_used(api):
    CustomerFactory.create_batch(3)

    assert len(api.get("customers/", {"page_size": "2"}).json()["results"]) == 2


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_methods_an_endpoint_does_not_have_are_405(api, method):
    customer = CustomerFactory()

    response = getattr(api.client, method)(
        f"/api/v1/customers/{customer.pk}/", "{}", content_type="application/json", headers=api.headers
    )

    assert_error_shape(response, 405, "method_not_allowed")
    assert Customer.objects.filter(pk=customer.pk).exists()


def test_405_comes_before_authentication(client):
    assert_error_shape(client.delete("/api/v1/customers/"), 405, "method_not_allowed")


# --- the API's own 500 ----------------------------------------------------------------------------------------------


def test_an_unexpected_error_in_a_view_is_a_json_500_with_a_logged_request_id(api, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(selectors, "payment_as_recorded", broken)  # after the payment is written
    invoice = issued_invoice(amount="100.00")

    with caplog.at_level(logging.ERROR, logger="fieldsync.api"):
        response = api.post(
            "payments/", {"invoice": invoice.number, "amount": "10.00", "method": "cash", "received_on": "2026-11-03"}
        )

    body = assert_error_shape(response, 500, "server_error")
    request_id = body["details"]["request_id"]
    assert response["X-Request-ID"] == request_id and request_id in body["message"]
    assert any(request_id in record.getMessage() and record.exc_info for record in caplog.records)
    assert not Payment.objects.exists()  # the idempotent POST rolled its work back


def test_an_error_outside_drf_under_api_is_a_json_500_and_elsewhere_left_to_django(caplog):
    """The net under DRF: an exception raised outside a DRF view (middleware, URL resolution) under /api/."""
    from django.test import RequestFactory

    from fieldsync.middleware import ApiServerErrorMiddleware

    middleware = ApiServerErrorMiddleware(lambda request: None)
    with caplog.at_level(logging.ERROR, logger="fieldsync.api"):
        response = middleware.process_exception(RequestFactory().get("/api/v1/customers/"), RuntimeError("a bug"))

    body = json.loads(response.content)
    assert response.status_code == 500 and body["code"] == "server_error"
    assert any(body["details"]["request_id"] in record.getMessage() for record in caplog.records)
    assert middleware.process_exception(RequestFactory().get("/payments/"), RuntimeError("a bug")) is None
