"""The "Automatic export" part of the QuickBooks page: who may change it, what it saves, what it refuses."""

import pytest
from django.urls import reverse
from django_q.models import Schedule

from quickbooks_export.auto_export import AUTO_EXPORT_SCHEDULE, auto_export_schedule_name
from quickbooks_export.models import AutoExportSettings
from tests.quickbooks_export.export.conftest import connect

pytestmark = pytest.mark.django_db
URL = reverse("quickbooks_export:auto_export")


@pytest.fixture
def company(qbo_sandbox, settings, db):
    return connect(qbo_sandbox, settings)


def test_the_page_offers_automatic_export_off_by_default(manager_client, company):
    html = manager_client.get(reverse("quickbooks_export:settings")).content.decode()
    assert "Automatic export" in html and "Save automatic export" in html
    assert 'value="off" required id="id_mode_0" checked' in html


def test_choosing_nightly_saves_it_and_schedules_the_export(manager_client, manager, company):
    response = manager_client.post(URL, {"mode": "nightly", "nightly_at": "22:00"}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("quickbooks_export:settings")
    assert "Automatic export: every night at 22:00." in response.content.decode()
    row = AutoExportSettings.objects.get(realm_id=company.realm_id)
    assert (row.mode, row.nightly_at.hour, row.updated_by) == ("nightly", 22, manager)
    assert Schedule.objects.get(name=auto_export_schedule_name(company.realm_id)).schedule_type == Schedule.DAILY


def test_nightly_without_a_time_is_refused_in_place_and_nothing_is_saved(manager_client, company):
    response = manager_client.post(URL, {"mode": "nightly", "nightly_at": ""})
    assert response.status_code == 400
    assert "Choose the time of the nightly export, e.g. 22:00." in response.content.decode()
    assert not AutoExportSettings.objects.exists()
    assert not Schedule.objects.filter(name=AUTO_EXPORT_SCHEDULE).exists()


def test_an_unknown_mode_is_refused(manager_client, company):
    response = manager_client.post(URL, {"mode": "always"})
    assert response.status_code == 400
    assert not AutoExportSettings.objects.exists()


def test_only_people_who_manage_the_connection_may_change_it(viewer_client, client, company):
    assert viewer_client.post(URL, {"mode": "hourly"}).status_code == 403
    html = viewer_client.get(reverse("quickbooks_export:settings")).content.decode()
    assert "Off: export only when someone asks" in html and "Save automatic export" not in html
    client.logout()
    assert client.post(URL, {"mode": "hourly"}).status_code == 302  # to the sign-in page
    assert not AutoExportSettings.objects.exists()


def test_without_a_connection_nothing_is_saved(manager_client, db):
    response = manager_client.post(URL, {"mode": "hourly"}, follow=True)
    assert "Connect QuickBooks before choosing automatic export." in response.content.decode()
    assert not AutoExportSettings.objects.exists()
