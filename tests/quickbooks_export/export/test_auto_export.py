"""Automatic export: on payment, hourly or nightly — the real engine, the real clients, the sandbox's books."""

import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import Permission
from django.core import mail
from django.utils import timezone
from django_q.models import OrmQ, Schedule

from billing import services as billing_services
from billing.models import Payment
from fieldsync.exceptions import ApplicationError
from quickbooks_export import tasks
from quickbooks_export.auto_export import (
    AUTO_EXPORT_TASK,
    SUMMARY_SCHEDULE,
    auto_export_schedule_name,
    auto_export_settings_update,
    auto_export_start,
    auto_export_summary_send,
    invoice_paid_listener,
)
from quickbooks_export.models import AutoExportSettings, ExportAttempt, ExportBatch
from quickbooks_export.selectors import export_batch_counts
from tests.factories import CustomerFactory, UserFactory, issued_invoice, pay

from .conftest import drain, export

pytestmark = pytest.mark.django_db
S = Payment.ExportStatus
Mode = AutoExportSettings.Mode


def queued_auto_exports() -> list[tuple]:
    """The automatic export tasks waiting in django-q2's queue, as (func, args)."""
    tasks_ = [row.task for row in OrmQ.objects.all()]
    return [(t["func"], t["args"]) for t in tasks_ if t["func"] == AUTO_EXPORT_TASK]


def run_queued_auto_exports(realm_id: str) -> list:
    """What the worker does with the queued tasks: run each, then the exporter to the end."""
    results = [tasks.auto_export_task(*args) for _, args in queued_auto_exports()]
    OrmQ.objects.all().delete()
    drain(realm_id)
    return results


def test_when_paid_exports_the_invoice_and_all_its_payments_once_it_is_fully_paid(
    qbo_company, django_capture_on_commit_callbacks
):
    auto_export_settings_update(realm_id=qbo_company.realm_id, mode=Mode.WHEN_PAID, nightly_at=None, user=None)
    invoice = issued_invoice(customer=CustomerFactory(display_name="Ann Lee"), amount="300.00", number="INV-2001")

    with django_capture_on_commit_callbacks(execute=True):
        deposit = pay(invoice, "100.00")
    assert queued_auto_exports() == []  # part paid: nothing to do yet

    with django_capture_on_commit_callbacks(execute=True):
        final = pay(invoice, "200.00")
    assert queued_auto_exports() == [(AUTO_EXPORT_TASK, ("when_paid", qbo_company.realm_id))]

    [batch_id] = run_queued_auto_exports(qbo_company.realm_id)
    batch = ExportBatch.objects.get(pk=batch_id)
    assert batch.source == ExportBatch.Source.AUTOMATIC
    assert export_batch_counts(batch_id=batch.pk)["created"] == 2
    [qbo_invoice] = qbo_company.entities("Invoice")
    assert qbo_invoice["DocNumber"] == "INV-2001"
    assert Decimal(str(qbo_invoice["TotalAmt"])) == Decimal("300.00")
    assert Decimal(str(qbo_invoice["Balance"])) == Decimal("0")
    qbo_payments = qbo_company.entities("Payment")
    assert sorted(Decimal(str(p["TotalAmt"])) for p in qbo_payments) == [Decimal("100.00"), Decimal("200.00")]
    assert all(p["Line"][0]["LinkedTxn"][0]["TxnId"] == qbo_invoice["Id"] for p in qbo_payments)
    for payment in (deposit, final):
        payment.refresh_from_db()
        assert payment.export_status == S.EXPORTED


def test_automatic_runs_queue_each_payment_once_however_often_they_run(qbo_company):
    auto_export_settings_update(realm_id=qbo_company.realm_id, mode=Mode.HOURLY, nightly_at=None, user=None)
    invoice = issued_invoice(amount="80.00")
    pay(invoice, "80.00")

    first = auto_export_start()
    assert auto_export_start() is None  # the payment is already queued: nothing new, no second batch
    drain(qbo_company.realm_id)
    assert auto_export_start() is None  # and once exported, never again
    assert ExportBatch.objects.filter(source=ExportBatch.Source.AUTOMATIC).count() == 1
    assert export_batch_counts(batch_id=first.pk)["created"] == 1
    assert len(qbo_company.entities("Payment")) == 1


def test_automatic_runs_never_post_to_online_while_exports_go_to_desktop(qbo_company):
    from quickbooks_desktop.models import DesktopConnection

    auto_export_settings_update(realm_id=qbo_company.realm_id, mode=Mode.HOURLY, nightly_at=None, user=None)
    DesktopConnection.objects.create(use_desktop=True)
    invoice = issued_invoice(amount="80.00")
    payment = pay(invoice, "80.00")

    assert auto_export_start() is None
    payment.refresh_from_db()
    assert payment.export_status == S.NOT_EXPORTED
    assert not ExportBatch.objects.exists() and qbo_company.entities("Payment") == []


def test_automatic_runs_leave_failed_payments_to_a_person(qbo_company):
    """A payment that failed is not retried by itself every hour: it waits for someone (and the summary says so)."""
    auto_export_settings_update(realm_id=qbo_company.realm_id, mode=Mode.HOURLY, nightly_at=None, user=None)
    payment = pay(issued_invoice(amount="50.00"), "50.00")
    for status in (S.QUEUED, S.FAILED):
        billing_services.payment_export_status_transition(payment_id=payment.pk, to_status=status, note="test")

    assert auto_export_start() is None
    assert qbo_company.entities("Payment") == []


