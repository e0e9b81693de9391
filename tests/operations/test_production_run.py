"""Production settings as a web process sees them: WhiteNoise with hashed, compressed static files, health exempt
from the https redirect, Redis only when asked for."""

import json

from tests.test_production_settings import PRODUCTION_ENV, _run

SHOW = (
    "from django.conf import settings as s; import json; print(json.dumps({'middleware': s.MIDDLEWARE, "
    "'static': s.STORAGES['staticfiles']['BACKEND'], 'exempt': s.SECURE_REDIRECT_EXEMPT, "
    "'broker': 'redis' if 'redis' in s.Q_CLUSTER else 'orm', 'cache': s.CACHES['default']['BACKEND']}))"
)


def _settings(**env) -> dict:
    result = _run(["manage.py", "shell", "-c", SHOW], {**PRODUCTION_ENV, **env})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_production_serves_hashed_compressed_static_files_and_probes_over_http():
    shown = _settings()
    middleware = shown["middleware"]
    assert middleware.index("whitenoise.middleware.WhiteNoiseMiddleware") == (
        middleware.index("django.middleware.security.SecurityMiddleware") + 1
    )
    assert middleware[0] == "fieldsync.observability.RequestIdMiddleware"
    assert shown["static"] == "whitenoise.storage.CompressedManifestStaticFilesStorage"
    assert shown["exempt"] == [r"^health/"]
    assert (shown["broker"], shown["cache"]) == ("orm", "django.core.cache.backends.db.DatabaseCache")


def test_redis_is_used_only_when_configured():
    shown = _settings(REDIS_URL="redis://127.0.0.1:6379/0", FIELDSYNC_Q_BROKER="redis")
    assert (shown["broker"], shown["cache"]) == ("redis", "django.core.cache.backends.redis.RedisCache")


def test_the_redis_broker_without_a_redis_url_refuses_to_start():
    result = _run(["manage.py", "check"], {**PRODUCTION_ENV, "FIELDSYNC_Q_BROKER": "redis"})
    assert result.returncode != 0
    assert "FIELDSYNC_Q_BROKER=redis needs REDIS_URL" in result.stderr


LOCAL_SANDBOX = {
    "QBO_ENVIRONMENT": "local",
    "QBO_SANDBOX_URL": "http://127.0.0.1:9",
    "QBO_DISCOVERY_URL": "http://127.0.0.1:9/.well-known/openid_configuration",
    "QBO_API_BASE_URL": "http://127.0.0.1:9",
    "QBO_REDIRECT_URI": "http://127.0.0.1:10/quickbooks/callback/",
}


def test_the_prod_check_escape_hatch_is_a_warning_that_fails_any_deploy_check():
    hatch = {**PRODUCTION_ENV, **LOCAL_SANDBOX, "FIELDSYNC_PROD_CHECK_LOCAL_QUICKBOOKS": "true"}

    deploy = _run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], hatch)
    assert deploy.returncode != 0 and "fieldsync.W001" in deploy.stderr
    assert "fieldsync.E004" not in deploy.stderr and "fieldsync.E005" not in deploy.stderr

    plain = _run(["manage.py", "check"], hatch)  # what gunicorn's start-up and qcluster refuse on: errors only
    assert plain.returncode == 0, plain.stderr
    assert "fieldsync.W001" in plain.stderr


def test_without_the_hatch_the_local_sandbox_is_refused():
    result = _run(["manage.py", "check"], {**PRODUCTION_ENV, **LOCAL_SANDBOX})
    assert result.returncode != 0
    assert "fieldsync.E004" in result.stderr and "fieldsync.E005" in result.stderr


def test_the_hatch_never_allows_plain_http_off_this_machine():
    away = {**LOCAL_SANDBOX, "QBO_API_BASE_URL": "http://qbo.example.com"}
    result = _run(["manage.py", "check"], {**PRODUCTION_ENV, **away, "FIELDSYNC_PROD_CHECK_LOCAL_QUICKBOOKS": "true"})
    assert result.returncode != 0
    assert "fieldsync.E004" in result.stderr and "fieldsync.E005" in result.stderr
    assert "fieldsync.W001" not in result.stderr
