import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q
from django.utils import timezone

from fieldsync.exceptions import ConflictError
from quickbooks_export import crypto

# Our payment methods, in the order pages show them. billing's Payment.Method uses exactly these values; this list
# deliberately does not import billing (billing never imports quickbooks_export and vice versa for models).
PAYMENT_METHOD_KEYS: tuple[str, ...] = ("cash", "check", "card", "ach", "other")
PAYMENT_METHOD_LABELS: dict[str, str] = {
    "cash": "Cash",
    "check": "Check",
    "card": "Card",
    "ach": "ACH / bank transfer",
    "other": "Other",
}


class QuickBooksConnection(models.Model):
    """One authorization of FieldSync by one QuickBooks company (realm).

        Each business unit has at most one current row (connected or needing reconnection), and a company is current in
    at most one unit: everything keyed by realm (mappings, settings, limits, the runner's lease, the export log) is
    then that unit's. Connecting one unit never touches another's row. Disconnected rows stay as history. Tokens are
        stored encrypted (see crypto.py) and are never shown by __str__/__repr__, the admin or error messages.
        `token_version` increases every time the stored tokens change, so a worker that refreshed from an older version
        can tell that another worker rotated the tokens first (see client.py).
    """

    class State(models.TextChoices):
        CONNECTED = "connected", "Connected"
        NEEDS_RECONNECT = "needs_reconnect", "Needs reconnecting"
        DISCONNECTED = "disconnected", "Disconnected"

    # Allowed state changes. A disconnected row is history: connecting again creates a new row.
    TRANSITIONS: dict[str, frozenset[str]] = {
        State.CONNECTED: frozenset({State.NEEDS_RECONNECT, State.DISCONNECTED}),
        State.NEEDS_RECONNECT: frozenset({State.CONNECTED, State.DISCONNECTED}),
        State.DISCONNECTED: frozenset(),
    }

    business_unit = models.ForeignKey(
        "billing.BusinessUnit", on_delete=models.PROTECT, related_name="quickbooks_connections"
    )
    realm_id = models.CharField("realm id", max_length=32)
    company_name = models.CharField(max_length=255, blank=True)
    state = models.CharField(max_length=20, choices=State.choices, default=State.CONNECTED)
    is_current = models.BooleanField(default=True, editable=False)

    connected_at = models.DateTimeField(default=timezone.now)
    connected_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    disconnected_at = models.DateTimeField(null=True, blank=True)
    disconnected_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    access_token_ciphertext = models.TextField(blank=True, editable=False)
    access_token_expires_at = models.DateTimeField(null=True, blank=True)
    refresh_token_ciphertext = models.TextField(blank=True, editable=False)
    refresh_token_expires_at = models.DateTimeField(null=True, blank=True)
    token_version = models.PositiveIntegerField(default=0, editable=False)

    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "QuickBooks connection"
        ordering = ["-connected_at", "-pk"]
        permissions = [("manage_quickbooks_connection", "Can manage the QuickBooks connection")]
        constraints = [
            models.UniqueConstraint(
                fields=["business_unit"], condition=Q(is_current=True), name="qbo_connection_one_current_per_unit"
            ),
            models.UniqueConstraint(
                fields=["realm_id"], condition=Q(is_current=True), name="qbo_connection_company_current_once"
            ),
            # "Current" is exactly "not disconnected": the flag exists only so the unique constraints above can use it.
            models.CheckConstraint(
                condition=(
                    Q(is_current=True, state__in=["connected", "needs_reconnect"])
                    | Q(is_current=False, state="disconnected")
                ),
                name="qbo_connection_current_iff_not_disconnected",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.company_name or 'QuickBooks company'} (realm {self.realm_id}, {self.get_state_display()})"

    def __repr__(self) -> str:
        return f"<QuickBooksConnection pk={self.pk} realm_id={self.realm_id!r} state={self.state!r}>"

    def save(self, *args, **kwargs) -> None:
        # Saved without a unit (a caller from before units): the only unit's; with several, it refuses.
        if self.business_unit_id is None:
            from billing.services import business_unit_default  # billing's models load after this module

            self.business_unit = business_unit_default()
        super().save(*args, **kwargs)

    # --- tokens: plaintext only in memory ----------------------------------------------------------------------
    def get_access_token(self) -> str:
        return crypto.decrypt(self.access_token_ciphertext)

    def get_refresh_token(self) -> str:
        return crypto.decrypt(self.refresh_token_ciphertext)

    def set_tokens(
        self,
        *,
        access_token: str,
        refresh_token: str,
        access_expires_in: int | float | None,
        refresh_expires_in: int | float | None,
        now: datetime | None = None,
    ) -> None:
        """Store a token pair (encrypted) with its expiry times and bump the token version. Does not save."""
        now = now or timezone.now()
        self.access_token_ciphertext = crypto.encrypt(access_token)
        self.refresh_token_ciphertext = crypto.encrypt(refresh_token)
        self.access_token_expires_at = now + timedelta(seconds=int(access_expires_in or 3600))
        self.refresh_token_expires_at = now + timedelta(seconds=int(refresh_expires_in)) if refresh_expires_in else None
        self.token_version += 1

    def clear_tokens(self) -> None:
        self.access_token_ciphertext = ""
        self.refresh_token_ciphertext = ""
        self.access_token_expires_at = None
        self.refresh_token_expires_at = None
        self.token_version += 1

    def transition_to(self, state: str) -> None:
        """Change state (not saved; callers hold the row with select_for_update). Staying put is allowed."""
        if state != self.state and state not in self.TRANSITIONS[self.state]:
            raise ConflictError(
                f"A QuickBooks connection cannot go from {self.get_state_display().lower()} to "
                f"{self.State(state).label.lower()}.",
                code="quickbooks_connection_state",
            )
        self.state = state
        self.is_current = state != self.State.DISCONNECTED

    @property
    def is_connected(self) -> bool:
        return self.state == self.State.CONNECTED

    @property
    def needs_reconnect(self) -> bool:
        return self.state == self.State.NEEDS_RECONNECT


class QuickBooksMappingSettings(models.Model):
    """How our payments land in one QuickBooks company (per realm, so reconnecting keeps the choices)."""

    class CustomerDetailsWinner(models.TextChoices):
        """Which side wins when a customer's details (company name, e-mail, phone, address) differ after export
        (updates.py). An empty value never overwrites either side, whichever wins."""

        # Changes made only in FieldSync are sent; a detail changed on both sides waits for a person (audited).
        ASK = "ask", "Ask me when both changed (send FieldSync's changes; a detail changed on both sides waits)"
        FIELDSYNC = "fieldsync", "FieldSync wins (send FieldSync's changes, also over a change made in QuickBooks)"
        # Nothing is sent; a detail changed in QuickBooks is taken into FieldSync when FieldSync next compares.
        QUICKBOOKS = "quickbooks", "QuickBooks wins (never send; take QuickBooks' changes into FieldSync)"

    realm_id = models.CharField("realm id", max_length=32, unique=True)
    # Where payments are deposited. Empty id means QuickBooks' own default (Undeposited Funds).
    deposit_account_id = models.CharField(max_length=32, blank=True)
    deposit_account_name = models.CharField(max_length=255, blank=True)
    # Income account for Service items FieldSync creates.
    income_account_id = models.CharField(max_length=32, blank=True)
    income_account_name = models.CharField(max_length=255, blank=True)
    # "Record it in QuickBooks for me" on manual-handling items whose QuickBooks transaction is unambiguous. Off by
    # default: entering refunds by hand stays the normal path.
    record_refunds_for_me = models.BooleanField(
        "let FieldSync record refunds in QuickBooks",
        default=False,
        help_text="Shows “Record it in QuickBooks for me” on refunds whose QuickBooks transaction is unambiguous "
        "(a reversed payment).",
    )
    customer_details_winner = models.CharField(
        "when customer details differ",
        max_length=10,
        choices=CustomerDetailsWinner.choices,
        default=CustomerDetailsWinner.ASK,
    )
    # Payments keyed in QuickBooks against invoices FieldSync exported: brought in as FieldSync payments ("recorded in
    # QuickBooks") when on; otherwise listed on "Changed in QuickBooks" for a person (inbound.py). Off by default.
    bring_in_quickbooks_payments = models.BooleanField(
        "bring in payments recorded in QuickBooks",
        default=False,
        help_text="A payment keyed in QuickBooks against an invoice FieldSync exported becomes a FieldSync payment "
        "marked “recorded in QuickBooks” (never exported back). Off: it is listed under Changed in QuickBooks.",
    )
    # The QuickBooks TaxCode our taxed invoices use (US: the rate/group of TxnTaxDetail.TxnTaxCodeRef; elsewhere: the
    # TaxCodeRef of every line), and for other countries the code of untaxed lines (zero-rated / exempt).
    sales_tax_code_id = models.CharField(max_length=32, blank=True)
    sales_tax_code_name = models.CharField(max_length=255, blank=True)
    no_tax_code_id = models.CharField(max_length=32, blank=True)
    no_tax_code_name = models.CharField(max_length=255, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = "QuickBooks mapping settings"
        verbose_name_plural = "QuickBooks mapping settings"

    def __str__(self) -> str:
        return f"Mapping for realm {self.realm_id}"

    def deposit_account_ref(self) -> dict | None:
        """QBO `DepositToAccountRef`, or None to let QuickBooks use Undeposited Funds."""
        if not self.deposit_account_id:
            return None
        return {"value": self.deposit_account_id, "name": self.deposit_account_name}

    def income_account_ref(self) -> dict | None:
        if not self.income_account_id:
            return None
        return {"value": self.income_account_id, "name": self.income_account_name}

    def payment_method_ref(self, method: str) -> dict | None:
        """QBO `PaymentMethodRef` for one of PAYMENT_METHOD_KEYS, or None when that method is not mapped."""
        if method not in PAYMENT_METHOD_KEYS:
            raise ValueError(f"Unknown payment method {method!r}; expected one of {', '.join(PAYMENT_METHOD_KEYS)}.")
        row = next((m for m in self.payment_methods.all() if m.method == method), None)
        if row is None or not row.qbo_payment_method_id:
            return None
        return {"value": row.qbo_payment_method_id, "name": row.qbo_payment_method_name}


class ClassTracking(models.TextChoices):
    OFF = "off", "Off"
    PER_TRANSACTION = "transaction", "One class per invoice"
    PER_LINE = "line", "One class per invoice line"


class QuickBooksCompanyProfile(models.Model):
    """What kind of QuickBooks company a realm is, as last read from CompanyInfo, Preferences and TaxCode (see
    company.py): the export engine builds invoices for it and refuses a company in another currency."""

    realm_id = models.CharField("realm id", max_length=32, unique=True)
    country = models.CharField(max_length=2, blank=True)
    home_currency = models.CharField(max_length=3, blank=True)
    multicurrency_enabled = models.BooleanField(default=False)
    # Preferences.SalesFormsPrefs.CustomTxnNumbers: when off, QuickBooks numbers invoices itself.
    custom_txn_numbers = models.BooleanField(default=True)
    using_sales_tax = models.BooleanField(default=False)
    # Preferences.TaxPrefs.PartnerTaxEnabled: QuickBooks' automated sales tax (US).
    automated_sales_tax = models.BooleanField(default=False)
    # [{"id", "name", "active"}] of the company's TaxCode list.
    tax_codes = models.JSONField(default=list, blank=True)
    # Preferences.AccountingInfoPrefs.ClassTrackingPerTxn / ClassTrackingPerTxnLine: where invoices carry a class.
    class_tracking = models.CharField(max_length=12, choices=ClassTracking.choices, default=ClassTracking.OFF)
    # Preferences.AccountingInfoPrefs.TrackDepartments and DepartmentTerminology (what the company calls them,
    # "Location" by default).
    track_departments = models.BooleanField(default=False)
    department_terminology = models.CharField(max_length=40, blank=True)
    # [{"id", "name", "active"}] of the Class and Department lists, read only while the company tracks them.
    classes = models.JSONField(default=list, blank=True)
    departments = models.JSONField(default=list, blank=True)
    read_at = models.DateTimeField()

    class Meta:
        verbose_name = "QuickBooks company profile"

    def __str__(self) -> str:
        return f"QuickBooks company {self.realm_id}: {self.describe()}"

    @property
    def is_us(self) -> bool:
        return self.country == "US"

    def describe(self) -> str:
        """In plain words, e.g. "US company, automated sales tax, USD"."""
        if not self.using_sales_tax:
            tax = "no sales tax"
        elif self.is_us:
            tax = "automated sales tax" if self.automated_sales_tax else "sales tax set by hand"
        else:
            tax = "sales tax by tax code"
        parts = [f"{self.country or 'Unknown country'} company", tax, self.home_currency or "currency unknown"]
        if self.multicurrency_enabled:
            parts.append("multicurrency on")
        if not self.custom_txn_numbers:
            parts.append("QuickBooks numbers invoices itself")
        return ", ".join(parts)

    @property
    def location_label(self) -> str:
        """What the company calls a Department ("Location" unless it chose another word)."""
        return self.department_terminology or "Location"

    def describe_tracking(self) -> str:
        """Class and location tracking in words, e.g. "Classes: one per invoice line; locations: tracked"."""
        classes = {
            ClassTracking.OFF: "classes not tracked",
            ClassTracking.PER_TRANSACTION: "one class per invoice",
            ClassTracking.PER_LINE: "one class per invoice line",
        }[ClassTracking(self.class_tracking)]
        label = self.location_label.lower()
        places = f"{label}s tracked" if self.track_departments else f"{label}s not tracked"
        return f"{classes[0].upper()}{classes[1:]}; {places}"

    @property
    def tracks_classes(self) -> bool:
        return self.class_tracking != ClassTracking.OFF

    def active_choices(self, kind: str) -> dict[str, str]:
        """Id -> name of the active classes ("classes") or departments ("departments")."""
        return {row["id"]: row["name"] for row in getattr(self, kind) if row.get("active", True)}


class QuickBooksUnitTracking(models.Model):
    """The Class and Department (location) a business unit's invoices carry in its QuickBooks company, chosen by a
    person on the QuickBooks page (never guessed; none by default). Sent only while the company tracks them (see
    mappers.invoice_payload); ids and names as QuickBooks listed them when chosen."""

    realm_id = models.CharField("realm id", max_length=32)
    business_unit = models.ForeignKey("billing.BusinessUnit", on_delete=models.CASCADE, related_name="+")
    class_id = models.CharField("QuickBooks class id", max_length=32, blank=True)
    class_name = models.CharField(max_length=200, blank=True)
    department_id = models.CharField("QuickBooks location id", max_length=32, blank=True)
    department_name = models.CharField(max_length=200, blank=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "QuickBooks class and location of a unit"
        constraints = [models.UniqueConstraint(fields=["realm_id", "business_unit"], name="qbo_unit_tracking_unique")]

    def __str__(self) -> str:
        return (
            f"{self.business_unit_id} in {self.realm_id}: class {self.class_name or '-'}, {self.department_name or '-'}"
        )


class QuickBooksJobTypeTracking(models.Model):
    """The Class and/or Department (location) the invoices of one job type's jobs carry in its unit's QuickBooks
    company, chosen by a person on the QuickBooks page next to the unit's own choice (never guessed; none by
    default). Each one chosen here replaces the unit's for those invoices; one left empty keeps the unit's
    (tracking.py). Ids and names as QuickBooks listed them when chosen."""

    realm_id = models.CharField("realm id", max_length=32)
    job_type = models.ForeignKey("billing.JobType", on_delete=models.CASCADE, related_name="+")
    class_id = models.CharField("QuickBooks class id", max_length=32, blank=True)
    class_name = models.CharField(max_length=200, blank=True)
    department_id = models.CharField("QuickBooks location id", max_length=32, blank=True)
    department_name = models.CharField(max_length=200, blank=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "QuickBooks class and location of a job type"
        constraints = [
            models.UniqueConstraint(fields=["realm_id", "job_type"], name="qbo_job_type_tracking_unique"),
            models.CheckConstraint(
                condition=~Q(class_id="") | ~Q(department_id=""), name="qbo_job_type_tracking_not_empty"
            ),
        ]

    def __str__(self) -> str:
        chosen = f"class {self.class_name or '-'}, {self.department_name or '-'}"
        return f"job type {self.job_type_id} in {self.realm_id}: {chosen}"


class QuickBooksTaxCodeMapping(models.Model):
    """Which QuickBooks TaxCode one of our tax rates becomes, per company (chosen on the QuickBooks page). US: the
    invoice's TxnTaxDetail.TxnTaxCodeRef; elsewhere: the TaxCodeRef of its taxable lines."""

    realm_id = models.CharField("realm id", max_length=32)
    tax_rate = models.ForeignKey("billing.TaxRate", on_delete=models.CASCADE, related_name="+")
    qbo_tax_code_id = models.CharField("QuickBooks tax code Id", max_length=32)
    qbo_tax_code_name = models.CharField(max_length=255, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "QuickBooks tax code mapping"
        constraints = [models.UniqueConstraint(fields=["realm_id", "tax_rate"], name="qbo_tax_code_mapping_unique")]

    def __str__(self) -> str:
        return f"{self.tax_rate_id} → QuickBooks tax code {self.qbo_tax_code_name or self.qbo_tax_code_id}"


class QuickBooksPaymentMethodMapping(models.Model):
    """Which QuickBooks PaymentMethod one of our payment methods becomes (no row / empty id: none)."""

    settings = models.ForeignKey(QuickBooksMappingSettings, on_delete=models.CASCADE, related_name="payment_methods")
    method = models.CharField(max_length=10, choices=[(key, PAYMENT_METHOD_LABELS[key]) for key in PAYMENT_METHOD_KEYS])
    qbo_payment_method_id = models.CharField(max_length=32, blank=True)
    qbo_payment_method_name = models.CharField(max_length=255, blank=True)

    class Meta:
        verbose_name = "QuickBooks payment method mapping"
        constraints = [
            models.UniqueConstraint(fields=["settings", "method"], name="qbo_payment_method_mapping_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.get_method_display()} → {self.qbo_payment_method_name or 'none'}"


# --- The export engine's own tables -------------------------------------------------------------------------------
# Exactly once comes from three things together: a mapping of our objects to QuickBooks Ids, checked before any
# create; an outbox of every create sent to QuickBooks, written (with its request id and body) before it is sent, so
# a crash or a lost answer is healed by re-sending the very same request, which QuickBooks answers from its requestid
# replay instead of creating again; and a claim on each payment (its export status moves QUEUED -> EXPORTING under a
# row lock) so two workers never export the same payment.


class QuickBooksMapping(models.Model):
    """One of our objects and the QuickBooks object it is, per company. Once linked, always reused."""

    class Kind(models.TextChoices):
        CUSTOMER = "customer", "Customer"
        ITEM = "item", "Service item"
        INVOICE = "invoice", "Invoice"
        PAYMENT = "payment", "Payment"

    realm_id = models.CharField(max_length=32)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    # Our primary key for customers, invoices and payments; the lower-cased service name for items.
    local_key = models.CharField(max_length=200)
    qbo_id = models.CharField("QuickBooks Id", max_length=32)
    sync_token = models.CharField(max_length=16, blank=True)
    # The name it has in QuickBooks (a customer's DisplayName may carry a suffix that tells two parties apart).
    qbo_name = models.CharField(max_length=500, blank=True)
    # True when the object already existed in QuickBooks and we linked to it instead of creating it.
    linked_existing = models.BooleanField(default=False)
    # Set when QuickBooks answered that the object is gone or inactive (610): the export stops using the mapping,
    # without asking QuickBooks again, until someone reactivates it, relinks or unlinks it on the mappings page.
    stale_reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["realm_id", "kind", "local_key"], name="qbo_mapping_unique_object"),
            models.UniqueConstraint(fields=["realm_id", "kind", "qbo_id"], name="qbo_mapping_unique_qbo_object"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.local_key} → QuickBooks {self.qbo_id}"


class QuickBooksRequest(models.Model):
    """The outbox: a create (or a batch of creates) written before it is sent, and its answer once it came.

    A PENDING row is a request that may or may not have reached QuickBooks. It is only ever re-sent unchanged with the
    same request id, so QuickBooks answers with what it did the first time.
    """

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    realm_id = models.CharField(max_length=32)
    request_id = models.CharField(max_length=50, unique=True)
    # "batch", or the entity of a single create ("Customer", "Item", "Invoice", "Payment").
    operation = models.CharField(max_length=20)
    # For a single create: which of our objects it is (mapping kind + local key). Batch items carry it in their bId.
    kind = models.CharField(max_length=10, blank=True)
    local_key = models.CharField(max_length=200, blank=True)
    # Amounts are Decimals; DjangoJSONEncoder keeps them exact as strings, which QuickBooks accepts as numbers.
    payload = models.JSONField(encoder=DjangoJSONEncoder)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    response = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["realm_id", "state"])]

    def __str__(self) -> str:
        return f"{self.operation} {self.request_id} ({self.state})"


class ExportBatch(models.Model):
    """One request to export payments: a click on Export Payments, a single export, an API call, a command."""

    class Source(models.TextChoices):
        PAGE = "page", "Staff page"
        API = "api", "API"
        COMMAND = "command", "Command line"
        RETRY = "retry", "Retry"
        # Started by FieldSync itself: an invoice became fully paid, or the hourly / nightly schedule (auto_export.py).
        AUTOMATIC = "automatic", "Automatic"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        FINISHED = "finished", "Finished"

    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Who asked, in words: a user's name or an API client's name.
    requested_by = models.CharField(max_length=150, blank=True)
    source = models.CharField(max_length=10, choices=Source.choices)
    # What was selected, in words ("3 selected payments", "everything exportable", "payment #42").
    selection = models.CharField(max_length=300)
    realm_id = models.CharField(max_length=32)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Why the batch is waiting, when it is (e.g. QuickBooks needs reconnecting, or throttling).
    waiting_reason = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("export_payments", "Can export payments to QuickBooks")]
        verbose_name_plural = "export batches"

    def __str__(self) -> str:
        return f"Export #{self.pk}"


class ExportBatchItem(models.Model):
    """What happened to one payment in one batch, or to one invoice with nothing to pay (a $0.00 invoice, exported
    on its own: services.export_invoices_start). The batch's counters are counts of these, never stored twice."""

    class Outcome(models.TextChoices):
        PENDING = "pending", "Waiting"
        CREATED = "created", "Created"
        UPDATED = "updated", "Updated"
        LINKED = "linked", "Already in QuickBooks"
        SKIPPED = "skipped", "Skipped"
        FAILED = "failed", "Failed"
        # QuickBooks' invoice cannot take the payment as it is: nothing of that invoice was posted (InvoiceExportHold).
        HELD = "held", "On hold"

    batch = models.ForeignKey(ExportBatch, on_delete=models.CASCADE, related_name="items")
    # Exactly one of the two (export_item_payment_or_invoice).
    payment = models.ForeignKey(
        "billing.Payment", null=True, blank=True, on_delete=models.PROTECT, related_name="export_items"
    )
    invoice = models.ForeignKey(
        "billing.Invoice", null=True, blank=True, on_delete=models.PROTECT, related_name="export_items"
    )
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.PENDING)
    # The reason for skipped and failed records, in plain words; QuickBooks' code and message for failures.
    message = models.TextField(blank=True)
    error_code = models.CharField(max_length=40, blank=True)
    qbo_id = models.CharField("QuickBooks Id", max_length=32, blank=True)
    # Added because another selected payment shares its invoice (invoices go to QuickBooks with all their payments).
    added_with_invoice = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["batch", "payment"], name="export_item_unique_payment"),
            models.UniqueConstraint(fields=["batch", "invoice"], name="export_item_unique_invoice"),
            models.CheckConstraint(
                condition=Q(payment__isnull=False, invoice__isnull=True)
                | Q(payment__isnull=True, invoice__isnull=False),
                name="export_item_payment_or_invoice",
            ),
        ]
        indexes = [models.Index(fields=["batch", "outcome"]), models.Index(fields=["outcome", "id"])]

    def __str__(self) -> str:
        return f"{self.subject_label} in Export #{self.batch_id}: {self.outcome}"

    @property
    def subject_label(self) -> str:
        """ "Payment #12" or "Invoice #7" (an invoice exported on its own)."""
        return f"Payment #{self.payment_id}" if self.payment_id else f"Invoice #{self.invoice_id}"


