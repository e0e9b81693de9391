"""`manage.py qbwc_simulator` over real HTTP against a running FieldSync (pytest-django's live server)."""

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from billing.models import Payment
from quickbooks_desktop import routing
from tests.factories import issued_invoice, pay

from .conftest import QBWC_PASSWORD, QBWC_USER

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_command_exports_over_http_with_a_lost_answer_and_two_sessions(live_server, desktop):
    invoice = issued_invoice(amount="500.00", number="INV-9501")
    payments = [pay(invoice, "200.00"), pay(invoice, "300.00")]
    routing.export_batch_start(payments=[payments[0].pk], selection="demo")
    out = io.StringIO()

    call_command(
        "qbwc_simulator",
        url=f"{live_server.url}/quickbooks-desktop/qbwc/",
        username=QBWC_USER,
        password=QBWC_PASSWORD,
        sessions=2,
        drop_every=3,
        stdout=out,
    )

    text = out.getvalue()
    assert "invoice INV-9501: 500.00 total, 0.00 open" in text
    assert text.count("payment FS-P") == 2
    assert set(Payment.objects.values_list("export_status", flat=True)) == {Payment.ExportStatus.EXPORTED}


def test_the_command_says_when_fieldsync_is_not_reachable(live_server):
    with pytest.raises(CommandError, match="Is FieldSync running"):
        call_command(
            "qbwc_simulator", url=f"{live_server.url}/no-such-path/", username="u", password="p", stdout=io.StringIO()
        )
