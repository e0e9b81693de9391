"""Radio buttons and checkboxes on the QuickBooks page sit on the line of their words (not stretched across the
column above them), at desktop width and on a phone."""

import pytest

from tests.pages.conftest import PASSWORD, make_user

from .conftest import sign_in

pytestmark = pytest.mark.django_db(transaction=True)


def _beside_its_words(page, label_text: str) -> None:
    label = page.locator("label", has_text=label_text).first
    choice = label.locator("input").first
    box, around = choice.bounding_box(), label.bounding_box()
    assert box["width"] <= 24, f"{label_text!r}: the control is {box['width']:.0f} px wide"
    assert box["x"] - around["x"] <= 12, f"{label_text!r}: the control is not at the start of its line"
    assert box["y"] >= around["y"] - 1 and box["y"] + box["height"] <= around["y"] + around["height"] + 1


def test_choices_sit_beside_their_words(page, qbo_company):
    make_user("maria", "manage_quickbooks_connection", "view_quickbooksconnection", "view_payment")
    sign_in(page, "maria", PASSWORD)

    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto("/quickbooks/")
        _beside_its_words(page, "As soon as an invoice is fully paid")
        _beside_its_words(page, "Every hour")
        _beside_its_words(page, "Bring in payments recorded in QuickBooks")
