"""Fixtures for the staff pages: people with and without the permissions, and a QuickBooks company on a sandbox."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from quickbooks_export.models import QuickBooksMappingSettings, QuickBooksPaymentMethodMapping
from tests.quickbooks_export.export.conftest import Company, connect, drain

PASSWORD = "correct horse battery staple"
VIEW_PERMISSIONS = ("view_payment", "view_exportbatch", "view_manualhandlingitem", "view_quickbooksconnection")
OFFICE_PERMISSIONS = (*VIEW_PERMISSIONS, "export_payments", "add_refund", "change_manualhandlingitem")


def make_user(username: str, *codenames: str, **fields):
    user = get_user_model().objects.create_user(username=username, password=PASSWORD, **fields)
    if codenames:
        user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


@pytest.fixture
def office_user(db):
    """Someone who exports payments, records refunds and handles what QuickBooks needs by hand."""
    return make_user("dana", *OFFICE_PERMISSIONS, first_name="Dana", last_name="Office")


@pytest.fixture
def viewer(db):
    """Signed in with the view permissions only: may look at everything, change nothing."""
    return make_user("viewer", *VIEW_PERMISSIONS, first_name="Vic", last_name="Viewer")


@pytest.fixture
def office_client(client, office_user):
    client.force_login(office_user)
    return client


@pytest.fixture
def viewer_client(client, viewer):
    client.force_login(viewer)
    return client


@pytest.fixture
def qbo_company(qbo_sandbox, settings, db) -> Company:
    """A QuickBooks company connected through the real OAuth code path on a sandbox started for the test."""
    settings.EXPORT_MAX_RETRY_AFTER_SECONDS = 0.2
    return connect(qbo_sandbox, settings)


def break_payment_method(realm_id: str, method: str) -> tuple[QuickBooksPaymentMethodMapping, str]:
    """Map one of our payment methods to a QuickBooks PaymentMethod that does not exist, so QuickBooks refuses the
    payments paid that way (a validation fault). Returns the mapping row and the good id, to put it back."""
    mapping_settings, _ = QuickBooksMappingSettings.objects.get_or_create(realm_id=realm_id)
    row, _ = QuickBooksPaymentMethodMapping.objects.get_or_create(settings=mapping_settings, method=method)
    good = row.qbo_payment_method_id
    row.qbo_payment_method_id, row.qbo_payment_method_name = "999999", "Gone"
    row.save()
    return row, good


def repair_payment_method(row: QuickBooksPaymentMethodMapping, good_id: str) -> None:
    row.qbo_payment_method_id = good_id
    row.qbo_payment_method_name = "" if not good_id else row.qbo_payment_method_name
    row.save()


__all__ = ["Company", "drain"]


# The record pages (issue 12): office staff who enter customers, jobs, invoices and payments.
RECORD_PERMISSIONS = (
    "view_customer",
    "add_customer",
    "change_customer",
    "add_job",
    "view_invoice",
    "add_invoice",
    "change_invoice",
    "add_payment",
    "change_payment",
    "view_payment",
)


@pytest.fixture
def clerk(db):
    """Someone at the desk who records customers, jobs, invoices and payments (and may not export)."""
    return make_user("casey", *RECORD_PERMISSIONS, first_name="Casey", last_name="Desk")


@pytest.fixture
def clerk_client(client, clerk):
    client.force_login(clerk)
    return client
