"""Business units in the API: a client sees and writes its units' records only. Every /api/v1/ endpoint is found by
walking the URL resolver and must have a unit rule below, so a new endpoint without one fails here."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from billing import services as billing_services
from billing.models import Customer, Invoice, Job, Payment, Refund
from billing.services import business_unit_default
from fieldsync.api.tokens import api_client_create
from fieldsync.exceptions import ApplicationError
from fieldsync.models import ApiClient
from quickbooks_export.models import ExportBatch, ExportBatchItem, InvoiceExportHold
from tests.factories import BusinessUnitFactory, CustomerFactory, issued_invoice, pay
from tests.quickbooks_export.conftest import make_connection

from .conftest import Api, make_api, staff_user

pytestmark = pytest.mark.django_db


def _api_v1_endpoints() -> dict[str, tuple[type, list[str]]]:
    """name -> (view class, URL keyword arguments) of every /api/v1/ route, from the URL resolver."""
    found = {}

    def walk(patterns, route: str, namespace: str):
        for entry in patterns:
            if isinstance(entry, URLResolver):
                walk(entry.url_patterns, route + str(entry.pattern), entry.namespace or namespace)
            elif isinstance(entry, URLPattern) and namespace == "api" and entry.name:
                in_v1 = (route + str(entry.pattern)).startswith("api/v1/")
                if in_v1:
                    found[entry.name] = (entry.callback.view_class, list(entry.pattern.converters))

    walk(get_resolver().url_patterns, "", "")
    return found


ENDPOINTS = _api_v1_endpoints()

# The unit rule of every endpoint. LIST: lists only the caller's units' rows. RECORD: the record its URL names is
# 404 when of another unit, for every method. CREATE: a body naming another unit's record is refused as an unknown
# one, nothing written. SHARED: not a unit's data (sales tax rates are the installation's).
LIST = {"customers", "jobs", "invoices", "payments", "exports"}
RECORD = {
    "customer",
    "job",
    "invoice",
    "invoice_issue",
    "invoice_void",
    "invoice_export",
    "payment",
    "payment_apply",
    "payment_refunds",
    "payment_export",
    "payment_export_hold",
    "export",
    "export_items",
}
CREATE = {"customers", "jobs", "invoices", "payments", "exports"}
SHARED = {"tax_rates"}


def test_every_api_endpoint_has_a_unit_rule():
    assert len(ENDPOINTS) >= 19
    assert set(ENDPOINTS) == LIST | RECORD | CREATE | SHARED, "a new endpoint needs a business unit rule here"


def records_of(unit, *, name: str, realm_id: str) -> dict:
    """One of everything the API names, in `unit`, its company connected as `realm_id`."""
    make_connection(business_unit=unit, realm_id=realm_id, company_name=f"{name} Books")
    customer = CustomerFactory(business_unit=unit, display_name=f"{name} Customer")
    job = billing_services.job_create(customer=customer, number=f"J-{name.upper()}", title="Heater")
    invoice = issued_invoice(customer=customer, amount="80.00", number=f"INV-{name.upper()}")
    payment = pay(invoice, "40.00")
    batch = ExportBatch.objects.create(source="api", selection="one", realm_id=realm_id)
    ExportBatchItem.objects.create(batch=batch, payment=payment)
    return {
        "unit": unit,
        "customer": customer,
        "job": job,
        "invoice": invoice,
        "payment": payment,
        "batch": batch,
        "kwargs": {
            "customer_id": customer.pk,
            "job_id": job.pk,
            "number": invoice.number,
            "payment_id": payment.pk,
            "batch_id": batch.pk,
        },
    }


@pytest.fixture
def two_units():
    main, north = business_unit_default(), BusinessUnitFactory(name="North Shore")
    return records_of(main, name="Main", realm_id="1"), records_of(north, name="North", realm_id="2")


@pytest.fixture
def main_api(two_units) -> Api:
    main, _ = two_units
    return make_api("main-app", business_units=[main["unit"]])[0]


def snapshot() -> tuple:
    """What a refused write must leave as it was."""
    return (
        list(Customer.objects.order_by("pk").values_list("pk", "display_name")),
        list(Job.objects.order_by("pk").values_list("pk", "number")),
        list(Invoice.objects.order_by("pk").values_list("pk", "status", "due_on", "changed_at")),
        list(Payment.objects.order_by("pk").values_list("pk", "amount", "export_status")),
        Refund.objects.count(),
        ExportBatch.objects.count(),
        InvoiceExportHold.objects.count(),
    )


# A request each record endpoint would act on (a valid body, naming the caller's own records where it names any),
# so that the only reason to refuse it is the unit of the record in its URL.
def _record_requests(own: dict) -> dict[str, list[tuple[str, dict | None]]]:
    return {
        "customer": [("get", None)],
        "job": [("get", None), ("patch", {"title": "Heater, again"})],
        "invoice": [("get", None), ("patch", {"due_on": "2026-12-30"})],
        "invoice_issue": [("post", {})],
        "invoice_void": [("post", {})],
        "invoice_export": [("post", None)],
        "payment": [("get", None)],
        "payment_apply": [("post", {"invoice": own["invoice"].number, "amount": "1.00"})],
        "payment_refunds": [
            ("post", {"amount": "1.00", "reason": "Goodwill", "refunded_on": "2026-11-20", "method": "cash"})
        ],
        "payment_export": [("post", None)],
        "payment_export_hold": [("post", {"action": "check_again"})],
        "export": [("get", None)],
        "export_items": [("get", None)],
    }


def _call(api: Api, method: str, path: str, body):
    if method == "get":
        return api.get(path)
    if method == "patch":
        return api.patch(path, body)
    return api.post(path, body)


@pytest.mark.parametrize("name", sorted(RECORD))
def test_a_record_of_another_unit_is_404_for_every_method(main_api, two_units, name):
    main, north = two_units
    requests = _record_requests(main)[name]
    view, url_kwargs = ENDPOINTS[name]
    assert {method for method, _ in requests} == {
        m for m in ("get", "post", "patch", "put", "delete") if hasattr(view, m)
    }, "every method the endpoint has is checked"
    theirs = reverse(f"api:{name}", kwargs={key: north["kwargs"][key] for key in url_kwargs})
    mine = reverse(f"api:{name}", kwargs={key: main["kwargs"][key] for key in url_kwargs})
    before = snapshot()

    for method, body in requests:
        response = _call(main_api, method, theirs, body)
        assert response.status_code == 404, (method, response.status_code, response.content[:300])
        assert response.json()["code"] == "not_found"
    assert snapshot() == before  # nothing of North's (or anyone's) changed

    for method, body in requests:  # the same request on the caller's own record is not refused as unknown
        assert _call(main_api, method, mine, body).status_code != 404


LIST_ID = {
    "customers": lambda r: r["customer"].pk,
    "jobs": lambda r: r["job"].pk,
    "invoices": lambda r: r["invoice"].pk,
    "payments": lambda r: r["payment"].pk,
    "exports": lambda r: r["batch"].pk,
}


@pytest.mark.parametrize("name", sorted(LIST))
def test_lists_show_only_the_callers_units(main_api, two_units, name):
    main, north = two_units

    ids = [row["id"] for row in main_api.get(reverse(f"api:{name}")).json()["results"]]

    assert LIST_ID[name](main) in ids
    assert LIST_ID[name](north) not in ids


def _create_bodies(customer, invoice: str, payment_id: int, unit: str) -> dict[str, dict]:
    return {
        "customers": {"display_name": "Sneaky", "business_unit": unit},
        "jobs": {"customer": customer, "number": "J-NEW", "title": "Sneaky"},
        "invoices": {"customer": customer, "number": "INV-NEW", "lines": []},
        "payments": {"invoice": invoice, "amount": "1.00", "method": "cash", "received_on": "2026-11-20"},
        "exports": {"payment_ids": [payment_id]},
    }


def _shape(response) -> tuple:
    body = response.json()
    return response.status_code, body["code"], sorted(body["details"])


@pytest.mark.parametrize("name", sorted(CREATE))
def test_a_write_naming_another_units_record_is_refused_as_an_unknown_one(main_api, two_units, name):
    """Refused exactly as a record that does not exist (telling them apart would say it exists elsewhere)."""
    _, north = two_units
    theirs = _create_bodies(north["customer"].pk, north["invoice"].number, north["payment"].pk, north["unit"].slug)
    unknown = _create_bodies(999_999, "INV-NOPE", 999_999, "no-such-unit")
    before = snapshot()

    response = main_api.post(reverse(f"api:{name}"), theirs[name])

    assert response.status_code == 400, response.content[:300]
    assert _shape(response) == _shape(main_api.post(reverse(f"api:{name}"), unknown[name]))
    assert snapshot() == before


def test_an_all_exportable_export_of_another_unit_is_refused(main_api, two_units):
    _, north = two_units
    response = main_api.post("exports/", {"all_exportable": True, "business_unit": north["unit"].slug})
    assert response.status_code == 400
    assert response.json()["details"]["business_unit"][0]["code"] == "does_not_exist"
    assert ExportBatch.objects.count() == 2


def test_a_client_of_one_unit_creates_in_it_without_naming_it(main_api, two_units):
    main, _ = two_units

    response = main_api.post("customers/", {"display_name": "New Main Customer"})

    assert response.status_code == 201
    assert Customer.objects.get(pk=response.json()["id"]).business_unit == main["unit"]


def test_a_client_of_several_units_names_the_unit_of_a_create(two_units):
    main, north = two_units
    api = make_api("regional-app", business_units=[main["unit"], north["unit"]])[0]

    unnamed = api.post("customers/", {"display_name": "Whose?"})
    named = api.post("customers/", {"display_name": "North's new", "business_unit": north["unit"].slug})

    assert unnamed.status_code == 400
    assert unnamed.json()["details"]["business_unit"][0]["code"] == "required"
    assert not Customer.objects.filter(display_name="Whose?").exists()
    assert named.status_code == 201
    assert Customer.objects.get(pk=named.json()["id"]).business_unit == north["unit"]
    ids = [row["id"] for row in api.get("customers/").json()["results"]]
    assert {main["customer"].pk, north["customer"].pk} <= set(ids)  # it sees both of its units


def test_records_created_from_another_record_take_its_unit(two_units):
    """A job, invoice or payment is its customer's unit: a client of North creates them in North."""
    _, north = two_units
    api = make_api("north-app", business_units=[north["unit"]])[0]

    job = api.post("jobs/", {"customer": north["customer"].pk, "number": "J-N2", "title": "Boiler"})
    payment = api.post(
        "payments/",
        {"invoice": north["invoice"].number, "amount": "5.00", "method": "cash", "received_on": "2026-11-20"},
    )

    assert (job.status_code, payment.status_code) == (201, 201)
    assert Job.objects.get(pk=job.json()["id"]).business_unit == north["unit"]
    assert Payment.objects.get(pk=payment.json()["id"]).business_unit == north["unit"]


