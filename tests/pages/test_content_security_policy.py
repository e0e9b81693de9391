"""Content-Security-Policy on every page (issue 11, item 7), and templates that keep to it: no inline script, no
inline event handlers, no inline style. The browser tests (tests/browser/) fail on any CSP violation in Chromium."""

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

TEMPLATES = Path(settings.BASE_DIR) / "templates"


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/accounts/login/", "/api/v1/customers/", "/admin/login/", "/api/schema/"])
def test_every_response_carries_the_policy(client, path):
    response = client.get(path)

    policy = response["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy and "style-src 'self'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy


@pytest.mark.django_db
def test_the_staff_pages_carry_the_policy(client):
    from tests.factories import UserFactory

    user = UserFactory(username="boss", is_staff=True, is_superuser=True)
    client.force_login(user)
    for name in ("exports:payment_list", "exports:log", "exports:manual_items", "quickbooks_export:settings"):
        response = client.get(reverse(name))
        assert response.status_code == 200 and "script-src 'self'" in response["Content-Security-Policy"], name


@pytest.mark.parametrize("template", sorted(TEMPLATES.rglob("*.html")), ids=lambda p: str(p.relative_to(TEMPLATES)))
def test_templates_have_no_inline_script_or_style(template):
    html = template.read_text()

    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline <script>"
    assert not re.search(r"\son[a-z]+\s*=", html), "inline event handler"
    assert not re.search(r"\sstyle\s*=", html) and "<style" not in html, "inline style"
    assert "javascript:" not in html


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/docs/", "/api/redoc/"])
def test_the_api_documentation_allows_inline_styles_but_no_inline_script(client, path):
    response = client.get(path)

    policy = response["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "unsafe-eval" not in policy
    assert "<script>" not in response.content.decode()  # Swagger's initialisation is a file (?script)
