"""The "Changed in QuickBooks" list and its actions in a real browser (axe-checked)."""

import pytest
from playwright.sync_api import expect

from billing.models import Payment
from quickbooks_export.models import QuickBooksChange
from tests.pages.conftest import OFFICE_PERMISSIONS, PASSWORD, make_user
from tests.pages.test_changed_in_quickbooks import deleted_in_quickbooks

from .axe import assert_accessible
from .conftest import sign_in

S = Payment.ExportStatus


@pytest.fixture
def dana(transactional_db):
    return make_user("dana", *OFFICE_PERMISSIONS, first_name="Dana", last_name="Office")


def test_changed_in_quickbooks_list_and_its_actions(page, dana, qbo_company):
    kept, resent = deleted_in_quickbooks(qbo_company, 2)
    sign_in(page, "dana", PASSWORD)

    page.get_by_role("link", name="Changed in QuickBooks").click()
    rows = page.locator("#open-changes tbody tr")
    expect(rows).to_have_count(2)
    assert_accessible(page)

    rows.filter(has_text=f"#{resent.pk} ").get_by_role("button", name="Send ours again").click()
    expect(page.locator(".msg.success")).to_contain_text(f"FieldSync's sent again: Payment {resent.pk}.")
    rows.filter(has_text=f"#{kept.pk} ").get_by_role("button", name="Ignore").click()
    expect(page.locator("#no-changes")).to_be_visible()
    expect(page.locator("#decided-changes li")).to_have_count(2)
    expect(page.locator("#decided-changes")).to_contain_text("Ignored by Dana Office")
    assert_accessible(page)

    resent.refresh_from_db()
    kept.refresh_from_db()
    assert (resent.export_status, kept.export_status) == (S.NOT_EXPORTED, S.EXPORTED)
    assert set(QuickBooksChange.objects.values_list("state", flat=True)) == {"resolved"}