def test_off_by_default_exports_nothing_by_itself(qbo_company, django_capture_on_commit_callbacks):
    invoice = issued_invoice(amount="40.00")
    with django_capture_on_commit_callbacks(execute=True):
        pay(invoice, "40.00")

    assert queued_auto_exports() == []
    assert auto_export_start() is None
    assert not AutoExportSettings.objects.exists()
    assert qbo_company.entities("Invoice") == []


def test_the_setting_keeps_the_schedules_in_step(qbo_company, settings):
    settings.TIME_ZONE = "America/Chicago"
    realm = qbo_company.realm_id

    auto_export_settings_update(realm_id=realm, mode=Mode.HOURLY, nightly_at=None, user=None)
    hourly = Schedule.objects.get(name=auto_export_schedule_name(realm))
    assert (hourly.func, hourly.schedule_type) == (AUTO_EXPORT_TASK, Schedule.HOURLY)
    assert hourly.next_run.minute == 0 and hourly.next_run > timezone.now()
    assert Schedule.objects.get(name=SUMMARY_SCHEDULE).schedule_type == Schedule.DAILY

    auto_export_settings_update(realm_id=realm, mode=Mode.NIGHTLY, nightly_at=datetime.time(22, 30), user=None)
    nightly = Schedule.objects.get(name=auto_export_schedule_name(realm))
    local = nightly.next_run.astimezone(ZoneInfo("America/Chicago"))
    assert nightly.schedule_type == Schedule.DAILY and (local.hour, local.minute) == (22, 30)
    assert timezone.now() < nightly.next_run <= timezone.now() + datetime.timedelta(days=1)

    auto_export_settings_update(realm_id=realm, mode=Mode.WHEN_PAID, nightly_at=None, user=None)
    assert Schedule.objects.get(name=auto_export_schedule_name(realm)).schedule_type == Schedule.MINUTES

    auto_export_settings_update(realm_id=realm, mode=Mode.OFF, nightly_at=None, user=None)
    assert not Schedule.objects.filter(name__in=[auto_export_schedule_name(realm), SUMMARY_SCHEDULE]).exists()
    assert AutoExportSettings.objects.get(realm_id=realm).mode == Mode.OFF


def test_nightly_without_a_time_is_refused_and_changes_nothing(qbo_company):
    auto_export_settings_update(realm_id=qbo_company.realm_id, mode=Mode.HOURLY, nightly_at=None, user=None)

    with pytest.raises(ApplicationError, match="Choose the time of the nightly export"):
        auto_export_settings_update(realm_id=qbo_company.realm_id, mode=Mode.NIGHTLY, nightly_at=None, user=None)

    assert AutoExportSettings.objects.get(realm_id=qbo_company.realm_id).mode == Mode.HOURLY
    assert Schedule.objects.get(name=auto_export_schedule_name(qbo_company.realm_id)).schedule_type == Schedule.HOURLY


def _exporter(username: str, email: str):
    user = UserFactory(username=username, email=email)
    user.user_permissions.add(Permission.objects.get(codename="export_payments"))
    return user


def test_daily_summary_tells_the_people_who_may_export_what_failed_and_what_is_held(qbo_company):
    _exporter("dana", "dana@example.com")
    _exporter("no-mail", "")
    UserFactory(username="viewer", email="viewer@example.com")  # may not export: not told
    failed = pay(issued_invoice(customer=CustomerFactory(display_name="Bob Ray"), amount="75.00"), "75.00")
    for status in (S.QUEUED, S.EXPORTING, S.FAILED):
        billing_services.payment_export_status_transition(payment_id=failed.pk, to_status=status, note="test")
    ExportAttempt.objects.create(
        payment=failed,
        operation="create Payment",
        outcome=ExportAttempt.Outcome.ERROR,
        error_code="6000",
        message="QuickBooks said the deposit account is inactive.",
    )

    assert auto_export_summary_send() == 1

    [message] = mail.outbox
    assert message.to == ["dana@example.com"]
    assert message.subject == "FieldSync: 1 failed — QuickBooks export needs you"
    assert f"Failed: payment #{failed.pk} from Bob Ray, 75.00 USD" in message.body
    assert "the deposit account is inactive" in message.body
    assert f"/payments/{failed.pk}/" in message.body


def test_no_summary_when_nothing_waits(qbo_company):
    _exporter("dana", "dana@example.com")
    pay(issued_invoice(amount="20.00"), "20.00")
    export(*Payment.objects.all())

    assert auto_export_summary_send() == 0
    assert mail.outbox == []


def test_paying_in_full_queues_nothing_for_a_company_exporting_on_a_schedule(
    qbo_company, django_capture_on_commit_callbacks, django_assert_num_queries
):
    auto_export_settings_update(realm_id=qbo_company.realm_id, mode=Mode.HOURLY, nightly_at=None, user=None)
    invoice = issued_invoice(amount="40.00")
    with django_capture_on_commit_callbacks(execute=True):
        pay(invoice, "40.00")
    assert queued_auto_exports() == []

    auto_export_settings_update(realm_id=qbo_company.realm_id, mode=Mode.WHEN_PAID, nightly_at=None, user=None)
    with django_assert_num_queries(2):  # the company's mode in one statement, then the task queued (django-q's ORM)
        invoice_paid_listener(invoice.pk)
    assert queued_auto_exports() == [(AUTO_EXPORT_TASK, ("when_paid", qbo_company.realm_id))]
