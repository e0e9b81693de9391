from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db.models import F

from billing.demo import SECOND_UNIT_NAME
from billing.models import BusinessUnit, Customer, Invoice, Job, ManualHandlingItem, Payment
from billing.selectors import invoice_with_balances, payment_export_readiness_map, payment_with_amounts

pytestmark = pytest.mark.django_db


def story_state():
    invoices = {i.number: (i.status, i.open_balance) for i in invoice_with_balances()}
    readiness = payment_export_readiness_map(payment_ids=Payment.objects.values_list("pk", flat=True))
    return invoices, readiness


def test_seed_demo_builds_every_invoice_state_the_office_meets():
    call_command("seed_demo")
    invoices, readiness = story_state()

    assert invoices["INV-1041"] == (Invoice.Status.PAID, Decimal("0.00"))  # deposit + part + final
    assert invoices["INV-1042"][0] == Invoice.Status.OPEN  # deposit only
    assert invoices["INV-1043"] == (Invoice.Status.OPEN, Decimal("50.00"))  # partially paid
    assert invoices["INV-1044"][0] == invoices["INV-1045"][0] == Invoice.Status.PAID  # split payment
    assert invoices["INV-1047"][0] == Invoice.Status.OPEN  # unpaid
    assert invoices["INV-1048"] == (Invoice.Status.OPEN, Decimal("40.00"))  # refunded before export
    assert invoices["INV-1050"][0] == Invoice.Status.VOID
    assert invoices["INV-1051"][0] == Invoice.Status.DRAFT
    assert invoices["NS-3001"] == (Invoice.Status.PAID, Decimal("0.00"))  # the second unit's
    assert invoices["NS-3002"] == (Invoice.Status.OPEN, Decimal("95.00"))

    held_reasons = {r.held_reason for r in readiness.values() if not r.exportable}
    assert "Held: INV-1043 still has $50.00 open." in held_reasons
    assert "Held: NS-3002 still has $95.00 open." in held_reasons
    overpaid = payment_with_amounts().get(customer__display_name="Lakeview Property Management")
    assert overpaid.unapplied_credit == Decimal("10.00") and readiness[overpaid.pk].exportable

    assert Customer.objects.filter(display_name="John Smith").count() == 2
    assert Customer.objects.filter(display_name__contains="'").count() == 2
    assert Customer.objects.filter(email="").exists()
    item = ManualHandlingItem.objects.get()  # the refund after export
    assert item.amount == Decimal("110.00") and item.status == ManualHandlingItem.Status.OPEN
    assert get_user_model().objects.get(username="admin").is_staff


def test_seed_demo_makes_a_second_unit_with_records_of_its_own_and_the_demo_login_in_both():
    call_command("seed_demo")

    main = Invoice.objects.get(number="INV-1040").business_unit
    north = BusinessUnit.objects.get(name=SECOND_UNIT_NAME)
    assert BusinessUnit.objects.count() == 2 and main != north
    assert Customer.objects.filter(business_unit=north).count() == 3
    assert set(Invoice.objects.filter(business_unit=north).values_list("number", flat=True)) == {
        "NS-3001",
        "NS-3002",
        "NS-3003",
    }
    assert Payment.objects.filter(business_unit=north).count() == 2
    assert not Invoice.objects.filter(business_unit=main, number__startswith="NS-").exists()
    assert set(get_user_model().objects.get(username="admin").business_units.all()) == {main, north}


def test_seed_demo_is_deterministic_and_if_empty_does_nothing_the_second_time(capsys):
    call_command("seed_demo")
    first = story_state()
    call_command("seed_demo", "--if-empty")
    assert "already present" in capsys.readouterr().out
    assert Payment.objects.count() == 12 + 2
    assert BusinessUnit.objects.count() == 2
    assert story_state() == first


def test_seed_demo_scale_bulk_creates_payments_in_consistent_states():
    call_command("seed_demo", "--scale", "200")
    scaled = Payment.objects.filter(reference__startswith="R")
    assert scaled.count() == 200
    assert set(scaled.values_list("business_unit", flat=True)) == {
        Invoice.objects.get(number="INV-1040").business_unit_id
    }
    readiness = payment_export_readiness_map(payment_ids=scaled.values_list("pk", flat=True))
    for invoice in invoice_with_balances(Invoice.objects.filter(number__startswith="S-")):
        expected = Invoice.Status.PAID if invoice.open_balance == 0 else Invoice.Status.OPEN
        assert invoice.status == expected
        assert invoice.open_balance >= 0
    exportable = sum(r.exportable for r in readiness.values())
    assert 0 < exportable < 200


def test_seed_demo_gives_each_unit_job_types_and_its_jobs_one_each():
    call_command("seed_demo")

    main = Invoice.objects.get(number="INV-1040").business_unit
    north = BusinessUnit.objects.get(name=SECOND_UNIT_NAME)
    assert set(main.job_types.values_list("name", flat=True)) == {"Repair", "Install", "Maintenance", "Inspection"}
    assert set(north.job_types.values_list("name", flat=True)) == {"Repair", "Maintenance"}
    assert not Job.objects.filter(job_type__isnull=True).exists()
    assert not Job.objects.exclude(job_type__business_unit=F("business_unit")).exists()
    assert Job.objects.get(number="JOB-2004").job_type.name == "Repair"
