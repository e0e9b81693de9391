"""Settings for the test suite: the same as local, with speed-ups that change no behaviour under test.

Hermetic: QuickBooks points at nothing. No test may reach a port it did not start, so the QuickBooks URLs are empty
and the client refuses ("QuickBooks is not configured") without dialing anything; a test that needs QuickBooks
starts its own sandbox and points the settings at it (tests/quickbooks_export/conftest.py: point_settings_at).
"""

from .base import *  # noqa: F403

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # tests only: fast
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
LOGGING["root"]["level"] = "WARNING"  # noqa: F405
LOGGING["loggers"]["django.server"]["level"] = "WARNING"  # noqa: F405

QBO_ENVIRONMENT = "local"
QBO_SANDBOX_URL = ""
QBO_DISCOVERY_URL = ""
QBO_API_BASE_URL = ""

# Throttle counts in memory (no cache queries in the query-count tests) and rates no test reaches by accident; the
# throttling tests set their own low rates.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "fieldsync-tests"}}
FIELDSYNC_API_THROTTLE_RATES = {"api_client": "100000/minute", "staff_user": "100000/minute"}

# An export task serves its own company in the calling thread, as before runner_pool.py: tests that call the task
# inside a test transaction (SQLite, no commit) would hide their rows from a runner thread. The tests of the pool
# (tests/quickbooks_export/export/test_runner_pool.py) set their own width on PostgreSQL.
EXPORT_COMPANIES_PER_WORKER = 1
