"""Production: secrets and hosts must come from the environment; `manage.py check --deploy` is clean.

wsgi.py and asgi.py default to these settings (fail closed). Besides the missing-variable errors below, the system
checks in fieldsync.checks refuse DEBUG, the development secret key, the shipped encryption key,
QBO_ENVIRONMENT=local and plain-http QuickBooks URLs; wsgi/asgi run them at start-up, so gunicorn refuses too.
"""

from .base import *  # noqa: F403
from .base import env

FIELDSYNC_PRODUCTION = True
DEBUG = False
SECRET_KEY = env.str("DJANGO_SECRET_KEY")  # no default: refuse to start without one
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_HTTPONLY = True
FIELDSYNC_ENCRYPTION_KEYS = env.list("FIELDSYNC_ENCRYPTION_KEYS")  # no default in production

# Static files: `manage.py collectstatic` writes hashed, compressed copies (name.<hash>.css, .gz and .br) to
# STATIC_ROOT; WhiteNoise serves them from the web process with far-future cache headers. No separate file server.
MIDDLEWARE = [*MIDDLEWARE]  # noqa: F405
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1, "whitenoise.middleware.WhiteNoiseMiddleware"
)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
# Load balancers probe health over plain http inside the network: answer them instead of redirecting to https.
SECURE_REDIRECT_EXEMPT = [r"^health/"]
# `make prod-check` only (deploy/prod_check.py): lets production settings use the local QuickBooks sandbox when every
# QuickBooks URL is on this machine; the system checks then report fieldsync.W001, which fails any
# `check --deploy --fail-level WARNING`. Never set it in a deployment.
FIELDSYNC_PROD_CHECK_LOCAL_QUICKBOOKS = env.bool("FIELDSYNC_PROD_CHECK_LOCAL_QUICKBOOKS", default=False)
