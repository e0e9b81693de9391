"""One request budget per QuickBooks company, shared by every process through the database.

QuickBooks allows a company 500 requests a minute, 10 a second and 40 batch requests a minute (QBO.md). We count
in fixed 5-second buckets and let each take 1/13 of the minute's limit (38 requests, 3 batches): any 60-second
window touches at most 13 buckets, so no sliding minute can exceed the limit (13 × 38 = 494, 13 × 3 = 39), whatever
the timing; in steady state that is 456 requests and 36 batches a minute. One-second buckets of 10 keep every
second under QuickBooks' per-second limit. A 429 that still happens (another app on the same company) is retried
with backoff by the caller.

The count is taken with a conditional UPDATE (count < limit) on a row per bucket: atomic on PostgreSQL and SQLite,
and no lock is held while the request itself travels.
"""

import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F

from .models import RateLimitBucket

BUCKET_SECONDS = 5
BUCKETS_PER_WINDOW = 60 // BUCKET_SECONDS + 1  # a 60 s window overlaps at most this many buckets


@dataclass(frozen=True)
class Limits:
    requests_per_minute: int
    batches_per_minute: int
    requests_per_second: int = 10

    @classmethod
    def from_settings(cls) -> "Limits":
        return cls(
            requests_per_minute=settings.QBO_LIMIT_REQUESTS_PER_MINUTE,
            batches_per_minute=settings.QBO_LIMIT_BATCHES_PER_MINUTE,
            requests_per_second=settings.QBO_LIMIT_REQUESTS_PER_SECOND,
        )

    def per_bucket(self, kind: str) -> int:
        if kind == "second":
            return self.requests_per_second
        per_minute = self.batches_per_minute if kind == "batch" else self.requests_per_minute
        return max(1, math.floor(per_minute / BUCKETS_PER_WINDOW))


def _take(realm_id: str, kind: str, bucket_start: int, limit: int) -> bool:
    updated = RateLimitBucket.objects.filter(
        realm_id=realm_id, kind=kind, bucket_start=bucket_start, count__lt=limit
    ).update(count=F("count") + 1)
    if updated:
        return True
    if RateLimitBucket.objects.filter(realm_id=realm_id, kind=kind, bucket_start=bucket_start).exists():
        return False  # the bucket is full
    try:
        with transaction.atomic():
            RateLimitBucket.objects.create(realm_id=realm_id, kind=kind, bucket_start=bucket_start, count=1)
        return True
    except IntegrityError:  # another process created it first: count against it
        return _take(realm_id, kind, bucket_start, limit)


def acquire(
    realm_id: str,
    *,
    batch: bool = False,
    limits: Limits | None = None,
    clock=time.time,
    sleep=time.sleep,
    while_waiting=None,
):
    """Wait until this company's budget allows one more request (a batch request counts as both). Returns the
    seconds waited. Must not be called inside a transaction that is held across the request.

    `while_waiting`, if given, is called instead of sleeping whenever the budget is spent: it may do other useful
    requests (within the budget) and returns True while it still has something to do.
    """
    limits = limits or Limits.from_settings()
    waited = 0.0
    while True:
        now = clock()
        bucket_start = int(now // BUCKET_SECONDS) * BUCKET_SECONDS
        with transaction.atomic():
            taken = _take(realm_id, "request", bucket_start, limits.per_bucket("request")) and _take(
                realm_id, "second", int(now), limits.per_bucket("second")
            )
            if taken and batch:
                taken = _take(realm_id, "batch", bucket_start, limits.per_bucket("batch"))
            if not taken:
                transaction.set_rollback(True)  # give back what was taken
        if taken:
            if bucket_start % 60 == 0:
                RateLimitBucket.objects.filter(realm_id=realm_id, bucket_start__lt=bucket_start - 120).delete()
            return waited
        if while_waiting is not None and while_waiting():
            continue
        pause = min(bucket_start + BUCKET_SECONDS, int(now) + 1) - now + 0.01
        sleep(pause)
        waited += pause