class ExportAttempt(models.Model):
    """Every call made to QuickBooks on a payment's behalf: when, what, with which request id, and how it ended."""

    class Outcome(models.TextChoices):
        OK = "ok", "OK"
        LINKED = "linked", "Found in QuickBooks"
        ERROR = "error", "Error"

    at = models.DateTimeField(auto_now_add=True)
    # Made for a payment, or for an invoice exported on its own (exactly one: export_attempt_payment_or_invoice).
    payment = models.ForeignKey(
        "billing.Payment", null=True, blank=True, on_delete=models.CASCADE, related_name="export_attempts"
    )
    invoice = models.ForeignKey(
        "billing.Invoice", null=True, blank=True, on_delete=models.CASCADE, related_name="export_attempts"
    )
    batch = models.ForeignKey(ExportBatch, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # e.g. "create Customer", "find Customer by e-mail", "create Payment (batch)".
    operation = models.CharField(max_length=60)
    object_kind = models.CharField(max_length=10, blank=True)
    local_key = models.CharField(max_length=200, blank=True)
    request_id = models.CharField(max_length=50, blank=True)
    qbo_id = models.CharField("QuickBooks Id", max_length=32, blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    error_code = models.CharField(max_length=40, blank=True)
    message = models.TextField(blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["payment", "-at"]), models.Index(fields=["invoice", "-at"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(payment__isnull=False, invoice__isnull=True)
                | Q(payment__isnull=True, invoice__isnull=False),
                name="export_attempt_payment_or_invoice",
            ),
        ]

    def __str__(self) -> str:
        what = f"payment #{self.payment_id}" if self.payment_id else f"invoice #{self.invoice_id}"
        return f"{self.operation} for {what}: {self.outcome}"


class ExportRunnerLease(models.Model):
    """Who is exporting to one company right now. One runner per company: it alone spends the company's request
    budget, so creates of the same customer or item never race, and its expiry lets another worker take over
    after a crash."""

    realm_id = models.CharField(max_length=32, primary_key=True)
    holder = models.CharField(max_length=100, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Export runner for {self.realm_id}: {self.holder or 'free'}"


class RateLimitBucket(models.Model):
    """Requests sent to one company in one short time bucket, shared by every process (see limiter.py)."""

    realm_id = models.CharField(max_length=32)
    kind = models.CharField(max_length=10)  # "request" or "batch"
    bucket_start = models.BigIntegerField()  # unix seconds, a multiple of the bucket length
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["realm_id", "kind", "bucket_start"], name="rate_bucket_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} requests to {self.realm_id} from {self.bucket_start}: {self.count}"


def _new_installation_id() -> str:
    return secrets.token_hex(8)


class Installation(models.Model):
    """This FieldSync installation, created once, the first time it talks to QuickBooks.

    Its random id is part of every QuickBooks request id, so a second installation connected to the same company, or
    this one restored from a backup (whose outbox and mapping have forgotten creates made since), never sends a
    request id QuickBooks already answered for different content.
    """

    singleton = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    installation_id = models.CharField(max_length=16, default=_new_installation_id, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"FieldSync installation {self.installation_id}"

    @classmethod
    def current_id(cls) -> str:
        installation, _ = cls.objects.get_or_create(singleton=1)
        return installation.installation_id


class InvoiceExportHold(models.Model):
    """An invoice whose payments FieldSync will not post because QuickBooks' copy of it cannot take them.

    Before any payment goes, the engine knows QuickBooks' TotalAmt and Balance of every invoice it applies to (from the
    create answer, or one batched read). When the total differs from ours, the balance is smaller than what is about
    to be posted, or QuickBooks no longer has the invoice, none of the invoice's payments is posted: they go ON_HOLD
    and this row says why, with both figures, until a person updates the QuickBooks invoice, checks again after fixing
    it in QuickBooks, or unlinks it. At most one open hold per invoice and company.
    """

    class Reason(models.TextChoices):
        TOTAL_DIFFERS = "total_differs", "QuickBooks computed a different total"
        BALANCE_TOO_LOW = "balance_too_low", "The QuickBooks invoice has less open than FieldSync would post"
        NOT_FOUND = "not_found", "The QuickBooks invoice is gone"

    class State(models.TextChoices):
        OPEN = "open", "Open"
        RELEASED = "released", "Released"

    realm_id = models.CharField(max_length=32)
    invoice = models.ForeignKey("billing.Invoice", on_delete=models.PROTECT, related_name="quickbooks_holds")
    qbo_invoice_id = models.CharField("QuickBooks invoice Id", max_length=32)
    reason = models.CharField(max_length=20, choices=Reason.choices)
    message = models.TextField()
    our_total = models.DecimalField(max_digits=12, decimal_places=2)
    qbo_total = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    qbo_tax = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    qbo_balance = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    # What FieldSync was about to post against the invoice when it held it.
    amount_to_post = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    # QuickBooks' TxnTaxDetail as it answered (tax code, tax lines), for the person comparing the figures.
    tax_detail = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    state = models.CharField(max_length=10, choices=State.choices, default=State.OPEN)
    created_at = models.DateTimeField(auto_now_add=True)
    checked_at = models.DateTimeField(default=timezone.now)
    released_at = models.DateTimeField(null=True, blank=True)
    released_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    release_note = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["realm_id", "invoice"], condition=Q(state="open"), name="invoice_export_hold_one_open"
            ),
            models.CheckConstraint(
                condition=Q(state="open") | Q(released_at__isnull=False), name="invoice_export_hold_released_has_time"
            ),
        ]

    def __str__(self) -> str:
        return f"Hold of invoice #{self.invoice_id} ({self.get_reason_display()}, {self.state})"


class QuickBooksMappingAudit(models.Model):
    """Who changed a link between one of our objects and a QuickBooks object by hand, when, and from what to what.

    Written by the services that unlink, relink or update; never edited. `before` / `after` hold the mapping's
    QuickBooks Id, name and SyncToken (empty when there was none)."""

    class Action(models.TextChoices):
        UNLINK = "unlink", "Unlinked"
        RELINK = "relink", "Linked to a different QuickBooks record"
        UPDATE_INVOICE = "update_invoice", "Updated the QuickBooks invoice to match FieldSync"
        REACTIVATE = "reactivate", "Made active again in QuickBooks"
        CHECK_AGAIN = "check_again", "Checked again"
        # The QuickBooks object was voided by an undo of the export that created it (undo.py); the link is gone.
        UNDO = "undo", "Voided in QuickBooks by an undo"
        # A change made in FieldSync after the export, sent to QuickBooks as a sparse update (updates.py) ...
        UPDATE_CUSTOMER = "update_customer", "Sent FieldSync's change to QuickBooks"
        # ... or not sent, because QuickBooks changed the same details since (a person decides which is right).
        CHANGE_CONFLICT = "change_conflict", "Changed on both sides: not sent"
        # Voided in FieldSync and then in QuickBooks (voids.py); the link stays, to the voided QuickBooks invoice.
        VOID = "void", "Voided in QuickBooks"
        # The company's setting says QuickBooks wins for customer details (updates.py): FieldSync's change was not
        # sent, and what QuickBooks changed was taken into FieldSync.
        QUICKBOOKS_WINS = "quickbooks_wins", "QuickBooks wins: not sent, QuickBooks' details taken"
        # A payment keyed in QuickBooks, brought into FieldSync (inbound.py): the link keeps it from coming twice.
        BRING_IN = "bring_in", "Brought in from QuickBooks"
        # QuickBooks' customer details copied into FieldSync ("Accept QuickBooks' version", changes.py).
        ACCEPT_CUSTOMER = "accept_customer", "Copied QuickBooks' details into FieldSync"

    realm_id = models.CharField(max_length=32)
    kind = models.CharField(max_length=10, choices=QuickBooksMapping.Kind.choices)
    local_key = models.CharField(max_length=200)
    action = models.CharField(max_length=20, choices=Action.choices)
    before = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    after = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    note = models.CharField(max_length=500, blank=True)
    at = models.DateTimeField(auto_now_add=True)
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["realm_id", "kind", "local_key"])]

    def __str__(self) -> str:
        return f"{self.get_action_display()}: {self.kind} {self.local_key} by {self.by_id or 'system'}"


