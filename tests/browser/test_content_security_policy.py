"""The pages under the Content-Security-Policy in Chromium: the `page` fixture fails a test on any CSP violation;
this adds the controls the office flow does not touch (rows per page submits through payments.js, not inline)."""

import re

from playwright.sync_api import expect

from billing.demo import seed_story_company
from tests.pages.conftest import OFFICE_PERMISSIONS, PASSWORD, make_user

from .conftest import sign_in


def test_rows_per_page_and_the_pages_work_under_the_policy(page, transactional_db):
    seed_story_company()
    make_user("dana", *OFFICE_PERMISSIONS, first_name="Dana", last_name="Office")

    sign_in(page, "dana", PASSWORD)
    response = page.request.get("/")
    assert "script-src 'self'" in response.headers["content-security-policy"]

    page.get_by_label("Rows per page").select_option("100")

    page.wait_for_url(re.compile(r"size=100"))
    expect(page.get_by_label("Rows per page")).to_have_value("100")
    for link in ("Export log", "Needs manual handling", "QuickBooks"):
        name = re.compile(rf"^{re.escape(link)}( \d+)?$")  # the manual-handling link carries its open count
        page.get_by_role("navigation", name="Main").get_by_role("link", name=name).click()
        expect(page.locator("main")).to_be_visible()
