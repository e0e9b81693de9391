"""QuickBooks Desktop through the Web Connector: the connection, Web Connector sessions, our mapping of objects to
QuickBooks Desktop ListIDs/TxnIDs, and the outbox of every qbXML message set handed to the Web Connector.

Batches, their per-payment items and the attempt history are the Online engine's own tables (ExportBatch,
ExportBatchItem, ExportAttempt in quickbooks_export), with `realm_id` holding the Desktop company's key
("qbd:<connection id>"), so the export log, the progress page, counts and retries are the same for both kinds of
QuickBooks. Those tables are used as they are; nothing in them changed for Desktop.
"""

import uuid

from django.db import models
from django.db.models import Q

DESKTOP_REALM_PREFIX = "qbd:"


# A new QuickBooks Desktop company lists "Cash" and "Check" among its payment methods (unconfirmed for every edition);
# cards and ACH are named per company ("Visa", "E-Check"...), so they start unmapped.
DEFAULT_PAYMENT_METHODS = {"cash": "Cash", "check": "Check"}


def _default_payment_methods() -> dict:
    return dict(DEFAULT_PAYMENT_METHODS)


def _guid() -> str:
    return "{" + str(uuid.uuid4()).upper() + "}"


class DesktopConnection(models.Model):
    """The installation's QuickBooks Desktop company, reached through the Web Connector. At most one row.

    `use_desktop` is the installation-level switch (business units do not exist yet): when it is on, every export
    started from the pages or the API goes to QuickBooks Desktop instead of QuickBooks Online (see routing.py).
    """

    app_name = models.CharField(max_length=100, default="FieldSync")
    # The Web Connector's user name and our hash of its password (Django's password hashers); never the password.
    username = models.CharField(max_length=100, default="fieldsync")
    password_hash = models.CharField(max_length=255, blank=True)
    # GUIDs written into the .qwc file. OwnerID identifies our application; FileID is stamped into the company file
    # the first time it connects (Intuit's QBWC guide), so one .qwc keeps talking to one company file.
    owner_id = models.CharField(max_length=40, default=_guid)
    file_id = models.CharField(max_length=40, default=_guid)
    run_every_minutes = models.PositiveSmallIntegerField(default=15)
    use_desktop = models.BooleanField("export to QuickBooks Desktop", default=False)
    # The company file the first session came from; later sessions from another file are refused.
    company_file = models.CharField(max_length=500, blank=True)
    # How payments land in the company (names as in the Desktop chart of accounts / lists).
    income_account_name = models.CharField(max_length=159, default="Services")
    deposit_account_name = models.CharField(max_length=159, blank=True)
    # Our payment method -> the Desktop company's PaymentMethod name; a method not listed is sent without one.
    payment_method_names = models.JSONField(default=_default_payment_methods, blank=True)
    last_contact_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    # One qbXML message set outstanding per company at a time (two Web Connector sessions never interleave adds).
    lock_ticket = models.CharField(max_length=64, blank=True)
    lock_expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "QuickBooks Desktop connection"
        permissions = [("manage_desktop_connection", "Can set up the QuickBooks Desktop Web Connector")]

    def __str__(self) -> str:
        return f"QuickBooks Desktop ({self.app_name})"

    def __repr__(self) -> str:  # never the hash
        return f"<DesktopConnection pk={self.pk} username={self.username!r}>"

    @property
    def realm_key(self) -> str:
        return f"{DESKTOP_REALM_PREFIX}{self.pk}"


