"""One request budget per QuickBooks company, shared by every process through the database.

QuickBooks allows a company 500 requests a minute and 40 batch requests a minute, counted over a sliding minute
(QBO.md). We count in fixed 5-second buckets and let each bucket take 1/13 of the minute's limit: any 60-second
window touches at most 13 buckets, so no sliding minute can exceed the limit, whatever the timing. That costs a
little headroom (461 of 500 requests, 39 of 40 batches — fewer when a limit does not divide evenly) and buys never
being throttled in steady state. A 429 that still happens (another app on the same company) is retried with backoff
by the caller.

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

    @classmethod
    def from_settings(cls) -> "Limits":
        return cls(
            requests_per_minute=settings.QBO_LIMIT_REQUESTS_PER_MINUTE,
            batches_per_minute=settings.QBO_LIMIT_BATCHES_PER_MINUTE,
        )

    def per_bucket(self, kind: str) -> int:
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
            taken = _take(realm_id, "request", bucket_start, limits.per_bucket("request"))
            if taken and batch and not _take(realm_id, "batch", bucket_start, limits.per_bucket("batch")):
                taken = False
                transaction.set_rollback(True)  # give the plain-request slot back
        if taken:
            if bucket_start % 60 == 0:
                RateLimitBucket.objects.filter(realm_id=realm_id, bucket_start__lt=bucket_start - 120).delete()
            return waited
        if while_waiting is not None and while_waiting():
            continue
        pause = bucket_start + BUCKET_SECONDS - now + 0.01
        sleep(pause)
        waited += pause
