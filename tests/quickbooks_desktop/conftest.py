"""Fixtures for QuickBooks Desktop: a Desktop connection with a Web Connector password, an in-memory company file,
and a Web Connector session run against our SOAP endpoint (through Django's full request stack)."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.urls import reverse

from quickbooks_desktop import services
from quickbooks_desktop.simulator import DesktopCompany, DjangoClientTransport, WebConnectorSimulator

QBWC_USER = "fieldsync"
QBWC_PASSWORD = "a long web connector password"
STAFF_PASSWORD = "correct horse battery staple"


@pytest.fixture
def desktop(db):
    """The installation exports to QuickBooks Desktop."""
    services.desktop_password_set(password=QBWC_PASSWORD)
    return services.desktop_connection_update(
        use_desktop=True,
        income_account_name="Services",
        deposit_account_name="",
        run_every_minutes=15,
        username=QBWC_USER,
    )


@pytest.fixture
def company():
    return DesktopCompany()


@pytest.fixture
def web_connector(client, company):
    """web_connector(**options) -> a simulator of one Web Connector session, ready to .run()."""

    def make(**options) -> WebConnectorSimulator:
        options.setdefault("username", QBWC_USER)
        options.setdefault("password", QBWC_PASSWORD)
        options.setdefault("company", company)
        return WebConnectorSimulator(DjangoClientTransport(client, reverse("quickbooks_desktop:qbwc")), **options)

    return make


@pytest.fixture
def desktop_manager(db):
    user = get_user_model().objects.create_user(username="desk", password=STAFF_PASSWORD, first_name="Dana")
    user.user_permissions.add(
        Permission.objects.get(codename="manage_desktop_connection"),
        Permission.objects.get(codename="view_desktopconnection"),
        Permission.objects.get(codename="export_payments"),
        Permission.objects.get(codename="view_payment"),
        Permission.objects.get(codename="view_exportbatch"),
    )
    return user


@pytest.fixture
def desktop_viewer(db):
    user = get_user_model().objects.create_user(username="deskview", password=STAFF_PASSWORD)
    user.user_permissions.add(Permission.objects.get(codename="view_desktopconnection"))
    return user
