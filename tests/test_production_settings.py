"""Fail closed (issue 11, item 7): wsgi/asgi default to production settings, and production refuses to start with
DEBUG, the development secret key, the shipped encryption key, QBO_ENVIRONMENT=local or plain-http QuickBooks URLs.

Each case runs in a fresh interpreter with a controlled environment, the way gunicorn or `manage.py check` would.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Production-shaped, not secret: what .ci/run uses for `check --deploy`.
PRODUCTION_ENV = {
    "DJANGO_SETTINGS_MODULE": "fieldsync.settings.production",
    "DJANGO_SECRET_KEY": "ci-only-dummy-secret-key-5f1c9a7e3b2d4c6a8e0f1b3d5c7a9e2f4b6d8c0a",
    "DJANGO_ALLOWED_HOSTS": "fieldsync.example.com",
    "DJANGO_CSRF_TRUSTED_ORIGINS": "https://fieldsync.example.com",
    "FIELDSYNC_ENCRYPTION_KEYS": "Y2ktb25seS1kdW1teS1rZXktbm90LWEtc2VjcmV0ISE=",
    "QBO_ENVIRONMENT": "production",
    "QBO_CLIENT_ID": "ci-dummy-client",
    "QBO_CLIENT_SECRET": "ci-dummy-secret",
    "QBO_REDIRECT_URI": "https://fieldsync.example.com/quickbooks/callback/",
}
SHIPPED_KEY = "bG9jYWwtZGV2ZWxvcG1lbnQta2V5LW5vdC1zZWNyZXQ="


def _run(args: list[str], env: dict) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "FIELDSYNC_", "QBO_", "DATABASE_"))}
    return subprocess.run(  # noqa: S603
        [sys.executable, *args], cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=120
    )


def _check(env: dict) -> subprocess.CompletedProcess:
    return _run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], env)


def test_check_deploy_is_clean_with_production_settings():
    result = _check(PRODUCTION_ENV)

    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    ("change", "error_id"),
    [
        ({"DJANGO_SECRET_KEY": "fieldsync-local-development-only-not-a-secret"}, "fieldsync.E002"),
        ({"FIELDSYNC_ENCRYPTION_KEYS": SHIPPED_KEY}, "fieldsync.E003"),
        (
            {"FIELDSYNC_ENCRYPTION_KEYS": f"Y2ktb25seS1kdW1teS1rZXktbm90LWEtc2VjcmV0ISE=,{SHIPPED_KEY}"},
            "fieldsync.E003",
        ),
        ({"QBO_ENVIRONMENT": "local"}, "fieldsync.E004"),
        ({"QBO_DISCOVERY_URL": "http://qbo.example.com/.well-known/openid_configuration"}, "fieldsync.E005"),
        ({"QBO_API_BASE_URL": "http://qbo.example.com"}, "fieldsync.E005"),
        ({"QBO_REDIRECT_URI": "http://fieldsync.example.com/quickbooks/callback/"}, "fieldsync.E005"),
        ({"QBO_CLIENT_SECRET": ""}, "fieldsync.E006"),
    ],
)
def test_production_refuses_unsafe_settings(change, error_id):
    result = _check({**PRODUCTION_ENV, **change})

    assert result.returncode != 0
    assert error_id in result.stderr


def test_production_refuses_debug(settings):
    """DEBUG is forced off in production settings; the check catches anyone turning it back on in code."""
    from fieldsync.checks import production_settings_check

    settings.FIELDSYNC_PRODUCTION = True
    settings.QBO_ENVIRONMENT = "production"
    settings.SECRET_KEY = PRODUCTION_ENV["DJANGO_SECRET_KEY"]
    settings.FIELDSYNC_ENCRYPTION_KEYS = [PRODUCTION_ENV["FIELDSYNC_ENCRYPTION_KEYS"]]
    settings.QBO_REDIRECT_URI = PRODUCTION_ENV["QBO_REDIRECT_URI"]
    settings.QBO_DISCOVERY_URL = settings.QBO_API_BASE_URL = ""
    assert production_settings_check() == []

    settings.DEBUG = True
    assert [message.id for message in production_settings_check()] == ["fieldsync.E001"]


def test_development_settings_are_not_checked(settings):
    from fieldsync.checks import production_settings_check

    assert settings.FIELDSYNC_PRODUCTION is False
    assert production_settings_check() == []


@pytest.mark.parametrize("module", ["fieldsync.wsgi", "fieldsync.asgi"])
def test_the_server_entry_points_default_to_production_settings(module):
    probe = f"import {module}; from django.conf import settings; print(settings.SETTINGS_MODULE, settings.DEBUG)"

    result = _run(["-c", probe], {k: v for k, v in PRODUCTION_ENV.items() if k != "DJANGO_SETTINGS_MODULE"})

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["fieldsync.settings.production", "False"]


@pytest.mark.parametrize("module", ["fieldsync.wsgi", "fieldsync.asgi"])
def test_the_server_entry_points_refuse_to_start_without_secrets(module):
    """`gunicorn fieldsync.wsgi` with nothing set: no debug pages with a public key, but a refusal."""
    result = _run(["-c", f"import {module}"], {})

    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


@pytest.mark.parametrize("module", ["fieldsync.wsgi", "fieldsync.asgi"])
def test_the_server_entry_points_run_the_production_checks(module):
    result = _run(["-c", f"import {module}"], {**PRODUCTION_ENV, "FIELDSYNC_ENCRYPTION_KEYS": SHIPPED_KEY})

    assert result.returncode != 0
    assert "refuses to start" in result.stderr and "fieldsync.E003" in result.stderr


def test_manage_py_stays_on_development_settings_for_local_use():
    result = _run(["manage.py", "shell", "-c", "from django.conf import settings; print(settings.SETTINGS_MODULE)"], {})

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "fieldsync.settings.base"
