"""Settings shared by every environment. Everything that differs between machines comes from the environment.

Local use needs no configuration at all: with nothing set, FieldSync runs on SQLite in ./var/ with a development
secret key. Production settings (fieldsync.settings.production) refuse to start without real secrets.
"""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = BASE_DIR / "var"  # runtime state of the zero-config setup: SQLite file, sandbox data

env = environ.Env()

# Development defaults, public in this repository: production settings' system checks refuse them (fieldsync.checks).
DEVELOPMENT_SECRET_KEY = "fieldsync-local-development-only-not-a-secret"
DEVELOPMENT_ENCRYPTION_KEY = "bG9jYWwtZGV2ZWxvcG1lbnQta2V5LW5vdC1zZWNyZXQ="
# True only in fieldsync.settings.production: turns on the checks that refuse to start with unsafe settings.
FIELDSYNC_PRODUCTION = False

DEBUG = env.bool("DJANGO_DEBUG", default=True)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default=DEVELOPMENT_SECRET_KEY)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "django_q",
    "axes",
    "fieldsync",
    "billing",
    "quickbooks_export",
    "quickbooks_desktop",
]

MIDDLEWARE = [
    # First: every log line of a request carries its request id (fieldsync.observability).
    "fieldsync.observability.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "fieldsync.middleware.ContentSecurityPolicyMiddleware",
    "fieldsync.middleware.ApiServerErrorMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into its lock-out answer.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "fieldsync.urls"
WSGI_APPLICATION = "fieldsync.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "quickbooks_export.context_processors.quickbooks_connection",
                "billing.context_processors.manual_handling",
            ],
        },
    },
]


def _database_from_env() -> dict:
    """DATABASE_URL selects the database; unset means SQLite in ./var (the zero-config default)."""
    default_sqlite = f"sqlite:///{VAR_DIR / 'fieldsync.sqlite3'}"
    database = env.db_url("DATABASE_URL", default=default_sqlite)
    if database["ENGINE"] == "django.db.backends.sqlite3":
        VAR_DIR.mkdir(exist_ok=True)
        # The web process, the django-q2 worker and its ORM broker share one file. WAL lets readers and one writer
        # work at once; IMMEDIATE transactions take the write lock up front, so a writer waits (up to `timeout`
        # seconds) instead of failing half-way with "database is locked".
        database["OPTIONS"] = {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
        }
    else:
        database.setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
        database.setdefault("CONN_HEALTH_CHECKS", True)
    return database