def test_a_staff_user_through_the_api_sees_their_units_only(two_units, client):
    main, north = two_units
    user = staff_user("billing.view_payment", username="mia")
    main["unit"].members.add(user)
    client.force_login(user)

    ids = [row["id"] for row in client.get("/api/v1/payments/").json()["results"]]

    assert ids == [main["payment"].pk]
    assert client.get(f"/api/v1/payments/{north['payment'].pk}/").status_code == 404


def test_with_one_unit_every_client_sees_everything_as_before(db):
    """One unit: a client given none (made before units) still acts on it; nothing says "unit" anywhere."""
    payment = pay(issued_invoice(amount="10.00"), "10.00")
    api, client, _ = make_api("old-app")
    client.business_units.clear()

    assert [row["id"] for row in api.get("payments/").json()["results"]] == [payment.pk]
    assert api.post("customers/", {"display_name": "Still works"}).status_code == 201


def test_a_new_client_gets_the_only_unit_and_must_be_given_one_when_there_are_several(db):
    client, _ = api_client_create(name="first")
    assert list(client.business_units.all()) == [business_unit_default()]
    north = BusinessUnitFactory(name="North Shore")

    with pytest.raises(ApplicationError) as exc:
        api_client_create(name="second")

    assert exc.value.code == "business_unit_required"
    assert not ApiClient.objects.filter(name="second").exists()
    client, _ = api_client_create(name="third", business_units=[north])
    assert list(client.business_units.all()) == [north]


