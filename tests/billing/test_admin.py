import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.factories import UserFactory, issued_invoice, pay

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(UserFactory(username="boss", is_staff=True, is_superuser=True))
    return client


def test_admin_requires_login(client):
    response = client.get(reverse("admin:billing_payment_changelist"))
    assert response.status_code == 302
    assert "/login/" in response["Location"]


def test_payment_list_shows_exportability_and_held_reason(admin_client):
    call_command("seed_demo")
    response = admin_client.get(reverse("admin:billing_payment_changelist"))
    content = response.content.decode()
    assert response.status_code == 200
    assert "Held: INV-1043 still has $50.00 open." in content
    assert "$1,000.00" in content


def test_invoice_list_shows_total_paid_and_open_balance(admin_client):
    invoice = issued_invoice(amount="300.00", number="INV-77")
    pay(invoice, "250.00")
    content = admin_client.get(reverse("admin:billing_invoice_changelist")).content.decode()
    assert "$300.00" in content and "$250.00" in content and "$50.00" in content


def test_payment_list_runs_the_same_number_of_queries_for_5_and_for_40_rows(admin_client):
    def add_payments(count):
        for _ in range(count):
            pay(issued_invoice(amount="100.00"), "60.00")

    def queries_for_list():
        with CaptureQueriesContext(connection) as captured:
            response = admin_client.get(reverse("admin:billing_payment_changelist"))
        assert response.status_code == 200
        return len(captured.captured_queries)

    add_payments(5)
    with_5 = queries_for_list()
    add_payments(35)
    assert queries_for_list() == with_5


# --- The admin is not a side door (issue 11, items 4 and 5) ---------------------------------------------------------


def _exported_payment():
    from billing.services import payment_export_status_transition

    invoice = issued_invoice(amount="100.00", number="INV-88")
    payment = pay(invoice, "100.00")
    for status in ("queued", "exporting", "exported"):
        payment_export_status_transition(payment_id=payment.pk, to_status=status, export_reference="41")
    return payment


def test_admin_cannot_change_an_exported_payment(admin_client):
    from billing.models import Payment
    from tests.factories import CustomerFactory

    payment = _exported_payment()
    other = CustomerFactory()
    url = reverse("admin:billing_payment_change", args=[payment.pk])

    page = admin_client.get(url)
    response = admin_client.post(
        url, {"customer": other.pk, "method": "cash", "received_on": "2020-01-01", "reference": "x", "memo": "x"}
    )

    assert page.status_code == 200 and 'name="customer"' not in page.content.decode()
    assert response.status_code == 403
    after = Payment.objects.get(pk=payment.pk)
    assert (after.customer_id, after.received_on, after.reference) == (
        payment.customer_id,
        payment.received_on,
        payment.reference,
    )


def test_admin_cannot_change_an_invoice_number_or_customer(admin_client):
    from billing.models import Invoice
    from tests.factories import CustomerFactory

    invoice = issued_invoice(amount="100.00", number="INV-89")
    other = CustomerFactory()

    response = admin_client.post(
        reverse("admin:billing_invoice_change", args=[invoice.pk]), {"number": "INV-90", "customer": other.pk}
    )

    assert response.status_code == 403
    after = Invoice.objects.get(pk=invoice.pk)
    assert (after.number, after.customer_id) == ("INV-89", invoice.customer_id)


def test_admin_keeps_a_jobs_number_and_customer(admin_client):
    from billing.models import Job
    from tests.factories import CustomerFactory, JobFactory

    job = JobFactory(number="JOB-1")
    other = CustomerFactory()

    response = admin_client.post(
        reverse("admin:billing_job_change", args=[job.pk]),
        {"number": "JOB-2", "customer": other.pk, "title": "New title", "status": "scheduled"},
    )

    assert response.status_code == 302
    after = Job.objects.get(pk=job.pk)
    assert (after.number, after.customer_id, after.title) == ("JOB-1", job.customer_id, "New title")


@pytest.mark.parametrize("model", ["payment", "refund", "manualhandlingitem", "invoice"])
def test_admin_add_forms_that_would_bypass_the_services_are_refused(admin_client, model):
    response = admin_client.post(reverse(f"admin:billing_{model}_add"), {"amount": "10.00"})

    assert response.status_code == 403


def test_admin_cannot_delete_billing_records(admin_client):
    from billing.models import Payment

    payment = _exported_payment()

    assert (
        admin_client.post(reverse("admin:billing_payment_delete", args=[payment.pk]), {"post": "yes"}).status_code
        == 403
    )
    assert Payment.objects.filter(pk=payment.pk).exists()


def test_a_revoked_api_client_cannot_be_unrevoked_in_the_admin(admin_client):
    from django.test import Client

    from fieldsync.api.tokens import api_client_create, api_client_revoke
    from fieldsync.models import ApiClient

    client, token = api_client_create(name="field-app")
    api_client_revoke(name="field-app")
    url = reverse("admin:fieldsync_apiclient_change", args=[client.pk])

    admin_client.post(url, {"can_write": "on", "can_export": "on", "revoked_at_0": "", "revoked_at_1": ""})

    assert ApiClient.objects.get(pk=client.pk).revoked_at is not None
    answer = Client().get("/api/v1/customers/", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 401 and answer.json()["code"] == "token_revoked"


def test_the_admin_revokes_through_the_service(admin_client):
    from django.test import Client

    from fieldsync.api.tokens import api_client_create
    from fieldsync.models import ApiClient

    client, token = api_client_create(name="field-app")

    admin_client.post(
        reverse("admin:fieldsync_apiclient_changelist"), {"action": "revoke", "_selected_action": [client.pk]}
    )

    assert ApiClient.objects.get(pk=client.pk).revoked_at is not None
    assert Client().get("/api/v1/customers/", headers={"Authorization": f"Bearer {token}"}).status_code == 401