DATABASES = {"default": _database_from_env()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# django-axes first: it refuses a locked-out username before the password is checked (and counts failures).
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
# The company's time zone: dates on pages and in QuickBooks are the company's local dates.
TIME_ZONE = env.str("FIELDSYNC_TIME_ZONE", default="America/New_York")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.path("DJANGO_STATIC_ROOT", default=BASE_DIR / "staticfiles")  # collectstatic writes here

# One currency per deployment (ISO 4217). Invoices and payments in any other currency are refused.
FIELDSYNC_CURRENCY = env.str("FIELDSYNC_CURRENCY", default="USD").upper()

# Every handler redacts OAuth codes and states from what it writes (fieldsync.log_filters) and adds the request id of
# the work it belongs to (fieldsync.observability). django.server (runserver's request lines) is routed through it too
# instead of Django's own handler. FIELDSYNC_LOG_FORMAT=json writes one JSON object a line (python-json-logger, made
# safe by fieldsync.observability.JsonLogFormatter).
FIELDSYNC_LOG_FORMAT = env.str("FIELDSYNC_LOG_FORMAT", default="plain")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "redact_oauth": {"()": "fieldsync.log_filters.RedactOAuthSecretsFilter"},
        "request_id": {"()": "fieldsync.observability.RequestIdLogFilter"},
    },
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"},
        "json": {
            "()": "fieldsync.observability.JsonLogFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(request_id)s %(process)d %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger", "process": "pid"},
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if FIELDSYNC_LOG_FORMAT == "json" else "plain",
            "filters": ["redact_oauth", "request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": env.str("FIELDSYNC_LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}

REST_FRAMEWORK = {
    # API clients send a token; staff keep their session (with CSRF). The token class comes first so that a request
    # without credentials gets 401 with a WWW-Authenticate header.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "fieldsync.api.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "EXCEPTION_HANDLER": "fieldsync.exceptions.api_exception_handler",
    "COERCE_DECIMAL_TO_STRING": True,
    "DEFAULT_SCHEMA_CLASS": "fieldsync.api.schema.ApiAutoSchema",
    "DEFAULT_PAGINATION_CLASS": "fieldsync.api.pagination.ApiCursorPagination",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
}

# django-q2 with the ORM broker: the queue lives in the same database, so the demo needs no extra service. The broker
# delivers a task at least once; exactly-once export comes from our own claim + mapping table + QuickBooks requestid.
# `timeout` (a task is killed after it) stays below `retry` (an unacknowledged task is delivered again after it).
# FIELDSYNC_Q_BROKER=redis uses django-q2's Redis broker at REDIS_URL instead: it delivers at most once (a task popped
# by a worker that dies is gone); the minute sweep (quickbooks_export.tasks.export_sweep_task, a Schedule in the
# database) restarts any company whose export work is pending with no live runner, so nothing waits longer than
# the sweep plus EXPORT_LEASE_SECONDS. docs/production.md has the details.
Q_CLUSTER = {
    "name": env.str("FIELDSYNC_Q_CLUSTER_NAME", default="fieldsync"),  # the Redis queue's key: one per deployment
    "orm": "default",
    "workers": env.int("FIELDSYNC_WORKERS", default=2),
    "timeout": env.int("FIELDSYNC_TASK_TIMEOUT", default=240),
    "retry": env.int("FIELDSYNC_TASK_RETRY", default=300),
    "max_attempts": 5,
    "bulk": 1,
    "queue_limit": 4,
    "ack_failures": True,
    "save_limit": 1000,
    "catch_up": False,
    "poll": 0.5,
}
# Redis (optional): REDIS_URL=redis://host:6379/0 moves the default cache (API throttle counts, django-q2's cluster
# status) from the database to Redis, and with FIELDSYNC_Q_BROKER=redis the task queue too.
REDIS_URL = env.str("REDIS_URL", default="")
FIELDSYNC_Q_BROKER = env.str("FIELDSYNC_Q_BROKER", default="orm")
if FIELDSYNC_Q_BROKER == "redis":
    if not REDIS_URL:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured("FIELDSYNC_Q_BROKER=redis needs REDIS_URL (for example redis://127.0.0.1:6379/0).")
    del Q_CLUSTER["orm"]
    Q_CLUSTER["redis"] = REDIS_URL
elif FIELDSYNC_Q_BROKER != "orm":
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(f"FIELDSYNC_Q_BROKER is {FIELDSYNC_Q_BROKER!r}: use orm (the default) or redis.")

STATICFILES_DIRS = [BASE_DIR / "fieldsync" / "static"]

# --- QuickBooks Online --------------------------------------------------------------------------------------------
# QBO_ENVIRONMENT: "production" or "sandbox" (Intuit's servers) or "local" (the QuickBooks sandbox shipped with
# FieldSync, `manage.py qbo_sandbox`). QBO_DISCOVERY_URL / QBO_API_BASE_URL point the same code at any
# QuickBooks-compatible server. With nothing set, everything points at the local sandbox `make run` starts.
QBO_ENVIRONMENT = env.str("QBO_ENVIRONMENT", default="local")
QBO_SANDBOX_URL = env.str("QBO_SANDBOX_URL", default="http://127.0.0.1:8765")
_qbo_local = QBO_ENVIRONMENT == "local"
QBO_CLIENT_ID = env.str("QBO_CLIENT_ID", default="fieldsync-local" if _qbo_local else "")
QBO_CLIENT_SECRET = env.str("QBO_CLIENT_SECRET", default="fieldsync-local-secret" if _qbo_local else "")
QBO_REDIRECT_URI = env.str("QBO_REDIRECT_URI", default="http://127.0.0.1:8000/quickbooks/callback/")
QBO_DISCOVERY_URL = env.str(
    "QBO_DISCOVERY_URL", default=f"{QBO_SANDBOX_URL}/.well-known/openid_configuration" if _qbo_local else ""
)
QBO_API_BASE_URL = env.str("QBO_API_BASE_URL", default=QBO_SANDBOX_URL if _qbo_local else "")
QBO_MINOR_VERSION = env.int("QBO_MINOR_VERSION", default=75)
QBO_HTTP_TIMEOUT_SECONDS = env.float("QBO_HTTP_TIMEOUT_SECONDS", default=30.0)
# Intuit's webhook verifier token (developer portal → Webhooks → Show token); without it every webhook is refused.
QBO_WEBHOOK_VERIFIER_TOKEN = env.str("QBO_WEBHOOK_VERIFIER_TOKEN", default="")

# Keys for encrypting OAuth tokens at rest (MultiFernet: the first key encrypts, every key decrypts, so keys can be
# rotated by putting a new one first). Generate one with:
#   python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"
# The default is a fixed key for local use only; production settings refuse to start without real keys.
FIELDSYNC_ENCRYPTION_KEYS = env.list("FIELDSYNC_ENCRYPTION_KEYS", default=[DEVELOPMENT_ENCRYPTION_KEY])

# --- Export engine --------------------------------------------------------------------------------------------------
# QuickBooks' documented per-company limits (QBO.md); the shared limiter keeps every process under them together.
QBO_LIMIT_REQUESTS_PER_MINUTE = env.int("QBO_LIMIT_REQUESTS_PER_MINUTE", default=500)
QBO_LIMIT_BATCHES_PER_MINUTE = env.int("QBO_LIMIT_BATCHES_PER_MINUTE", default=40)
QBO_LIMIT_REQUESTS_PER_SECOND = env.int("QBO_LIMIT_REQUESTS_PER_SECOND", default=10)
# A run of the export task stops taking new work after this long and queues a follow-up (below Q_CLUSTER timeout).
EXPORT_RUN_SECONDS = env.float("EXPORT_RUN_SECONDS", default=150.0)
# How long a runner's hold on a company lasts without renewal; a crashed runner's work resumes after it.
EXPORT_LEASE_SECONDS = env.float("EXPORT_LEASE_SECONDS", default=180.0)
# Companies one export task serves at once, each runner in a thread of the worker (quickbooks_export/runner_pool.py):
# a runner mostly waits for its company's QuickBooks budget, so one worker can keep several companies exporting.
EXPORT_COMPANIES_PER_WORKER = env.int("FIELDSYNC_EXPORT_COMPANIES_PER_WORKER", default=4)
# A create still unanswered after this long is looked up in QuickBooks by FieldSync's own marker (and adopted if
# found) before anything is sent again: Intuit does not document how long QuickBooks remembers a requestid.
EXPORT_OUTBOX_LOOKUP_AFTER_SECONDS = env.float("EXPORT_OUTBOX_LOOKUP_AFTER_SECONDS", default=900.0)
# The longest wait for a throttled request inside one run; longer waits hand over to a later run.
EXPORT_MAX_RETRY_AFTER_SECONDS = env.float("EXPORT_MAX_RETRY_AFTER_SECONDS", default=60.0)
# Automatic export's daily summary e-mail goes through Django's e-mail: printed to the console unless configured.
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="fieldsync@localhost")

# --- REST API (fieldsync.api) -------------------------------------------------------------------------------------
# The largest request body the API reads (bytes); larger ones get 413 request_too_large without being read.
FIELDSYNC_API_MAX_BODY_BYTES = env.int("FIELDSYNC_API_MAX_BODY_BYTES", default=1024 * 1024)
# Requests per API client and per staff user (DRF rate syntax: N/second, N/minute, N/hour); over it: 429 throttled
# with Retry-After. Counted in the default cache (below), shared by every web process.
FIELDSYNC_API_THROTTLE_RATES = {
    "api_client": env.str("FIELDSYNC_API_RATE_PER_CLIENT", default="600/minute"),
    "staff_user": env.str("FIELDSYNC_API_RATE_PER_USER", default="300/minute"),
}
# The database cache: throttle counts are shared by all web processes without another service. Its table is created
# by the migration fieldsync.0003_cache_table.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "fieldsync_cache",
    }
}
if REDIS_URL:
    # One round trip per cache operation instead of the database cache's several statements (docs/BENCHMARKS.md).
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
# OpenAPI 3 at /api/schema/, Swagger UI at /api/docs/ and Redoc at /api/redoc/, their assets served from
# drf-spectacular-sidecar (no CDN).
SPECTACULAR_SETTINGS = {
    "TITLE": "FieldSync API",
    "DESCRIPTION": (
        "Post customers, jobs, invoices, payments and refunds to FieldSync and follow their export to QuickBooks "
        "Online. Authenticate with an API client token (`Authorization: Bearer <token>`). Every POST needs an "
        '`Idempotency-Key` header. Money is a string with two decimals ("150.00"); dates are ISO 8601. Errors are '
        '`{"code", "message", "details"}`.'
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "PaymentMethodEnum": "billing.models.Payment.Method",
        "RefundMethodEnum": "billing.models.Refund.Method",
        "ExportStatusEnum": "billing.models.Payment.ExportStatus",
        "InvoiceStatusEnum": "billing.models.Invoice.Status",
        "JobStatusEnum": "billing.models.Job.Status",
        "ExportBatchStatusEnum": "quickbooks_export.models.ExportBatch.Status",
        "ExportOutcomeEnum": "quickbooks_export.models.ExportBatchItem.Outcome",
    },
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Security -------------------------------------------------------------------------------------------------------
# django-axes: after AXES_FAILURE_LIMIT wrong passwords for one username, or from one address, that username (or
# address) is locked for AXES_COOLOFF_TIME hours, on the staff login and the admin alike. Unlock:
# `manage.py axes_reset_username USERNAME`, `manage.py axes_reset_ip ADDRESS`, or `manage.py axes_reset` (all).
# By username: guessing one password from many addresses; by address: one address trying many usernames. The address
# is REMOTE_ADDR: behind a reverse proxy that does not pass the client's address there, every visitor shares the
# proxy's, so set FIELDSYNC_LOGIN_LOCK_BY_ADDRESS=false.
AXES_FAILURE_LIMIT = env.int("FIELDSYNC_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("FIELDSYNC_LOGIN_COOLOFF_HOURS", default=1.0)
AXES_LOCKOUT_PARAMETERS = (
    ["username", "ip_address"] if env.bool("FIELDSYNC_LOGIN_LOCK_BY_ADDRESS", True) else ["username"]
)
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_SENSITIVE_PARAMETERS = ["password"]
AXES_VERBOSE = False  # no start-up banner on every manage.py command; lock-outs are still logged
# Everything from this site only; no inline script or style anywhere (templates use classes and static files, htmx is
# vendored). No form-action: "Connect to QuickBooks" posts here and is redirected to Intuit's authorization page,
# which browsers would block under form-action 'self'.
FIELDSYNC_CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'"
)
# /api/docs/ (Swagger UI) and /api/redoc/ inject style elements and Redoc starts its search worker from a blob;
# scripts stay 'self' only, and their calls to font and logo CDNs stay blocked (nothing leaves for a CDN).
FIELDSYNC_API_DOCS_CONTENT_SECURITY_POLICY = (
    FIELDSYNC_CONTENT_SECURITY_POLICY.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'").replace(
        "font-src 'self'", "font-src 'self' data:"
    )
    + "; worker-src 'self' blob:"
)

# --- Operations: health and metrics (fieldsync.health, fieldsync.metrics) -------------------------------------------
# /health/ready answers 503 when no export worker sent a heartbeat within this many seconds (django-q2 clusters save
# one every second or so, kept 3 s). FIELDSYNC_READY_REQUIRE_WORKER=false: web readiness ignores the workers.
FIELDSYNC_READY_MAX_HEARTBEAT_AGE_SECONDS = env.float("FIELDSYNC_READY_MAX_HEARTBEAT_AGE_SECONDS", default=30.0)
FIELDSYNC_READY_REQUIRE_WORKER = env.bool("FIELDSYNC_READY_REQUIRE_WORKER", default=True)
# /metrics wants "Authorization: Bearer <this>" (or a signed-in staff user). Empty: staff sessions only.
FIELDSYNC_METRICS_TOKEN = env.str("FIELDSYNC_METRICS_TOKEN", default="")