class AutoExportSettings(models.Model):
    """When FieldSync exports by itself (per QuickBooks company; off until someone turns it on).

    Changed only through auto_export.auto_export_settings_update, which keeps the django-q2 schedules in step."""

    class Mode(models.TextChoices):
        OFF = "off", "Off: export only when someone asks"
        WHEN_PAID = "when_paid", "As soon as an invoice is fully paid"
        HOURLY = "hourly", "Every hour"
        NIGHTLY = "nightly", "Every night at a chosen time"

    realm_id = models.CharField("realm id", max_length=32, unique=True)
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.OFF)
    # Local time (settings.TIME_ZONE) of the nightly export; only used in NIGHTLY mode.
    nightly_at = models.TimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = "automatic export settings"
        verbose_name_plural = "automatic export settings"
        constraints = [
            models.CheckConstraint(
                condition=~Q(mode="nightly") | Q(nightly_at__isnull=False), name="auto_export_nightly_has_time"
            )
        ]

    def __str__(self) -> str:
        return f"Automatic export for realm {self.realm_id}: {self.get_mode_display()}"


class ExportUndo(models.Model):
    """Undoing an export (a batch, or one payment): what was to be voided in QuickBooks, by whom, and how it ended.

    `plan` is what the confirmation page showed, checked against QuickBooks just before: one entry per object, in the
    order QuickBooks needs (payments, then invoices), each {entity, qbo_id, sync_token, local_key, label, amount}.
    Each void goes through the outbox with a request id per QuickBooks object, so an object is voided once whatever
    runs twice (undo.py)."""

    class State(models.TextChoices):
        QUEUED = "queued", "Waiting to start"
        RUNNING = "running", "Voiding in QuickBooks"
        DONE = "done", "Done"
        STOPPED = "stopped", "Stopped: needs a person"

    realm_id = models.CharField(max_length=32)
    batch = models.ForeignKey(ExportBatch, null=True, blank=True, on_delete=models.PROTECT, related_name="undos")
    payment = models.ForeignKey("billing.Payment", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    plan = models.JSONField(encoder=DjangoJSONEncoder)
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    # Why it stopped, in plain words, with QuickBooks' code when QuickBooks refused.
    message = models.TextField(blank=True)
    voided_payments = models.PositiveIntegerField(default=0)
    voided_invoices = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(batch__isnull=False) | Q(payment__isnull=False), name="export_undo_has_a_subject"
            ),
        ]

    def __str__(self) -> str:
        what = f"Export #{self.batch_id}" if self.batch_id else f"payment #{self.payment_id}"
        return f"Undo of {what} ({self.state})"


