"""The billing domain: customers, jobs, invoices and their lines, payments applied to invoices, and refunds.

Amounts that can be derived are never stored twice: an invoice's total is its lines plus tax, what is paid is the
applications minus their refunds, the open balance is the difference (see billing.selectors). Every write goes
through billing.services.
"""

from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower

MONEY = {"max_digits": 12, "decimal_places": 2}

# Invoice and job numbers appear in URLs (/api/v1/invoices/{number}/), page links, QuickBooks' DocNumber and its
# query language. The safe set: ASCII letters and digits, then also "-", "_" and "." (no "/", "?", "#", "%", spaces
# or quotes), starting with a letter or digit (so never "." or ".."). "INV-1042", "2026.11-7", "S_00004242" fit.
NUMBER_CHARACTERS = "letters A-Z and a-z, digits 0-9, and - _ . (starting with a letter or digit)"
validate_number = RegexValidator(
    r"\A[A-Za-z0-9][A-Za-z0-9._-]*\Z",
    message=f"A number may contain only {NUMBER_CHARACTERS}.",
    code="invalid_number",
)


def _clean_number(instance) -> None:
    """Run validate_number in full_clean() (kept out of the field's validators so no migration is needed)."""
    if not instance.number:
        return  # the field's own "required" error says it
    try:
        validate_number(instance.number)
    except ValidationError as exc:
        raise ValidationError({"number": exc.messages}) from None


def _default_currency() -> str:
    return settings.FIELDSYNC_CURRENCY


class BusinessUnit(models.Model):
    """A store, franchise or location that keeps its own books: one QuickBooks company per unit.

    Customers, jobs, invoices and payments belong to exactly one unit (a job's, invoice's and payment's unit is always
    its customer's; billing.services keeps that true). Everything QuickBooks-side follows from the unit's connection
    (mappings, settings, limits, export log are keyed by its company's realm). An installation starts with one unit,
    and with one unit nothing about units shows anywhere.
    """

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=100, unique=True)
    # Staff who see and act on the unit's records (with their permissions). Superusers see every unit; while there
    # is only one unit, every staff user acts on it (see billing.selectors.business_units_visible).
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="business_units")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name


def _only_unit() -> "BusinessUnit":
    from .services import business_unit_default  # services import this module

    return business_unit_default()


def _clean_unit_is_customers(instance) -> None:
    """A job's, invoice's or payment's unit is its customer's (the database cannot say it across two tables)."""
    if (
        instance.customer_id
        and instance.business_unit_id
        and instance.business_unit_id != instance.customer.business_unit_id
    ):
        raise ValidationError(
            {"business_unit": f"{instance.customer} belongs to {instance.customer.business_unit}; so must this."}
        )


class Customer(models.Model):
    business_unit = models.ForeignKey(BusinessUnit, on_delete=models.PROTECT, related_name="customers")
    display_name = models.CharField(max_length=200)
    company_name = models.CharField(max_length=200, blank=True)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=40, blank=True)
    billing_line1 = models.CharField("billing address", max_length=200, blank=True)
    billing_line2 = models.CharField("billing address (line 2)", max_length=200, blank=True)
    billing_city = models.CharField("city", max_length=100, blank=True)
    billing_region = models.CharField("state / region", max_length=100, blank=True)
    billing_postal_code = models.CharField("postal code", max_length=20, blank=True)
    billing_country = models.CharField("country", max_length=2, blank=True, default="US")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["display_name", "id"]
        indexes = [models.Index(fields=["email"]), models.Index(fields=["display_name"])]

    def __str__(self) -> str:
        return self.display_name

    def save(self, *args, **kwargs) -> None:
        # Saved without a unit (a caller from before units, a test's direct create): the only unit, so nothing that
        # worked with one unit breaks; with several, business_unit_default refuses.
        if self.business_unit_id is None:
            self.business_unit = _only_unit()
        super().save(*args, **kwargs)