class DesktopSession(models.Model):
    """One Web Connector session: from authenticate to closeConnection, bound to its ticket."""

    class State(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"
        FAILED = "failed", "Failed"

    connection = models.ForeignKey(DesktopConnection, on_delete=models.CASCADE, related_name="sessions")
    ticket = models.CharField(max_length=64, unique=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.OPEN)
    company_file = models.CharField(max_length=500, blank=True)
    qbxml_version = models.CharField(max_length=10, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(auto_now=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    requests_sent = models.PositiveIntegerField(default=0)
    # Payments this session settled (exported or failed): with what is still waiting, the percentage done.
    payments_done = models.PositiveIntegerField(default=0)
    # What getLastError returns: the last thing that went wrong, in plain words (or "NoOp": come back shortly).
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"Web Connector session #{self.pk} ({self.state})"


class DesktopObject(models.Model):
    """One of our objects and what we know of it in the Desktop company.

    The status is the exactly-once state machine (there is no requestid in qbXML):
    UNKNOWN -> (query by marker) -> FOUND | ABSENT; ABSENT -> (add sent) -> ADD_SENT -> (answer) -> FOUND.
    An ADD_SENT whose answer never came (lost response, killed session) goes back to UNKNOWN and is queried by its
    marker again before anything is re-added, so an add QuickBooks did apply is found, not repeated.
    """

    class Kind(models.TextChoices):
        CUSTOMER = "customer", "Customer"
        ITEM = "item", "Service item"
        INVOICE = "invoice", "Invoice"
        PAYMENT = "payment", "Received payment"

    class Status(models.TextChoices):
        UNKNOWN = "unknown", "Not looked up yet"
        ABSENT = "absent", "Not in QuickBooks"
        ADD_SENT = "add_sent", "Add sent, answer awaited"
        FOUND = "found", "In QuickBooks"
        FAILED = "failed", "QuickBooks refused it"

    connection = models.ForeignKey(DesktopConnection, on_delete=models.CASCADE, related_name="desktop_objects")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    # Our primary key for customers, invoices and payments; the lower-cased service name for items.
    local_key = models.CharField(max_length=200)
    # What we look it up by: Name (customers, items), RefNumber (invoices, payments).
    marker = models.CharField(max_length=100)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.UNKNOWN)
    qb_id = models.CharField("ListID / TxnID", max_length=40, blank=True)
    edit_sequence = models.CharField(max_length=20, blank=True)
    linked_existing = models.BooleanField(default=False)
    # Name tries used for a customer after a clash (3100), and the last refusal in QuickBooks' words.
    name_attempt = models.PositiveSmallIntegerField(default=0)
    error_code = models.CharField(max_length=20, blank=True)
    error_message = models.TextField(blank=True)
    last_request = models.ForeignKey(
        "DesktopRequest", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["connection", "kind", "local_key"], name="qbd_object_unique_local"),
            models.UniqueConstraint(
                fields=["connection", "kind", "qb_id"], condition=~Q(qb_id=""), name="qbd_object_unique_qb_id"
            ),
        ]
        indexes = [models.Index(fields=["connection", "status"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.local_key}: {self.status}"


class DesktopRequest(models.Model):
    """The outbox: every qbXML message set handed to the Web Connector, written before it is returned, with the
    markers of the objects it queries or adds, and how it was answered."""

    class State(models.TextChoices):
        SENT = "sent", "Sent"
        ANSWERED = "answered", "Answered"
        LOST = "lost", "No answer"

    class Operation(models.TextChoices):
        QUERY = "query", "Query"
        ADD = "add", "Add"

    connection = models.ForeignKey(DesktopConnection, on_delete=models.CASCADE, related_name="requests")
    session = models.ForeignKey(DesktopSession, null=True, on_delete=models.SET_NULL, related_name="requests")
    operation = models.CharField(max_length=10, choices=Operation.choices)
    kind = models.CharField(max_length=10, choices=DesktopObject.Kind.choices)
    # [{"object": DesktopObject id, "local_key": ..., "marker": ..., "request": "<request element name>"}], in order.
    entries = models.JSONField(default=list)
    qbxml = models.TextField()
    state = models.CharField(max_length=10, choices=State.choices, default=State.SENT)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    answered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["connection", "state"])]

    def __str__(self) -> str:
        return f"{self.operation} {self.kind} #{self.pk} ({self.state})"
