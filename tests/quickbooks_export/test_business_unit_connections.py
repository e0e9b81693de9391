"""One current QuickBooks connection per business unit; the pages show the company of the unit chosen in the session."""

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor

from billing.models import BusinessUnit
from billing.selectors import BUSINESS_UNIT_SESSION_KEY
from billing.services import business_unit_default
from quickbooks_export.context_processors import quickbooks_connection
from quickbooks_export.models import QuickBooksConnection
from tests.factories import BusinessUnitFactory

from .conftest import make_connection

State = QuickBooksConnection.State


@pytest.mark.django_db
def test_each_unit_has_one_current_connection_and_a_company_is_current_in_one_unit():
    main, north = business_unit_default(), BusinessUnitFactory(name="North Shore")
    make_connection(business_unit=main, realm_id="1")
    make_connection(business_unit=north, realm_id="2")  # a second unit's connection is fine

    with pytest.raises(IntegrityError), transaction.atomic():
        make_connection(business_unit=north, realm_id="3")
    with pytest.raises(IntegrityError), transaction.atomic():
        make_connection(business_unit=BusinessUnitFactory(name="South"), realm_id="1")
    make_connection(business_unit=north, realm_id="1", state=State.DISCONNECTED)  # history rows are fine

    assert sorted(QuickBooksConnection.objects.filter(is_current=True).values_list("realm_id", flat=True)) == ["1", "2"]


@pytest.mark.django_db
def test_the_header_shows_the_company_of_the_unit_chosen_in_the_session(rf, admin_user, django_assert_num_queries):
    main, north = business_unit_default(), BusinessUnitFactory(name="North Shore")
    make_connection(business_unit=main, realm_id="1", company_name="Main Street Plumbing")
    make_connection(business_unit=north, realm_id="2", company_name="North Shore Plumbing", state=State.NEEDS_RECONNECT)

    def status(session):
        request = rf.get("/")
        request.user, request.session = admin_user, session
        return quickbooks_connection(request)["quickbooks_status"]

    chosen_north, nothing_chosen = status({BUSINESS_UNIT_SESSION_KEY: north.pk}), status({})
    with django_assert_num_queries(1):
        assert (chosen_north.company_name, chosen_north.needs_reconnect) == ("North Shore Plumbing", True)
    assert (nothing_chosen.company_name, nothing_chosen.is_connected) == ("Main Street Plumbing", True)  # by name


@pytest.mark.django_db(transaction=True)
def test_migration_gives_existing_connections_the_default_unit():
    executor = MigrationExecutor(connection)
    before = [("quickbooks_export", "0011_payments_recorded_in_quickbooks")]
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    row = old.get_model("quickbooks_export", "QuickBooksConnection").objects.create(realm_id="42", company_name="Old")

    executor.loader.build_graph()  # the state after unapplying
    executor.migrate(executor.loader.graph.leaf_nodes())  # every app at its leaf again, for the tests after this one

    assert QuickBooksConnection.objects.get(pk=row.pk).business_unit == BusinessUnit.objects.get(slug="main")