class QuickBooksEvent(models.Model):
    """One change notification from Intuit's webhooks, kept once (event_id is unique: Intuit may deliver an event
    more than once) until the change it names has been checked (webhooks.py)."""

    class State(models.TextChoices):
        PENDING = "pending", "Waiting to be checked"
        CHECKED = "checked", "Checked"
        IGNORED = "ignored", "Not about anything FieldSync exported"

    # CloudEvents' `id`; for the older eventNotifications format (no id), realm|entity|id|operation|lastUpdated.
    event_id = models.CharField(max_length=200, unique=True)
    realm_id = models.CharField(max_length=32)
    entity = models.CharField(max_length=30)
    qbo_id = models.CharField("QuickBooks Id", max_length=32)
    operation = models.CharField(max_length=20)
    occurred_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    checked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["state", "id"])]

    def __str__(self) -> str:
        return f"{self.entity} {self.qbo_id} {self.operation} ({self.state})"


class QuickBooksChange(models.Model):
    """Something FieldSync exported that is no longer as exported in QuickBooks: deleted, voided, another amount or
    another customer. One open row per object and kind of change; both versions kept for a person to compare."""

    class Change(models.TextChoices):
        DELETED = "deleted", "Deleted in QuickBooks"
        VOIDED = "voided", "Voided in QuickBooks"
        AMOUNT = "amount", "Amount changed in QuickBooks"
        CUSTOMER = "customer", "Customer changed in QuickBooks"
        # Voided in FieldSync, but QuickBooks cannot void it as it is (payments still applied, deposited): a person.
        VOID_BLOCKED = "void_held", "Voided in FieldSync, not in QuickBooks"
        # Changed in FieldSync after export (invoice_updates.py), not sent: changed on both sides, below QuickBooks'
        # payments, or an item missing ...
        EDIT_HELD = "edit_held", "Changed in FieldSync, not in QuickBooks"
        # ... or sent, and QuickBooks computed another total (its own sales tax).
        EDIT_DIFFERS = "edit_off", "Changed in FieldSync; QuickBooks' total differs"
        # A payment FieldSync did not export, keyed in QuickBooks against an invoice it did (inbound.py); local_key
        # is empty until it is brought in, then the FieldSync payment's id.
        RECORDED = "recorded", "Payment recorded in QuickBooks"
        # A customer's details (company, e-mail, phone, billing address) changed in QuickBooks by someone else.
        DETAILS = "details", "Customer details changed in QuickBooks"

    class State(models.TextChoices):
        OPEN = "open", "Open"
        RESOLVED = "resolved", "Resolved"

    class Resolution(models.TextChoices):
        ACCEPT = "accept", "QuickBooks' version accepted"
        RESEND = "resend", "FieldSync's sent again"
        IGNORE = "ignore", "Ignored"
        BRING_IN = "bring_in", "Brought into FieldSync"

    realm_id = models.CharField(max_length=32)
    kind = models.CharField(max_length=10, choices=QuickBooksMapping.Kind.choices)
    local_key = models.CharField(max_length=200, blank=True)
    qbo_id = models.CharField("QuickBooks Id", max_length=32)
    change = models.CharField(max_length=10, choices=Change.choices)
    ours = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    theirs = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    # How it was found: "webhook" or "cdc".
    found_by = models.CharField(max_length=10)
    detected_at = models.DateTimeField(auto_now_add=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.OPEN)
    # What a person decided (changes.change_resolve), who and when: the audit of the "Changed in QuickBooks" page.
    resolution = models.CharField(max_length=10, choices=Resolution.choices, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    note = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-detected_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["realm_id", "kind", "qbo_id", "change"],
                condition=Q(state="open"),
                name="qbo_change_one_open_per_object",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_change_display()}: {self.kind} {self.local_key} (QuickBooks {self.qbo_id})"


