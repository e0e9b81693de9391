"""The QuickBooks Desktop page, the .qwc file, the Web Connector password, and the export seam from pages and API."""

import uuid
import xml.etree.ElementTree as ET

import pytest
from django.contrib.auth.hashers import check_password
from django.urls import reverse

from billing.models import Payment
from fieldsync.api.tokens import api_client_create
from quickbooks_desktop import services
from quickbooks_desktop.models import DesktopConnection
from quickbooks_export.models import ExportBatch
from tests.factories import issued_invoice, pay

from .conftest import QBWC_PASSWORD, QBWC_USER

pytestmark = pytest.mark.django_db
PAGE = "/quickbooks-desktop/"


def test_the_page_needs_a_login_and_the_view_permission(client, django_user_model):
    assert client.get(PAGE).status_code == 302
    client.force_login(django_user_model.objects.create_user(username="tech", password="x" * 20))
    assert client.get(PAGE).status_code == 403


def test_a_viewer_sees_the_status_but_no_controls_and_cannot_post(client, desktop, desktop_viewer):
    client.force_login(desktop_viewer)
    page = client.get(PAGE)
    assert page.status_code == 200
    assert b"Download the .qwc file" not in page.content and b"Set password" not in page.content
    assert client.post(reverse("quickbooks_desktop:password"), {"password": "x" * 20}).status_code == 403
    assert client.get(reverse("quickbooks_desktop:qwc")).status_code == 403


def test_the_page_shows_last_contact_queue_and_errors_in_plain_words(client, desktop, desktop_manager, web_connector):
    pay(issued_invoice(amount="10.00", number="INV-8001"), "10.00")
    services.desktop_export_batch_start(payments=list(Payment.objects.values_list("pk", flat=True)), selection="t")
    client.force_login(desktop_manager)
    page = client.get(PAGE).content.decode()
    assert "Never — add the .qwc file" in page and "1 payment" in page

    web_connector(password="wrong password!!").run()
    page = client.get(PAGE).content.decode()
    assert "wrong user name or password" in page


def test_the_page_reads_a_constant_number_of_queries(client, desktop, desktop_manager, django_assert_max_num_queries):
    client.force_login(desktop_manager)
    for n in range(5):
        pay(issued_invoice(amount="10.00", number=f"INV-81{n:02d}"), "10.00")
    services.desktop_export_batch_start(payments=list(Payment.objects.values_list("pk", flat=True)), selection="t")
    with django_assert_max_num_queries(12):
        assert client.get(PAGE).status_code == 200


def test_setting_the_password_stores_only_a_hash(client, desktop_manager):
    client.force_login(desktop_manager)
    response = client.post(reverse("quickbooks_desktop:password"), {"password": "my very long password"}, follow=True)
    assert "Web Connector password set" in response.content.decode()
    connection = DesktopConnection.objects.get()
    assert "my very long password" not in connection.password_hash
    assert check_password("my very long password", connection.password_hash)
    assert "my very long password" not in repr(connection)


def test_a_short_password_is_refused_and_changes_nothing(client, desktop, desktop_manager):
    before = DesktopConnection.objects.get().password_hash
    client.force_login(desktop_manager)
    response = client.post(reverse("quickbooks_desktop:password"), {"password": "short"}, follow=True)
    assert "at least 12 characters" in response.content.decode()
    assert DesktopConnection.objects.get().password_hash == before


def test_desktop_cannot_be_chosen_without_a_password(client, desktop_manager):
    client.force_login(desktop_manager)
    data = {
        "use_desktop": "on",
        "username": "fieldsync",
        "income_account_name": "Services",
        "deposit_account_name": "",
        "run_every_minutes": "15",
    }
    response = client.post(reverse("quickbooks_desktop:settings"), data, follow=True)
    assert "Set a Web Connector password before" in response.content.decode()
    assert not DesktopConnection.objects.filter(use_desktop=True).exists()


def test_changes_need_post(client, desktop, desktop_manager):
    client.force_login(desktop_manager)
    assert client.get(reverse("quickbooks_desktop:settings")).status_code == 405
    assert client.get(reverse("quickbooks_desktop:password")).status_code == 405


def test_the_qwc_file_registers_this_endpoint_with_the_web_connector(client, desktop, desktop_manager):
    client.force_login(desktop_manager)
    response = client.get(reverse("quickbooks_desktop:qwc"), secure=True)
    assert response["Content-Disposition"] == 'attachment; filename="fieldsync.qwc"'
    root = ET.fromstring(response.content)
    assert root.tag == "QBWCXML"
    assert root.findtext("AppURL") == "https://testserver/quickbooks-desktop/qbwc/"
    assert root.findtext("AppSupport") == "https://testserver/quickbooks-desktop/"
    assert root.findtext("UserName") == QBWC_USER
    assert root.findtext("QBType") == "QBFS"
    assert root.findtext("Scheduler/RunEveryNMinutes") == "15"
    for tag in ("OwnerID", "FileID"):
        uuid.UUID(root.findtext(tag).strip("{}"))  # a GUID in braces
    assert root.findtext("OwnerID") != root.findtext("FileID")


def test_downloading_the_qwc_file_over_plain_http_explains_why_not(client, desktop, desktop_manager):
    client.force_login(desktop_manager)
    response = client.get(reverse("quickbooks_desktop:qwc"), follow=True)
    assert "only talks to https addresses" in response.content.decode()


