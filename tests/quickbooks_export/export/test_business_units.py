"""Each business unit keeps its own QuickBooks company: two units connected to two sandbox companies, through the
real OAuth code path, the real engine and the real clients. Connecting, disconnecting, exporting or needing
reconnection in one unit never touches the other."""

from urllib.parse import parse_qs, urlsplit

import pytest
from django.urls import reverse
from django_q.models import OrmQ

from billing.models import Payment
from billing.selectors import BUSINESS_UNIT_SESSION_KEY
from billing.services import business_unit_default
from fieldsync.exceptions import ApplicationError, ConflictError
from quickbooks_export.auto_export import AUTO_EXPORT_TASK, auto_export_settings_update
from quickbooks_export.connection import connection_disconnect
from quickbooks_export.errors import QuickBooksNotConnectedError
from quickbooks_export.models import AutoExportSettings, QuickBooksConnection
from quickbooks_export.services import export_batch_start, export_run
from tests.concurrency import run_at_once
from tests.factories import BusinessUnitFactory, CustomerFactory, UserFactory, issued_invoice, pay
from tests.quickbooks_export.conftest import REDIRECT_URI, point_settings_at

from .conftest import connect, drain, export

pytestmark = pytest.mark.django_db
S = Payment.ExportStatus
State = QuickBooksConnection.State


@pytest.fixture
def units():
    return business_unit_default(), BusinessUnitFactory(name="North Shore")


@pytest.fixture
def companies(qbo_sandbox, settings, units):
    """Main connected to one sandbox company, North Shore to another (the same sandbox hosts both)."""
    settings.EXPORT_MAX_RETRY_AFTER_SECONDS = 0.2
    main, north = units
    return (
        connect(qbo_sandbox, settings, company_name="Main Street Plumbing", business_unit=main),
        connect(qbo_sandbox, settings, company_name="North Shore Plumbing", business_unit=north),
    )


def paid(unit, amount: str, *, name: str) -> Payment:
    invoice = issued_invoice(customer=CustomerFactory(business_unit=unit, display_name=name), amount=amount)
    return pay(invoice, amount)


def connection_of(unit) -> QuickBooksConnection:
    return QuickBooksConnection.objects.get(business_unit=unit, is_current=True)


def test_connecting_a_second_unit_leaves_the_first_connected(units, companies):
    main, north = units
    main_company, north_company = companies

    assert main_company.realm_id != north_company.realm_id
    first, second = connection_of(main), connection_of(north)
    assert (first.realm_id, first.company_name, first.state) == (
        main_company.realm_id,
        "Main Street Plumbing",
        State.CONNECTED,
    )
    assert (second.realm_id, second.company_name, second.state) == (
        north_company.realm_id,
        "North Shore Plumbing",
        State.CONNECTED,
    )
    assert first.token_version == 1  # untouched by the second connection
    assert QuickBooksConnection.objects.count() == 2


def test_a_company_connected_to_one_unit_is_refused_for_another(qbo_sandbox, settings, units, companies):
    main, north = units
    south = BusinessUnitFactory(name="South Side")

    with pytest.raises(ConflictError) as exc:
        connect(qbo_sandbox, settings, business_unit=south, realm_id=companies[0].realm_id)

    assert exc.value.code == "quickbooks_company_in_other_unit"
    assert "is connected to Main" in exc.value.message
    assert not QuickBooksConnection.objects.filter(business_unit=south).exists()
    assert connection_of(main).token_version == 1


def test_each_units_payments_go_to_its_own_company(units, companies):
    main, north = units
    main_company, north_company = companies
    in_main = paid(main, "120.00", name="Ann Lee")
    in_north = paid(north, "75.50", name="Bo Chen")

    export(in_main)
    export(in_north)

    for payment, company, other in ((in_main, main_company, north_company), (in_north, north_company, main_company)):
        payment.refresh_from_db()
        assert payment.export_status == S.EXPORTED
        assert [p["Id"] for p in company.entities("Payment")] == [payment.export_reference]
        assert [c["DisplayName"] for c in company.entities("Customer")] == [payment.customer.display_name]
        assert payment.customer.display_name not in [c["DisplayName"] for c in other.entities("Customer")]


def test_payments_of_two_units_are_never_exported_together(units, companies):
    main, north = units
    payments = [paid(main, "10.00", name="Ann Lee"), paid(north, "20.00", name="Bo Chen")]

    with pytest.raises(ApplicationError) as exc:
        export_batch_start(payments=[p.pk for p in payments], selection="both", source="page")

    assert exc.value.code == "several_business_units"
    assert not Payment.objects.exclude(export_status=S.NOT_EXPORTED).exists()


def test_a_unit_without_a_company_cannot_export_though_others_are_connected(companies):
    south = BusinessUnitFactory(name="South Side")
    payment = paid(south, "10.00", name="Cy Diaz")

    with pytest.raises(QuickBooksNotConnectedError):
        export_batch_start(payments=[payment.pk], selection="one", source="page")

    payment.refresh_from_db()
    assert payment.export_status == S.NOT_EXPORTED


