"""API rate limits: one budget per API client (by its id, not its address) and one per staff user.

Rates come from settings.FIELDSYNC_API_THROTTLE_RATES ({"api_client": "600/minute", "staff_user": "300/minute"}),
read on every request so a deployment (or a test) can change them. A refused request gets 429 `throttled` in the
API's error shape with a Retry-After header (DRF's Throttled exception; fieldsync.exceptions keeps the header).

Counts live in Django's default cache: the database cache (its table is created by a migration), so every web
process shares one count per client. DRF's sliding window reads and writes one cache entry per request: a constant
few queries, whatever the page size. (The test settings use a local-memory cache, so query-count tests see none.)
"""

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle

from fieldsync.models import ApiClient


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
        return super().allow_request(request, view)


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