class QuickBooksCdcCheckpoint(models.Model):
    """Where the Change Data Capture sweep of one company and entity continues from (cdc.py)."""

    realm_id = models.CharField(max_length=32)
    entity = models.CharField(max_length=30)
    changed_since = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["realm_id", "entity"], name="qbo_cdc_checkpoint_unique")]

    def __str__(self) -> str:
        return f"CDC {self.entity} of {self.realm_id} since {self.changed_since:%Y-%m-%d %H:%M}"


class ReconciliationRun(models.Model):
    """One reconciliation of FieldSync against QuickBooks (reconciliation.py): every invoice and payment exported to
    the company with a transaction date (invoice date, payment date) in [date_from, date_to], read back from
    QuickBooks in batched queries and compared. Its rows say what matched and what did not."""

    class State(models.TextChoices):
        QUEUED = "queued", "Waiting to start"
        RUNNING = "running", "Reading QuickBooks"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    class Trigger(models.TextChoices):
        PAGE = "page", "Reconcile now"
        NIGHTLY = "nightly", "Nightly"
        COMMAND = "command", "Command line"

    realm_id = models.CharField(max_length=32)
    date_from = models.DateField()
    date_to = models.DateField()
    trigger = models.CharField(max_length=10, choices=Trigger.choices)
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    invoices_checked = models.PositiveIntegerField(default=0)
    payments_checked = models.PositiveIntegerField(default=0)
    discrepancies = models.PositiveIntegerField(default=0)
    # Requests sent to QuickBooks' metered read side (queries), retries after a 429 included.
    quickbooks_reads = models.PositiveIntegerField(default=0)
    # Why it failed, in plain words.
    message = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(date_from__lte=models.F("date_to")), name="reconciliation_range_order")
        ]

    def __str__(self) -> str:
        return f"Reconciliation #{self.pk} {self.date_from}..{self.date_to} ({self.state})"

    @property
    def finished(self) -> bool:
        return self.state in (self.State.DONE, self.State.FAILED)