def test_a_unit_needing_reconnection_pauses_only_its_own_exports(units, companies):
    main, north = units
    main_company, north_company = companies
    in_main, in_north = paid(main, "120.00", name="Ann Lee"), paid(north, "75.50", name="Bo Chen")
    main_batch = export_batch_start(payments=[in_main.pk], selection="main", source="page")
    north_batch = export_batch_start(payments=[in_north.pk], selection="north", source="page")

    QuickBooksConnection.objects.filter(business_unit=main).update(state=State.NEEDS_RECONNECT)

    assert export_run(realm_id=main_company.realm_id, sleep=lambda s: None) == "waiting"
    assert drain(north_company.realm_id)[-1] == "drained"
    main_batch.refresh_from_db()
    north_batch.refresh_from_db()
    in_main.refresh_from_db()
    in_north.refresh_from_db()
    assert main_batch.waiting_reason.startswith("Paused:") and in_main.export_status == S.QUEUED
    assert north_batch.waiting_reason == "" and in_north.export_status == S.EXPORTED
    assert main_company.entities("Payment") == []
    assert [p["Id"] for p in north_company.entities("Payment")] == [in_north.export_reference]


def test_disconnecting_one_unit_leaves_the_other_connected_and_exporting(units, companies):
    main, north = units

    connection_disconnect(user=None, business_unit=main)

    assert not QuickBooksConnection.objects.filter(business_unit=main, is_current=True).exists()
    assert connection_of(north).state == State.CONNECTED
    payment = paid(north, "30.00", name="Bo Chen")
    export(payment)
    payment.refresh_from_db()
    assert payment.export_status == S.EXPORTED
    assert [p["Id"] for p in companies[1].entities("Payment")] == [payment.export_reference]


def test_automatic_export_follows_the_mode_of_the_invoices_unit(units, companies, django_capture_on_commit_callbacks):
    main, north = units
    auto_export_settings_update(
        realm_id=companies[1].realm_id, mode=AutoExportSettings.Mode.WHEN_PAID, nightly_at=None, user=None
    )

    with django_capture_on_commit_callbacks(execute=True):
        paid(main, "10.00", name="Ann Lee")  # Main's company exports by hand: nothing queued
        paid(north, "20.00", name="Bo Chen")

    queued = [row.task for row in OrmQ.objects.all() if row.task["func"] == AUTO_EXPORT_TASK]
    assert [task["args"] for task in queued] == [("when_paid", companies[1].realm_id)]


def test_the_quickbooks_page_connects_the_unit_chosen_in_the_session(qbo_sandbox, settings, units, client):
    """The unit travels in the OAuth state (the session), so the answer connects the unit the person chose."""

    point_settings_at(settings, qbo_sandbox)
    main, north = units
    client.force_login(UserFactory(username="boss", is_superuser=True, is_staff=True))
    session = client.session
    session[BUSINESS_UNIT_SESSION_KEY] = north.pk
    session.save()

    authorize_url = client.post(reverse("quickbooks_export:connect"))["Location"]
    state = parse_qs(urlsplit(authorize_url).query)["state"][0]
    grant = qbo_sandbox.authorize(REDIRECT_URI, state=state, company_name="North Shore Plumbing")
    client.get(reverse("quickbooks_export:callback"), {"code": grant.code, "state": state, "realmId": grant.realm_id})

    assert connection_of(north).realm_id == grant.realm_id
    assert not QuickBooksConnection.objects.filter(business_unit=main).exists()
    page = client.get(reverse("quickbooks_export:settings")).content.decode()
    assert "North Shore Plumbing" in page


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_exports_of_two_units_run_at_once_each_in_its_own_company(units, companies):
    """Each company has its own runner lease and rate budget: the two runners never wait on each other."""
    main, north = units
    main_company, north_company = companies
    in_main = [paid(main, f"{10 + i}.00", name=f"Main Customer {i}") for i in range(3)]
    in_north = [paid(north, f"{20 + i}.00", name=f"North Customer {i}") for i in range(3)]
    export_batch_start(payments=[p.pk for p in in_main], selection="main", source="page")
    export_batch_start(payments=[p.pk for p in in_north], selection="north", source="page")

    results = run_at_once(
        lambda: export_run(realm_id=main_company.realm_id, sleep=lambda s: None),
        lambda: export_run(realm_id=north_company.realm_id, sleep=lambda s: None),
    )

    assert results == ["drained", "drained"]  # "busy" would mean one unit waited for the other's runner
    for payments, company in ((in_main, main_company), (in_north, north_company)):
        references = sorted(Payment.objects.get(pk=p.pk).export_reference for p in payments)
        assert sorted(p["Id"] for p in company.entities("Payment")) == references
