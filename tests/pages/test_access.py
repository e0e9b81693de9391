"""Every staff page needs a signed-in user; every action needs its permission. Without it: no button, and 403."""

import pytest
from django.urls import reverse

from billing.models import ManualHandlingItem, Payment, Refund
from quickbooks_export.models import ExportBatch, ExportBatchItem
from tests.factories import ManualHandlingItemFactory, issued_invoice, pay

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(db):
    """One failed payment in a finished batch, one refund flagged for manual handling."""
    payment = pay(issued_invoice(amount="100.00"), "100.00")
    Payment.objects.filter(pk=payment.pk).update(export_status=Payment.ExportStatus.FAILED)
    batch = ExportBatch.objects.create(
        source=ExportBatch.Source.PAGE, selection="1 selected payment", realm_id="1", status=ExportBatch.Status.FINISHED
    )
    ExportBatchItem.objects.create(
        batch=batch, payment=payment, outcome=ExportBatchItem.Outcome.FAILED, message="Payment: QuickBooks rejected it"
    )
    item = ManualHandlingItemFactory(payment=payment)
    return {"payment": payment.pk, "batch": batch.pk, "item": item.pk}


def page_urls(world) -> list[str]:
    p, b = world["payment"], world["batch"]
    return [
        reverse("exports:payment_list"),
        reverse("exports:payment_count"),
        reverse("exports:payment_detail", args=[p]),
        reverse("exports:payment_export_panel", args=[p]),
        reverse("exports:log"),
        reverse("exports:batch_detail", args=[b]),
        reverse("exports:batch_progress", args=[b]),
        reverse("exports:batch_items", args=[b, "failed"]),
        reverse("exports:manual_items"),
    ]


def action_urls(world) -> list[tuple[str, dict]]:
    p, b = world["payment"], world["batch"]
    return [
        (reverse("exports:payments_export"), {"payment": [p]}),
        (reverse("exports:payment_export", args=[p]), {}),
        (reverse("exports:payment_retry", args=[p]), {}),
        (reverse("exports:payment_mark_exported", args=[p]), {"note": "keyed in"}),
        (reverse("exports:payment_exclude", args=[p]), {"note": "never"}),
        (reverse("exports:payment_include", args=[p]), {}),
        (reverse("exports:batch_retry_failed", args=[b]), {}),
        (
            reverse("billing:refund_create", args=[p]),
            {"amount": "10.00", "reason": "x", "refunded_on": "2026-11-20", "method": "check"},
        ),
        (reverse("billing:manual_item_handled", args=[world["item"]]), {"note": "done"}),
    ]


def nothing_changed(world) -> bool:
    return (
        Payment.objects.get(pk=world["payment"]).export_status == Payment.ExportStatus.FAILED
        and ExportBatch.objects.count() == 1
        and not Refund.objects.exists()
        and ManualHandlingItem.objects.get(pk=world["item"]).status == ManualHandlingItem.Status.OPEN
    )


def test_every_page_sends_anonymous_users_to_sign_in(client, world):
    for url in page_urls(world):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login") + "?next="), url


def test_every_action_sends_anonymous_users_to_sign_in_and_changes_nothing(client, world):
    for url, data in action_urls(world):
        response = client.post(url, data)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login")), url
    assert nothing_changed(world)


def test_a_user_with_view_permissions_only_sees_every_page_without_action_buttons(viewer_client, world):
    for url in page_urls(world):
        response = viewer_client.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        for action in (
            "Export Payments",
            'name="payment"',
            "Export to QuickBooks",
            "Retry",
            "Mark as exported by hand",
            "Do not export</button>",
            "Record refund",
            "Mark handled",
            'method="post" action="/payments',
            'method="post" action="/exports',
        ):
            assert action not in html, (url, action)


def test_a_user_with_view_permissions_only_gets_403_on_every_action(viewer_client, world):
    for url, data in action_urls(world):
        assert viewer_client.post(url, data).status_code == 403, url
        assert viewer_client.post(url, data, headers={"HX-Request": "true"}).status_code == 403, url
    assert nothing_changed(world)


def test_pages_refuse_other_methods(office_client, world):
    assert office_client.post(reverse("exports:payment_list")).status_code == 405
    assert office_client.get(reverse("exports:payments_export")).status_code == 405
    assert office_client.get(reverse("billing:refund_create", args=[world["payment"]])).status_code == 405


def test_an_office_user_sees_the_actions(office_client, world):
    html = office_client.get(reverse("exports:payment_detail", args=[world["payment"]])).content.decode()
    assert "Retry export" in html and "Record refund" in html and "Mark as exported by hand" in html
    assert "Mark handled" in office_client.get(reverse("exports:manual_items")).content.decode()
    assert "Retry" in office_client.get(reverse("exports:log")).content.decode()


def test_unknown_records_are_404(office_client):
    assert office_client.get(reverse("exports:payment_detail", args=[999])).status_code == 404
    assert office_client.get(reverse("exports:batch_detail", args=[999])).status_code == 404
    assert office_client.get(reverse("exports:batch_items", args=[999, "failed"])).status_code == 404


def test_an_unknown_outcome_is_404(office_client, world):
    assert office_client.get(reverse("exports:batch_items", args=[world["batch"], "lost"])).status_code == 404


def test_posts_need_a_csrf_token(office_user, world):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(office_user)
    for url, data in action_urls(world):
        assert client.post(url, data).status_code == 403, url
    assert nothing_changed(world)


def test_a_signed_in_account_without_view_permissions_sees_no_page(client, world):
    """A technician's login, say: no payments, amounts or QuickBooks errors, only 403."""
    from .conftest import make_user

    client.force_login(make_user("tech"))
    for url in page_urls(world):
        assert client.get(url).status_code == 403, url