class ReconciliationRow(models.Model):
    """One exported invoice or payment as FieldSync and QuickBooks each have it. `problems` lists the discrepancy
    codes (reconciliation.Problem), empty when everything matches; `explanation` says them for office staff."""

    run = models.ForeignKey(ReconciliationRun, on_delete=models.CASCADE, related_name="rows")
    kind = models.CharField(max_length=10, choices=QuickBooksMapping.Kind.choices)
    local_key = models.CharField(max_length=200)
    label = models.CharField(max_length=100)
    customer = models.CharField(max_length=200, blank=True)
    txn_date = models.DateField(null=True, blank=True)
    qbo_id = models.CharField("QuickBooks Id", max_length=32)
    ok = models.BooleanField()
    problems = models.JSONField(default=list, blank=True)
    explanation = models.TextField(blank=True)
    our_amount = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    qbo_amount = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    our_balance = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    qbo_balance = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    # Invoice rows: the customer; payment rows: the invoices it pays with amounts ("INV-1001 40.00; ...").
    our_links = models.TextField(blank=True)
    qbo_links = models.TextField(blank=True)

    class Meta:
        # The run's page and its CSV: discrepancies first, then matches, each in a stable order.
        indexes = [models.Index(fields=["run", "ok", "id"])]

    def __str__(self) -> str:
        return f"{self.label}: {'ok' if self.ok else ', '.join(self.problems)}"
