"""What the pages and the API share: API client accounts and the idempotency keys of their requests.

Tokens are never stored: an ApiClient keeps the SHA-256 of its token (high-entropy, so a fast hash is enough) and a
short visible prefix to find the row and to tell tokens apart in lists. See fieldsync.api.tokens.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q


class ApiClient(models.Model):
    """A named system that calls the API (a field app, a processor's webhook relay, a script), with its own token."""

    class Scope(models.TextChoices):
        READ = "read", "Read"
        WRITE = "write", "Write"
        EXPORT = "export", "Request QuickBooks exports"

    name = models.CharField(max_length=100, unique=True)
    # The first characters of the token ("fsk_" + 8 random characters): shown in lists and logs, used to find the row.
    token_prefix = models.CharField(max_length=16, unique=True, editable=False)
    # hex SHA-256 of the whole token; compared in constant time.
    token_hash = models.CharField(max_length=64, editable=False)
    # Every client may read; writing (customers, jobs, invoices, payments, refunds) and exporting are granted apart.
    can_write = models.BooleanField(default=True)
    can_export = models.BooleanField(default=True)
    # The business units whose records it sees and writes (fieldsync.api.units); another unit's record does not exist
    # for it. While the installation has one unit, every client acts on that one.
    business_units = models.ManyToManyField("billing.BusinessUnit", blank=True, related_name="api_clients")
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)
    # Updated at most once a minute (see fieldsync.api.tokens), not on every request.
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API client"
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.token_prefix}…)"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def scopes(self) -> list[str]:
        scopes = [self.Scope.READ.value]
        if self.can_write:
            scopes.append(self.Scope.WRITE.value)
        if self.can_export:
            scopes.append(self.Scope.EXPORT.value)
        return scopes

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes


class IdempotencyKey(models.Model):
    """One POST made with an Idempotency-Key, and the response it got.

    The row is claimed with an INSERT that relies on the unique (owner, key) constraint, so of two requests with the
    same key exactly one proceeds. Invariants: a COMPLETED row's response was committed in the same transaction as
    the work it describes; an IN_PROGRESS row whose lease expired did no work (its work would have committed the
    row as COMPLETED) and may be taken over; `claim_token` fences a stale holder out. See fieldsync.api.idempotency.
    """

    class State(models.TextChoices):
        IN_PROGRESS = "in_progress", "In progress"
        COMPLETED = "completed", "Completed"

    # Exactly one owner: keys are scoped per API client or per staff user.
    api_client = models.ForeignKey(ApiClient, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    key = models.CharField(max_length=255)
    # SHA-256 of method, path and the canonical JSON of the body: the same key with another request is refused.
    fingerprint = models.CharField(max_length=64)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    state = models.CharField(max_length=20, choices=State.choices, default=State.IN_PROGRESS)
    claim_token = models.CharField(max_length=32)
    locked_until = models.DateTimeField()
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True)
    created_at = models.DateTimeField(db_index=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "idempotency key"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["api_client", "key"],
                condition=Q(api_client__isnull=False),
                name="idempotency_key_unique_client",
            ),
            models.UniqueConstraint(
                fields=["user", "key"], condition=Q(user__isnull=False), name="idempotency_key_unique_user"
            ),
            models.CheckConstraint(
                condition=Q(api_client__isnull=False, user__isnull=True)
                | Q(api_client__isnull=True, user__isnull=False),
                name="idempotency_key_exactly_one_owner",
            ),
            models.CheckConstraint(
                condition=Q(state="in_progress") | Q(response_status__isnull=False),
                name="idempotency_key_completed_has_response",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.method} {self.path} [{self.key}] {self.state}"


class QuickBooksCallCount(models.Model):
    """How many QuickBooks API calls all FieldSync processes made, by kind and outcome, since installation: the
    counter behind fieldsync_quickbooks_calls_total (fieldsync.metrics adds each process's calls in bulk)."""

    kind = models.CharField(max_length=10)
    outcome = models.CharField(max_length=20)
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        verbose_name = "QuickBooks call count"
        constraints = [models.UniqueConstraint(fields=["kind", "outcome"], name="qbo_call_count_unique_kind_outcome")]

    def __str__(self) -> str:
        return f"{self.kind} {self.outcome}: {self.count}"


class ApiRateCount(models.Model):
    """Requests counted against one API rate budget (a client's, a staff user's) in its current fixed window: the
    API throttle's counter when the default cache is the database cache (fieldsync.api.throttling). One row per
    budget, bumped by one INSERT ... ON CONFLICT DO UPDATE per request. On PostgreSQL the table is UNLOGGED
    (migration 0007): the bump commits without waiting for a WAL flush, and a crash empties it (fresh windows)."""

    key = models.CharField(max_length=200, primary_key=True)
    window_start = models.BigIntegerField(help_text="Unix time (seconds) the current window began.")
    hits = models.PositiveIntegerField()

    class Meta:
        verbose_name = "API rate count"

    def __str__(self) -> str:
        return f"{self.key}: {self.hits} since {self.window_start}"
