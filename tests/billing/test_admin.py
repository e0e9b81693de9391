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
