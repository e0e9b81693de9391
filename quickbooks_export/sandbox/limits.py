"""QuickBooks' per-company throttles: requests per minute, requests in flight, batch requests per minute.

QBO.md: 500 requests/minute per realm, 10 concurrent requests, 40 batch requests/minute; over any of them the
gateway answers HTTP 429 ThrottleExceeded. The minute is a sliding 60 s window. A throttled request is not
recorded in any window: it was never performed.
"""

from __future__ import annotations

import threading
from collections import deque

from .config import Clock, SandboxConfig

WINDOW_SECONDS = 60.0


class CompanyLimiter:
    def __init__(self, config: SandboxConfig, clock: Clock) -> None:
        self._config = config
        self._clock = clock
        self._lock = threading.Lock()
        self._requests: deque[float] = deque()
        self._batches: deque[float] = deque()
        self._in_flight = 0

    def try_acquire(self, *, is_batch: bool) -> str | None:
        """Admit one request (the caller must `release()` it) or return why it is throttled."""
        with self._lock:
            now = self._clock()
            for window in (self._requests, self._batches):
                while window and window[0] <= now - WINDOW_SECONDS:
                    window.popleft()
            if self._in_flight >= self._config.max_in_flight:
                return f"more than {self._config.max_in_flight} requests in flight"
            if len(self._requests) >= self._config.requests_per_minute:
                return f"more than {self._config.requests_per_minute} requests in 60 s"
            if is_batch and len(self._batches) >= self._config.batch_per_minute:
                return f"more than {self._config.batch_per_minute} batch requests in 60 s"
            self._in_flight += 1
            self._requests.append(now)
            if is_batch:
                self._batches.append(now)
            return None

    def release(self) -> None:
        with self._lock:
            self._in_flight -= 1


class Limits:
    """One limiter per realm, created on first use."""

    def __init__(self, config: SandboxConfig, clock: Clock) -> None:
        self._config = config
        self._clock = clock
        self._lock = threading.Lock()
        self._limiters: dict[str, CompanyLimiter] = {}

    def for_realm(self, realm_id: str) -> CompanyLimiter:
        with self._lock:
            limiter = self._limiters.get(realm_id)
            if limiter is None:
                limiter = self._limiters[realm_id] = CompanyLimiter(self._config, self._clock)
            return limiter

    def clear(self) -> None:
        with self._lock:
            self._limiters.clear()
