"""The demo's second business unit, as a person meets it after `make run`: the switcher shows both units, and each
unit is connected on the QuickBooks page to its own new company on the sandbox's consent page; the second unit's
exports go to its company only."""

from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.urls import reverse

from billing.demo import SECOND_UNIT_NAME
from billing.models import BusinessUnit, Payment
from billing.services import DEFAULT_UNIT_NAME
from quickbooks_export.models import QuickBooksConnection
from quickbooks_export.services import export_batch_start

from .export.conftest import drain
from .test_connection import _approve_on_consent_page, _local_path, _messages, _start

pytestmark = pytest.mark.django_db


def _connect_chosen_unit(client, *, company_name: str) -> QuickBooksConnection:
    back = _approve_on_consent_page(_start(client), company_name=company_name)
    response = client.get(_local_path(back), follow=True)
    assert f"Connected to QuickBooks company {company_name}." in _messages(response)
    return QuickBooksConnection.objects.get(is_current=True, company_name=company_name)


def test_each_demo_unit_connects_to_its_own_new_sandbox_company_and_exports_there(client, qbo):
    call_command("seed_demo")
    client.force_login(get_user_model().objects.get(username="admin"))
    main, north = BusinessUnit.objects.get(name=DEFAULT_UNIT_NAME), BusinessUnit.objects.get(name=SECOND_UNIT_NAME)

    home = client.get(reverse("exports:payment_list")).content.decode()
    assert 'name="business_unit"' in home and SECOND_UNIT_NAME in home  # the switcher

    client.post(reverse("billing:business_unit_switch"), {"business_unit": north.pk})
    north_connection = _connect_chosen_unit(client, company_name="North Store Books")
    client.post(reverse("billing:business_unit_switch"), {"business_unit": main.pk})
    main_connection = _connect_chosen_unit(client, company_name="Demo Plumbing Books")

    assert north_connection.business_unit == north and main_connection.business_unit == main
    assert north_connection.realm_id != main_connection.realm_id
    north_connection.refresh_from_db()
    assert north_connection.is_current  # connecting the first unit left the second one's connection alone

    batch = export_batch_start(payments=Payment.objects.filter(business_unit=north), selection="demo", source="command")
    assert batch.realm_id == north_connection.realm_id
    drain(batch.realm_id)
    north_payments = qbo.entities(north_connection.realm_id, "Payment")
    assert [Decimal(str(p["TotalAmt"])) for p in north_payments] == [Decimal("780.00")]  # NS-3002 is held
    north_invoices = {i["DocNumber"] for i in qbo.entities(north_connection.realm_id, "Invoice")}
    assert "NS-3001" in north_invoices
    main_invoices = {i["DocNumber"] for i in qbo.entities(main_connection.realm_id, "Invoice")}
    assert not {number for number in main_invoices if number.startswith("NS-")}
    assert qbo.entities(main_connection.realm_id, "Payment") == []