class JobType(models.Model):
    """The kind of work a job is ("Repair", "Install", "Maintenance"), a short list each business unit keeps for
    itself. Names are unique within a unit whatever their case. A type no longer offered is made inactive, never
    deleted: jobs keep it (and its QuickBooks class / location, chosen on the QuickBooks page, follows their
    invoices), but no new job takes it."""

    business_unit = models.ForeignKey(BusinessUnit, on_delete=models.PROTECT, related_name="job_types")
    name = models.CharField(max_length=80)
    active = models.BooleanField(default=True, help_text="Offered for new jobs.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(
                "business_unit",
                Lower("name"),
                name="job_type_name_unique_per_unit",
                violation_error_message="This business unit already has a job type of that name.",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Job(models.Model):
    class Status(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled"
        IN_PROGRESS = "in_progress", "In progress"
        COMPLETED = "completed", "Completed"
        CANCELLED = "cancelled", "Cancelled"

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="jobs")
    business_unit = models.ForeignKey(BusinessUnit, on_delete=models.PROTECT, related_name="jobs")
    number = models.CharField(max_length=30, unique=True)
    title = models.CharField(max_length=200)
    service_address = models.CharField(max_length=300, blank=True)
    scheduled_on = models.DateField(null=True, blank=True)
    completed_on = models.DateField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.SCHEDULED)
    # One of its unit's job types (optional); its invoices carry that type's QuickBooks class / location, if chosen.
    job_type = models.ForeignKey(JobType, on_delete=models.PROTECT, null=True, blank=True, related_name="jobs")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.number} {self.title}"

    def save(self, *args, **kwargs) -> None:
        if self.business_unit_id is None and self.customer_id is not None:
            self.business_unit_id = self.customer.business_unit_id  # always the customer's unit
        super().save(*args, **kwargs)

    def clean(self) -> None:
        _clean_number(self)
        _clean_unit_is_customers(self)
        unit_id = self.business_unit_id or (self.customer.business_unit_id if self.customer_id else None)
        if self.job_type_id and unit_id and self.job_type.business_unit_id != unit_id:
            # Said as for a type that does not exist: another unit's list is not this unit's business.
            raise ValidationError({"job_type": "This business unit has no such job type."})


class TaxRate(models.Model):
    """A sales tax rate the business charges ("Chicago, IL 10.25%"). An invoice with a rate has its tax computed from
    it: each taxable line's amount times the percentage, rounded half up to the cent, added up (as QuickBooks does).
    In QuickBooks the rate becomes the tax code chosen for it on the QuickBooks page."""

    name = models.CharField(max_length=100, unique=True)
    percentage = models.DecimalField(max_digits=7, decimal_places=4, help_text="e.g. 10.2500 for 10.25%")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(percentage__gte=0) & Q(percentage__lte=100), name="tax_rate_percentage_0_to_100"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.percentage.normalize():f}%)"


class Invoice(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        OPEN = "open", "Open"
        PAID = "paid", "Paid"
        VOID = "void", "Void"

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="invoices")
    business_unit = models.ForeignKey(BusinessUnit, on_delete=models.PROTECT, related_name="invoices")
    job = models.ForeignKey(Job, on_delete=models.PROTECT, related_name="invoices", null=True, blank=True)
    # QuickBooks' DocNumber holds 21 characters at most, and ours becomes it.
    number = models.CharField(max_length=21, unique=True)
    issued_on = models.DateField(null=True, blank=True)
    due_on = models.DateField(null=True, blank=True)
    currency = models.CharField(max_length=3, default=_default_currency)
    # OPEN <-> PAID follows the balance and is kept in step by billing.services under the invoice's row lock.
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    # The tax charged. With a tax rate it is computed (see billing.services.invoice_tax_compute); invoices made before
    # rates existed carry the amount only, and stay valid.
    sales_tax = models.DecimalField(**MONEY, default=Decimal("0.00"))
    tax_rate = models.ForeignKey(TaxRate, on_delete=models.PROTECT, related_name="invoices", null=True, blank=True)
    memo = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    voided_at = models.DateTimeField(null=True, blank=True)
    # When its lines, tax or dates last changed after it was issued (billing.services.invoice_edit). For an invoice
    # already in QuickBooks this is "changed since export": the export app, told after the commit, sends the change
    # (or flags why it cannot; docs/changes_after_export.md).
    changed_at = models.DateTimeField("changed after issue", null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=Q(sales_tax__gte=0), name="invoice_sales_tax_not_negative"),
        ]
        indexes = [models.Index(fields=["status"])]

    def __str__(self) -> str:
        return self.number

    def save(self, *args, **kwargs) -> None:
        if self.business_unit_id is None and self.customer_id is not None:
            self.business_unit_id = self.customer.business_unit_id  # always the customer's unit
        super().save(*args, **kwargs)

    def clean(self) -> None:
        _clean_number(self)
        _clean_unit_is_customers(self)