def test_the_qwc_file_needs_https_except_on_localhost(desktop):
    with pytest.raises(services.DesktopSetupError, match="only talks to https"):
        services.qwc_file(
            connection=desktop, app_url="http://fieldsync.example.com/q/", support_url="http://fieldsync.example.com/"
        )
    text = services.qwc_file(connection=desktop, app_url="http://localhost:8000/q/", support_url="http://localhost/")
    assert "<AppURL>http://localhost:8000/q/</AppURL>" in text
    with pytest.raises(services.DesktopSetupError, match="same host"):
        services.qwc_file(
            connection=desktop, app_url="https://a.example.com/q/", support_url="https://b.example.com/help/"
        )


def test_exporting_from_the_payment_page_goes_to_desktop_when_desktop_is_chosen(client, desktop, desktop_manager):
    payment = pay(issued_invoice(amount="10.00", number="INV-8201"), "10.00")
    client.force_login(desktop_manager)

    response = client.post(reverse("exports:payment_export", args=[payment.pk]))

    batch = ExportBatch.objects.get()
    assert response.status_code == 302 and batch.realm_id == f"qbd:{desktop.pk}"
    assert batch.waiting_reason == "Waiting for the QuickBooks Web Connector's next run."
    payment.refresh_from_db()
    assert payment.export_status == Payment.ExportStatus.QUEUED


def test_exporting_through_the_api_goes_to_desktop_when_desktop_is_chosen(desktop, company, web_connector):
    from django.test import Client

    payment = pay(issued_invoice(amount="10.00", number="INV-8301"), "10.00")
    _, token = api_client_create(name="field-app")
    api = Client(headers={"Authorization": f"Bearer {token}", "Idempotency-Key": str(uuid.uuid4())})

    response = api.post(f"/api/v1/payments/{payment.pk}/export/", content_type="application/json")

    assert response.status_code == 202
    web_connector().run()
    detail = api.get(f"/api/v1/exports/{response.json()['id']}/").json()
    assert detail["status"] == "finished" and detail["counts"]["created"] == 1
    assert [t.ref_number for t in company.transactions("ReceivePayment")] == [f"FS-P{payment.pk}"]


def test_exporting_without_desktop_set_up_and_no_online_connection_says_what_to_do(desktop_manager, client):
    payment = pay(issued_invoice(amount="10.00", number="INV-8401"), "10.00")
    client.force_login(desktop_manager)
    response = client.post(reverse("exports:payment_export", args=[payment.pk]), follow=True)
    assert "QuickBooks is not connected" in response.content.decode()  # the Online path, unchanged
    assert QBWC_PASSWORD  # (the fixture module's password is unused here: Desktop is not set up)


def test_a_payment_exported_to_desktop_shows_its_txnid_and_no_online_link(
    client, desktop, desktop_manager, web_connector
):
    payment = pay(issued_invoice(amount="10.00", number="INV-8501"), "10.00")
    services.desktop_export_batch_start(payments=[payment.pk], selection="t")
    web_connector().run()
    payment.refresh_from_db()
    client.force_login(desktop_manager)

    page = client.get(reverse("exports:payment_detail", args=[payment.pk])).content.decode()

    assert f"QuickBooks payment <strong>{payment.export_reference}</strong>" in page
    assert "Open in QuickBooks" not in page


def test_switching_between_online_and_desktop_waits_for_queued_exports(desktop):
    payment = pay(issued_invoice(amount="10.00", number="INV-8601"), "10.00")
    services.desktop_export_batch_start(payments=[payment.pk], selection="t")
    with pytest.raises(
        services.DesktopSetupError, match="1 payment is still waiting to be exported to QuickBooks Desktop"
    ):
        services.desktop_connection_update(
            use_desktop=False, income_account_name="Services", deposit_account_name="", run_every_minutes=15,
            username="fieldsync",
        )  # fmt: skip
    assert DesktopConnection.objects.get().use_desktop


def test_a_unicode_user_name_is_refused_without_an_error(client, desktop):
    from quickbooks_desktop import soap

    body = soap.build_call("authenticate", strUserName="Zoë", strPassword="whatever it is")
    response = client.generic("POST", "/quickbooks-desktop/qbwc/", body, content_type="text/xml")
    assert soap.parse_result("authenticate", response.content) == ["", "nvu"]


def test_the_settings_form_saves_the_payment_method_names(client, desktop, desktop_manager):
    client.force_login(desktop_manager)
    page = client.get(PAGE).content.decode()
    assert 'name="method_cash" value="Cash"' in page  # a new company's defaults
    data = {
        "use_desktop": "on",
        "username": "fieldsync",
        "income_account_name": "Services",
        "deposit_account_name": "Checking",
        "run_every_minutes": "30",
        "method_cash": "Cash",
        "method_check": "Check",
        "method_card": "Visa",
        "method_ach": "",
        "method_other": "",
    }
    response = client.post(reverse("quickbooks_desktop:settings"), data, follow=True)
    assert "QuickBooks Desktop settings saved" in response.content.decode()
    connection = DesktopConnection.objects.get()
    assert connection.payment_method_names == {"cash": "Cash", "check": "Check", "card": "Visa"}
    assert connection.deposit_account_name == "Checking" and connection.run_every_minutes == 30


def test_the_export_payments_command_refuses_when_exports_go_to_desktop(desktop):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    payment = pay(issued_invoice(amount="10.00", number="INV-8701"), "10.00")
    with pytest.raises(CommandError, match="Exports go to QuickBooks Desktop"):
        call_command("export_payments", payment=[payment.pk])
