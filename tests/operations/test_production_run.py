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