class InvoiceLine(models.Model):
    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveSmallIntegerField(default=0)
    # The service sold; it becomes a QuickBooks Service item of the same name.
    service_name = models.CharField(max_length=100)
    description = models.CharField(max_length=500, blank=True)
    quantity = models.DecimalField(max_digits=10, decimal_places=2, default=Decimal("1.00"))
    unit_price = models.DecimalField(**MONEY)
    # quantity × unit price rounded half up to cents when the line is written (what the customer was billed).
    amount = models.DecimalField(**MONEY)
    # Whether sales tax applies to this line (US QuickBooks: TaxCodeRef TAX or NON).
    taxable = models.BooleanField(default=True)

    class Meta:
        ordering = ["invoice_id", "position", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="invoice_line_quantity_positive"),
            models.CheckConstraint(condition=Q(unit_price__gte=0), name="invoice_line_unit_price_not_negative"),
            models.CheckConstraint(condition=Q(amount__gte=0), name="invoice_line_amount_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.service_name} × {self.quantity}"


class Payment(models.Model):
    class Method(models.TextChoices):
        CASH = "cash", "Cash"
        CHECK = "check", "Check"
        CARD = "card", "Card"
        ACH = "ach", "ACH"
        OTHER = "other", "Other"

    class ExportStatus(models.TextChoices):
        NOT_EXPORTED = "not_exported", "Not exported"
        QUEUED = "queued", "Queued"
        EXPORTING = "exporting", "Exporting"
        EXPORTED = "exported", "Exported"
        FAILED = "failed", "Failed"
        EXPORTED_MANUALLY = "exported_manually", "Exported by hand"
        EXCLUDED = "excluded", "Do not export"
        # QuickBooks' invoice cannot take the payment as it is (another total, too small a balance, gone): nothing of
        # the invoice was posted, and a person decides (see quickbooks_export.models.InvoiceExportHold).
        ON_HOLD = "on_hold", "On hold"
        # Keyed in QuickBooks and brought into FieldSync from there (origin QUICKBOOKS): it is in QuickBooks already,
        # so it is never exported. Final, like EXPORTED.
        IN_QUICKBOOKS = "in_quickbooks", "Recorded in QuickBooks"

    class Origin(models.TextChoices):
        FIELDSYNC = "fieldsync", "Recorded in FieldSync"
        # Keyed in QuickBooks against an invoice FieldSync exported, and brought in from there.
        QUICKBOOKS = "quickbooks", "Recorded in QuickBooks"

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="payments")
    business_unit = models.ForeignKey(BusinessUnit, on_delete=models.PROTECT, related_name="payments")
    amount = models.DecimalField(**MONEY)
    currency = models.CharField(max_length=3, default=_default_currency)
    method = models.CharField(max_length=10, choices=Method.choices)
    # A check number, a card processor's charge id, an ACH trace number.
    reference = models.CharField(max_length=100, blank=True)
    received_on = models.DateField()
    memo = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    # Driven by the export engine through billing.services.payment_export_status_transition only.
    export_status = models.CharField(max_length=20, choices=ExportStatus.choices, default=ExportStatus.NOT_EXPORTED)
    export_status_changed_at = models.DateTimeField(null=True, blank=True)
    # Where the payment lives in QuickBooks once exported (its QuickBooks Id), for people and refund flags.
    export_reference = models.CharField(max_length=100, blank=True)
    # Where the payment was recorded. One brought in from QuickBooks is IN_QUICKBOOKS from the start and stays so.
    origin = models.CharField(max_length=10, choices=Origin.choices, default=Origin.FIELDSYNC)

    class Meta:
        ordering = ["-received_on", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="payment_amount_positive"),
            # Recorded in QuickBooks <=> never exported from here: the two fields can never disagree.
            models.CheckConstraint(
                condition=(Q(origin="quickbooks") & Q(export_status="in_quickbooks"))
                | (Q(origin="fieldsync") & ~Q(export_status="in_quickbooks")),
                name="payment_origin_matches_export_status",
            ),
        ]
        indexes = [
            models.Index(fields=["export_status"]),
            models.Index(fields=["received_on", "id"]),
        ]

    def __str__(self) -> str:
        return f"Payment #{self.pk} {self.amount} {self.currency}"

    def save(self, *args, **kwargs) -> None:
        if self.business_unit_id is None and self.customer_id is not None:
            self.business_unit_id = self.customer.business_unit_id  # always the customer's unit
        super().save(*args, **kwargs)

    def clean(self) -> None:
        _clean_unit_is_customers(self)


