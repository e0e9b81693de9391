"""API rate limits: one budget per API client (by its id, not its address) and one per staff user.

Rates come from settings.FIELDSYNC_API_THROTTLE_RATES ({"api_client": "600/minute", "staff_user": "300/minute"}),
read on every request so a deployment (or a test) can change them. A refused request gets 429 `throttled` in the
API's error shape with a Retry-After header (DRF's Throttled exception; fieldsync.exceptions keeps the header).

Where the counts live (shared by every web process):
- With the default cache being the database cache (the default deployment): a fixed window per budget in the table
  fieldsync.ApiRateCount, counted by ONE statement per request (INSERT ... ON CONFLICT DO UPDATE ... RETURNING, on
  PostgreSQL and SQLite), in place of the database cache's 6 statements and a commit per request (DRF's sliding
  window is a read, a delete of expired entries, an existence check and a write, in a transaction). A fixed window
  lets a client spend its budget at the end of one window and again at the start of the next; Retry-After says
  exactly when its window ends.
  On PostgreSQL the table is UNLOGGED (fieldsync/migrations/0007): its autocommit bump writes no WAL, so it does not
  wait for an fsync (3-6 ms here, more than the rest of the statement); after a crash the counts start again at zero.
- With any other cache (Redis when REDIS_URL is set; local memory in the test settings): DRF's sliding window in
  that cache, two round trips and no SQL.
"""

import math

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.db import DatabaseCache
from django.db import connection
from rest_framework.throttling import SimpleRateThrottle

from fieldsync.models import ApiClient, ApiRateCount


class _SettingsRateThrottle(SimpleRateThrottle):
    def __init__(self):
        # DRF reads the rate once at class creation; ours follows the settings at request time.
        pass

    def get_rate(self):
        return settings.FIELDSYNC_API_THROTTLE_RATES.get(self.scope)

    def allow_request(self, request, view):
        self.rate = self.get_rate()
        if self.rate is None:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        if not isinstance(caches["default"], DatabaseCache):
            self.window_ends = None
            return super().allow_request(request, view)  # DRF's sliding window in the cache
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        now = self.timer()
        window_start = int(now // self.duration * self.duration)
        self.window_ends = window_start + self.duration
        return _count_hit(self.key, window_start) <= self.num_requests

    def wait(self):
        if self.window_ends is None:
            return super().wait()
        return max(1, math.ceil(self.window_ends - self.timer()))


def _count_hit(key: str, window_start: int) -> int:
    """Count one request against `key` in the window starting at `window_start` (a new window starts at 1) and
    return the window's count: one atomic statement, in autocommit outside the request's transactions."""
    table = connection.ops.quote_name(ApiRateCount._meta.db_table)
    key_column = connection.ops.quote_name("key")
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({key_column}, window_start, hits) VALUES (%s, %s, 1) "  # noqa: S608 (names only)
            f"ON CONFLICT ({key_column}) DO UPDATE SET "
            f"hits = CASE WHEN {table}.window_start = excluded.window_start THEN {table}.hits + 1 ELSE 1 END, "
            "window_start = excluded.window_start RETURNING hits",
            [key, window_start],
        )
        return cursor.fetchone()[0]


class ApiClientRateThrottle(_SettingsRateThrottle):
    """Requests made with an API client's token, counted per client (all its callers share the budget)."""

    scope = "api_client"

    def get_cache_key(self, request, view):
        if not isinstance(request.auth, ApiClient):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.auth.pk}


class StaffUserRateThrottle(_SettingsRateThrottle):
    """Requests made with a staff session, counted per user."""

    scope = "staff_user"

    def get_cache_key(self, request, view):
        if isinstance(request.auth, ApiClient) or not request.user or not request.user.is_authenticated:
            return None  # anonymous requests are refused (401) before any work; clients are counted above
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}