@pytest.mark.django_db(transaction=True)
def test_migration_gives_existing_clients_the_default_unit():
    executor = MigrationExecutor(connection)
    before = [("fieldsync", "0004_quickbooks_call_count")]
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    row = old.get_model("fieldsync", "ApiClient").objects.create(
        name="old", token_prefix="fsk_old12345", token_hash="0"
    )

    executor.loader.build_graph()  # the state after unapplying
    executor.migrate(executor.loader.graph.leaf_nodes())  # every app at its leaf again, for the tests after this one

    assert list(ApiClient.objects.get(pk=row.pk).business_units.values_list("slug", flat=True)) == ["main"]


# --- The unit in the answers ----------------------------------------------------------------------------------------


def test_answers_name_the_business_unit_by_slug_without_a_query_of_their_own():
    """Customers, jobs, invoices and payments name their unit (`business_unit`, the slug a customer POST takes) in
    lists, details and the answers of creates; the unit comes with the record's own query (or is known to the view),
    so each call runs as many queries as before the field existed."""
    north = business_unit_default()  # the installation's first unit
    south = BusinessUnitFactory(name="South Store", slug="south")
    records_of(north, name="north", realm_id="9341-north")
    records_of(south, name="south", realm_id="9341-south")
    api, _, _ = make_api("north-and-south", business_units=[north, south])
    api.get("customers/")  # the token's last-use stamp: not inside the counts below

    for path in ("customers/", "jobs/", "invoices/", "payments/"):
        rows = api.get(path).json()["results"]
        assert sorted(row["business_unit"] for row in rows) == sorted([north.slug, "south"]), (path, rows)
    customer = Customer.objects.get(display_name="south Customer")
    assert api.get(f"customers/{customer.pk}/").json()["business_unit"] == "south"
    assert api.get(f"jobs/{Job.objects.get(number='J-SOUTH').pk}/").json()["business_unit"] == "south"
    assert api.get("invoices/INV-SOUTH/").json()["business_unit"] == "south"
    payment = Payment.objects.get(applications__invoice__number="INV-SOUTH")
    assert api.get(f"payments/{payment.pk}/").json()["business_unit"] == "south"

    created = api.post("customers/", {"display_name": "New South", "business_unit": "south"})
    assert created.status_code == 201 and created.json()["business_unit"] == "south"
    new_customer = created.json()["id"]
    job = api.post("jobs/", {"customer": new_customer, "number": "J-NEW", "title": "Boiler"})
    assert job.status_code == 201 and job.json()["business_unit"] == "south"
    invoice = api.post(
        "invoices/",
        {"customer": new_customer, "number": "INV-NEW", "lines": [{"service_name": "Labor", "unit_price": "50.00"}]},
    )
    assert invoice.status_code == 201 and invoice.json()["business_unit"] == "south"
    assert api.post("invoices/INV-NEW/issue/", {}).json()["business_unit"] == "south"
    by_invoice = api.post(
        "payments/", {"invoice": "INV-NEW", "amount": "20.00", "method": "card", "received_on": "2026-11-20"}
    )
    assert by_invoice.status_code == 201 and by_invoice.json()["business_unit"] == "south"
    by_customer = api.post(
        "payments/", {"customer": new_customer, "amount": "5.00", "method": "check", "received_on": "2026-11-20"}
    )
    assert by_customer.status_code == 201 and by_customer.json()["business_unit"] == "south"
    assert by_customer.json() == api.get(f"payments/{by_customer.json()['id']}/").json()

    # No query for the unit: lists and details read it with the record (select_related), creates take it from the
    # customer or invoice of the body, read with its unit. A lazy load of any record's business unit fails here.
    descriptor_class = type(Payment.business_unit)
    original = descriptor_class.get_object

    def no_lazy_unit(descriptor, instance):
        assert descriptor.field.name != "business_unit", f"{type(instance).__name__}'s unit read with its own query"
        return original(descriptor, instance)

    try:
        descriptor_class.get_object = no_lazy_unit
        for path in ("customers/", "jobs/", "invoices/", "payments/"):
            assert api.get(path).status_code == 200
        assert api.get(f"payments/{payment.pk}/").status_code == 200
        answers = [
            api.post("customers/", {"display_name": "Lazy", "business_unit": north.slug}),
            api.post("jobs/", {"customer": new_customer, "number": "J-LAZY", "title": "Boiler"}),
            api.post(
                "payments/", {"customer": new_customer, "amount": "1.00", "method": "cash", "received_on": "2026-11-20"}
            ),
        ]
        issued_invoice(customer=customer, amount="30.00", number="INV-LAZY")
        answers.append(
            api.post(
                "payments/", {"invoice": "INV-LAZY", "amount": "30.00", "method": "cash", "received_on": "2026-11-20"}
            )
        )
    finally:
        descriptor_class.get_object = original
    assert [a.status_code for a in answers] == [201, 201, 201, 201], [a.content for a in answers]
    assert [a.json()["business_unit"] for a in answers] == [north.slug, "south", "south", "south"]