class PaymentApplication(models.Model):
    """The part of a payment applied to one invoice. What is not applied is the customer's unapplied credit."""

    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="applications")
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="applications")
    amount = models.DecimalField(**MONEY)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="application_amount_positive"),
            models.UniqueConstraint(fields=["payment", "invoice"], name="application_unique_payment_invoice"),
        ]

    def __str__(self) -> str:
        return f"{self.amount} of payment #{self.payment_id} to {self.invoice_id}"


class Refund(models.Model):
    """Money given back from a payment, and what it means (its kind, chosen by the person recording it).

    - NO_LONGER_OWED (goodwill, price adjustment, cancelled work): comes out of an application and writes an
      InvoiceCredit of the same amount, so the invoice stays settled. In QuickBooks it is always its own transaction
      (a Refund Receipt): the payment goes there as received.
    - REVERSAL (bounced check, chargeback, wrong charge): comes out of an application and re-opens that invoice.
    - UNAPPLIED_CREDIT (an overpayment returned): comes out of the payment's unapplied credit; no invoice changes.

    `handling` says, once, how QuickBooks learns about it: NETTED refunds are taken out of what the export posts (the
    payment was not in QuickBooks when the refund was recorded); QUICKBOOKS refunds are entered there as their own
    transaction, through a ManualHandlingItem. Never both. See docs/refunds.md.
    """

    class Kind(models.TextChoices):
        NO_LONGER_OWED = "no_longer_owed", "Money returned, no longer owed (goodwill, price adjustment, cancelled work)"
        REVERSAL = "reversal", "Payment reversed, still owed (bounced check, chargeback, wrong charge)"
        UNAPPLIED_CREDIT = "unapplied_credit", "Overpayment returned (from the payment's unapplied credit)"

    class Handling(models.TextChoices):
        NETTED = "netted", "Taken out of what FieldSync exports"
        QUICKBOOKS = "quickbooks", "Entered in QuickBooks as its own transaction"

    class Method(models.TextChoices):
        CASH = "cash", "Cash"
        CHECK = "check", "Check"
        CARD = "card", "Card (to the original card)"
        ACH = "ach", "ACH"
        OTHER = "other", "Other"

    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="refunds")
    application = models.ForeignKey(
        PaymentApplication, on_delete=models.PROTECT, related_name="refunds", null=True, blank=True
    )
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.REVERSAL)
    handling = models.CharField(max_length=20, choices=Handling.choices, default=Handling.NETTED)
    amount = models.DecimalField(**MONEY)
    reason = models.CharField(max_length=300)
    refunded_on = models.DateField()
    method = models.CharField(max_length=10, choices=Method.choices)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-refunded_on", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="refund_amount_positive"),
            # Unapplied credit has no invoice; the two other kinds always come out of one.
            models.CheckConstraint(
                condition=Q(kind="unapplied_credit", application__isnull=True)
                | (~Q(kind="unapplied_credit") & Q(application__isnull=False)),
                name="refund_kind_matches_source",
            ),
            # A refund the customer no longer owes is always a QuickBooks transaction of its own (a Refund Receipt).
            models.CheckConstraint(
                condition=~Q(kind="no_longer_owed") | Q(handling="quickbooks"),
                name="refund_no_longer_owed_in_quickbooks",
            ),
        ]

    def __str__(self) -> str:
        return f"Refund #{self.pk} of {self.amount} from payment #{self.payment_id}"

    @property
    def quickbooks_status(self) -> str:
        """Where QuickBooks stands on this refund: "netted" (taken out of what the export posts), "to_enter"
        (a manual-handling item is open), "recorded" (FieldSync entered it), "entered" (a person did).
        Uses the manual item: select_related("manual_item") in lists."""
        if self.handling == self.Handling.NETTED:
            return "netted"
        item = getattr(self, "manual_item", None)
        if item is None or item.status == ManualHandlingItem.Status.OPEN:
            return "to_enter"
        return "recorded" if item.handled_quickbooks_id else "entered"

    @property
    def quickbooks_status_label(self) -> str:
        return {
            "netted": "Taken out of what FieldSync exports",
            "to_enter": "To enter in QuickBooks",
            "recorded": "Recorded in QuickBooks by FieldSync",
            "entered": "Entered in QuickBooks",
        }[self.quickbooks_status]


