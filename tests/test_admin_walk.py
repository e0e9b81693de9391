"""Every admin page, as a superuser and as staff with only view rights: no 500 anywhere (issue 11, item 4)."""

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from billing.models import ManualHandlingItem
from billing.services import refund_record
from fieldsync.api.tokens import api_client_create
from quickbooks_export.models import ExportBatch, QuickBooksConnection
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def populated(db):
    """The demo company plus one of everything the admin lists: an exported payment with a refund (a manual item),
    an API client, a QuickBooks connection, an export batch."""
    call_command("seed_demo")
    from billing.models import Payment
    from billing.services import payment_export_status_transition

    payment = Payment.objects.filter(applications__isnull=False).order_by("pk").first()
    for status in ("queued", "exporting", "exported"):
        payment_export_status_transition(payment_id=payment.pk, to_status=status, export_reference="77")
    refund_record(payment=payment, amount="1.00", reason="goodwill", refunded_on=payment.received_on, method="cash")
    assert ManualHandlingItem.objects.exists()
    api_client_create(name="field-app", business_units=[payment.business_unit])
    connection = QuickBooksConnection(
        business_unit=payment.business_unit, realm_id="9130350000000001", company_name="Acme Plumbing"
    )
    connection.set_tokens(access_token="a", refresh_token="r", access_expires_in=3600, refresh_expires_in=86400)
    connection.save()
    ExportBatch.objects.create(source=ExportBatch.Source.API, selection="2 payments", realm_id=connection.realm_id)


def _pages(model):
    prefix = f"admin:{model._meta.app_label}_{model._meta.model_name}"
    yield reverse(f"{prefix}_changelist")
    yield reverse(f"{prefix}_add")
    for obj in model._default_manager.order_by("pk")[:2]:
        yield reverse(f"{prefix}_change", args=[obj.pk])
        yield reverse(f"{prefix}_history", args=[obj.pk])


def _walk(client) -> dict[str, int]:
    statuses = {"/admin/": client.get("/admin/").status_code}
    for model in admin.site._registry:
        for url in _pages(model):
            statuses[url] = client.get(url).status_code
    return statuses


def test_every_admin_page_as_a_superuser(populated):
    client = Client()
    client.force_login(UserFactory(username="boss", is_staff=True, is_superuser=True))

    statuses = _walk(client)

    assert len(statuses) > 40
    assert {url: s for url, s in statuses.items() if s >= 500} == {}
    assert {url: s for url, s in statuses.items() if s not in (200, 302, 403)} == {}


def test_every_admin_page_as_staff_with_only_view_rights(populated):
    viewer = UserFactory(username="auditor", is_staff=True)
    viewer.user_permissions.add(*Permission.objects.filter(codename__startswith="view_"))
    client = Client()
    client.force_login(viewer)

    statuses = _walk(client)

    assert {url: s for url, s in statuses.items() if s >= 500} == {}
    assert all(s == 403 for url, s in statuses.items() if url.endswith("/add/")), statuses
    changelists = [url for url in statuses if url.count("/") == 4]
    assert all(statuses[url] == 200 for url in changelists), statuses


def test_add_is_not_offered_for_records_only_services_may_create(populated):
    client = Client()
    client.force_login(UserFactory(username="boss", is_staff=True, is_superuser=True))

    for model in ("invoice", "payment", "refund", "manualhandlingitem"):
        assert client.get(f"/admin/billing/{model}/add/").status_code == 403, model
        assert f"/admin/billing/{model}/add/" not in client.get(f"/admin/billing/{model}/").content.decode()