class InvoiceCredit(models.Model):
    """Part of an invoice the customer no longer owes (a credit on the invoice, like QuickBooks' credit memo).

    Written once, with the refund that gave the money back; never edited. It keeps the invoice settled: the open
    balance is total − credits − what is paid.
    """

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="credits")
    refund = models.OneToOneField(Refund, on_delete=models.PROTECT, related_name="invoice_credit")
    amount = models.DecimalField(**MONEY)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="invoice_credit_amount_positive")]

    def __str__(self) -> str:
        return f"Credit of {self.amount} on {self.invoice_id}"


class PaymentExportTransition(models.Model):
    """History of a payment's export status: every move, when, and why."""

    payment = models.ForeignKey(Payment, on_delete=models.CASCADE, related_name="export_transitions")
    from_status = models.CharField(max_length=20, choices=Payment.ExportStatus.choices)
    to_status = models.CharField(max_length=20, choices=Payment.ExportStatus.choices)
    note = models.CharField(max_length=500, blank=True)
    at = models.DateTimeField(auto_now_add=True)
    by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"#{self.payment_id}: {self.from_status} → {self.to_status}"


class ManualHandlingItem(models.Model):
    """Something FieldSync will not do in QuickBooks by itself, waiting for a person to do it and say so.

    Items are never deleted: once handled they stay, with who, when and the note.
    """

    class Kind(models.TextChoices):
        REFUND_OF_EXPORTED_PAYMENT = "refund_of_exported_payment", "Refund of a payment already in QuickBooks"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        HANDLED = "handled", "Handled"

    kind = models.CharField(max_length=40, choices=Kind.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="+")
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="manual_items")
    refund = models.OneToOneField(Refund, on_delete=models.PROTECT, related_name="manual_item", null=True, blank=True)
    amount = models.DecimalField(**MONEY)
    # The original payment's QuickBooks Id (kept up to date: empty while the payment is still on its way there, or
    # when it was keyed in by hand without saying its id).
    quickbooks_reference = models.CharField(max_length=100, blank=True)
    instructions = models.TextField()
    # The QuickBooks transaction that handled it, when FieldSync recorded it ("Record it in QuickBooks for me").
    handled_quickbooks_id = models.CharField(max_length=100, blank=True)
    # Closed by FieldSync itself (the payment turned out not to be in QuickBooks), not by a person.
    resolved_automatically = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    handled_at = models.DateTimeField(null=True, blank=True)
    handled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    handled_note = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(status="open") | (Q(handled_at__isnull=False) & ~Q(handled_note="")),
                name="manual_item_handled_has_time_and_note",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk}"
