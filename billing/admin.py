"""Admin for every billing model. Balances and exportability are derived with the same selectors the export engine
uses, annotated on the list queryset (one query per page) or computed per page in one query.

The admin is for looking and for fixing master data (customers' names and addresses, jobs' titles and dates). It is
not a side door: invoices, payments, refunds and manual-handling items have export consequences (what QuickBooks
receives, "exported is final", a payment's customer = its invoices' customer), so they are created and changed only
through billing.services — on the staff pages and the API — and are view-only here, with no "Add" and no delete.
A job's number and customer are fixed once it exists (invoices point at it); so is a customer's business unit (its
records and QuickBooks company follow it), and a job's unit is its customer's.
"""

from django.contrib import admin
from django.db.models import Q

from . import services
from .models import (
    BusinessUnit,
    Customer,
    Invoice,
    InvoiceLine,
    Job,
    JobType,
    ManualHandlingItem,
    Payment,
    PaymentApplication,
    PaymentExportTransition,
    Refund,
    TaxRate,
)
from .money import format_money
from .selectors import invoice_with_balances, payment_export_readiness_map, payment_with_amounts


class ViewOnlyAdmin(admin.ModelAdmin):
    """A record only services may write: listed and shown, never added, changed or deleted here."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(TaxRate)
class TaxRateAdmin(admin.ModelAdmin):
    """Rates are listed here; invoices keep the tax computed when they were written (see billing.services)."""

    list_display = ["name", "percentage", "active", "created_at"]
    readonly_fields = ["name", "percentage", "created_at"]

    def has_add_permission(self, request):
        return False  # billing.services.tax_rate_create (API / seed) validates the percentage


@admin.register(BusinessUnit)
class BusinessUnitAdmin(admin.ModelAdmin):
    """Create a unit and say who its members are. Written through billing.services (business_unit_create /
    business_unit_update), as any other caller would; the slug names the unit for API clients and commands, so it
    is fixed once the unit exists."""

    list_display = ["name", "slug", "created_at"]
    prepopulated_fields = {"slug": ["name"]}
    filter_horizontal = ["members"]

    def get_readonly_fields(self, request, obj=None):
        return ["slug"] if obj is not None else []

    def get_prepopulated_fields(self, request, obj=None):
        return {} if obj is not None else self.prepopulated_fields

    def save_model(self, request, obj, form, change):
        pass  # written with its members in save_related, through the service

    def save_related(self, request, form, formsets, change):
        members = form.cleaned_data["members"]
        if change:
            services.business_unit_update(business_unit=form.instance, name=form.instance.name, members=members)
        else:
            unit = services.business_unit_create(name=form.instance.name, slug=form.instance.slug, members=members)
            # The admin goes on with its own instance (the message, the log entry, the redirect): it is this row.
            form.instance.pk, form.instance.created_at = unit.pk, unit.created_at
            form.instance._state.adding = False
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def has_delete_permission(self, request, obj=None):
        return False  # its records are PROTECTed; a unit is never deleted to "fix" books


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ["display_name", "company_name", "email", "phone", "billing_city", "business_unit"]
    list_filter = ["business_unit"]
    list_select_related = ["business_unit"]
    search_fields = ["display_name", "company_name", "email", "phone"]

    def get_readonly_fields(self, request, obj=None):
        return ["business_unit"] if obj is not None else []

    def has_delete_permission(self, request, obj=None):
        return False  # a customer may be in QuickBooks already; nothing is deleted to "fix" books


@admin.register(JobType)
class JobTypeAdmin(admin.ModelAdmin):
    """A unit's job types ("Repair", "Install"): written through billing.services (job_type_create /
    job_type_update). A type is made inactive, never deleted (jobs keep theirs); its unit is fixed."""

    list_display = ["name", "business_unit", "active", "created_at"]
    list_filter = ["business_unit", "active"]
    list_select_related = ["business_unit"]
    search_fields = ["name"]

    def get_readonly_fields(self, request, obj=None):
        return ["business_unit"] if obj is not None else []

    def save_model(self, request, obj, form, change):
        if change:
            saved = services.job_type_update(job_type=obj, name=obj.name, active=obj.active)
        else:
            saved = services.job_type_create(business_unit=obj.business_unit, name=obj.name, active=obj.active)
        obj.pk, obj.name, obj.created_at = saved.pk, saved.name, saved.created_at
        obj._state.adding = False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    """Jobs are written through billing.services (job_create / job_update), which keep the job's type one of its
    unit's active types; the form's own validation (Job.clean) says so in place first."""

    list_display = ["number", "title", "customer", "job_type", "status", "scheduled_on", "completed_on"]
    list_filter = ["status", "job_type"]
    search_fields = ["number", "title", "customer__display_name"]
    list_select_related = ["customer", "job_type"]
    raw_id_fields = ["customer"]

    def get_readonly_fields(self, request, obj=None):
        # Invoices of this job belong to its customer and QuickBooks knows it by number: both are fixed once saved.
        return ["number", "customer"] if obj is not None else []

    def get_exclude(self, request, obj=None):
        return ["business_unit"]  # always the customer's

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        field = form.base_fields.get("job_type")
        if field is not None:
            types = JobType.objects.select_related("business_unit")
            if obj is not None:  # the job's unit's types: those offered, and the one it has
                types = types.filter(business_unit_id=obj.business_unit_id).filter(
                    Q(active=True) | Q(pk=obj.job_type_id or 0)
                )
            else:
                types = types.filter(active=True)
            field.queryset = types
            field.label_from_instance = lambda job_type: f"{job_type.name} ({job_type.business_unit})"
        return form

    def save_model(self, request, obj, form, change):
        if change:
            fields = [name for name in services.JOB_EDITABLE_FIELDS if name in form.changed_data]
            saved = services.job_update(job=obj, **{name: getattr(obj, name) for name in fields})
        else:
            saved = services.job_create(
                customer=obj.customer,
                number=obj.number,
                title=obj.title,
                service_address=obj.service_address,
                scheduled_on=obj.scheduled_on,
                completed_on=obj.completed_on,
                status=obj.status,
                job_type=obj.job_type,
            )
        obj.pk, obj.business_unit_id, obj.created_at = saved.pk, saved.business_unit_id, saved.created_at
        obj._state.adding = False

    def has_delete_permission(self, request, obj=None):
        return False


class InvoiceLineInline(ReadOnlyInline):
    model = InvoiceLine
    fields = ["service_name", "description", "quantity", "unit_price", "amount", "taxable"]
    readonly_fields = fields


class InvoiceApplicationInline(ReadOnlyInline):
    model = PaymentApplication
    fields = ["payment", "amount", "created_at"]
    readonly_fields = fields
    verbose_name_plural = "payments applied"


@admin.register(Invoice)
class InvoiceAdmin(ViewOnlyAdmin):
    list_display = [
        "number",
        "customer",
        "status",
        "issued_on",
        "total_display",
        "paid_display",
        "open_display",
    ]
    list_filter = ["status", "issued_on"]
    search_fields = ["number", "customer__display_name"]
    list_select_related = ["customer"]
    raw_id_fields = ["customer", "job"]
    readonly_fields = [
        "status",
        "currency",
        "sales_tax",
        "tax_rate",
        "total_display",
        "paid_display",
        "open_display",
        "voided_at",
    ]
    inlines = [InvoiceLineInline, InvoiceApplicationInline]

    def get_queryset(self, request):
        return invoice_with_balances(super().get_queryset(request))

    @admin.display(description="Total", ordering="total")
    def total_display(self, obj):
        return format_money(obj.total, obj.currency)

    @admin.display(description="Paid", ordering="amount_paid")
    def paid_display(self, obj):
        return format_money(obj.amount_paid, obj.currency)

    @admin.display(description="Open balance", ordering="open_balance")
    def open_display(self, obj):
        return format_money(obj.open_balance, obj.currency)


class PaymentApplicationInline(ReadOnlyInline):
    model = PaymentApplication
    fields = ["invoice", "amount", "created_at"]
    readonly_fields = fields


class RefundInline(ReadOnlyInline):
    model = Refund
    fields = ["amount", "kind", "handling", "refunded_on", "method", "reason", "application"]
    readonly_fields = fields


class ExportTransitionInline(ReadOnlyInline):
    model = PaymentExportTransition
    fields = ["at", "from_status", "to_status", "note", "by"]
    readonly_fields = fields
    verbose_name_plural = "export status history"


@admin.register(Payment)
class PaymentAdmin(ViewOnlyAdmin):
    list_display = [
        "id",
        "customer",
        "amount_display",
        "method",
        "received_on",
        "export_status",
        "exportable_display",
        "held_reason_display",
    ]
    list_filter = ["export_status", "method", "received_on"]
    search_fields = ["customer__display_name", "reference", "applications__invoice__number"]
    list_select_related = ["customer"]
    raw_id_fields = ["customer"]
    readonly_fields = [
        "amount",
        "currency",
        "export_status",
        "export_status_changed_at",
        "export_reference",
        "applied_display",
        "unapplied_display",
        "refunded_display",
        "exportable_display",
        "held_reason_display",
    ]
    inlines = [PaymentApplicationInline, RefundInline, ExportTransitionInline]

    def get_queryset(self, request):
        return payment_with_amounts(super().get_queryset(request))

    def get_changelist_instance(self, request):
        # Work out the fully-paid rule for the whole page in one query, not one per row.
        changelist = super().get_changelist_instance(request)
        readiness = payment_export_readiness_map(payment_ids=[p.pk for p in changelist.result_list])
        for payment in changelist.result_list:
            payment._readiness = readiness[payment.pk]
        return changelist

    def _readiness(self, obj):
        if not hasattr(obj, "_readiness"):
            obj._readiness = payment_export_readiness_map(payment_ids=[obj.pk])[obj.pk]
        return obj._readiness

    @admin.display(description="Amount", ordering="amount")
    def amount_display(self, obj):
        return format_money(obj.amount, obj.currency)

    @admin.display(description="Applied")
    def applied_display(self, obj):
        return format_money(obj.amount_applied, obj.currency)

    @admin.display(description="Unapplied credit")
    def unapplied_display(self, obj):
        return format_money(obj.unapplied_credit, obj.currency)

    @admin.display(description="Refunded")
    def refunded_display(self, obj):
        return format_money(obj.amount_refunded, obj.currency)

    @admin.display(description="Exportable", boolean=True)
    def exportable_display(self, obj):
        return self._readiness(obj).exportable

    @admin.display(description="Held because")
    def held_reason_display(self, obj):
        return self._readiness(obj).held_reason or "—"  # plain text: the admin's CSP allows no inline style


@admin.register(Refund)
class RefundAdmin(ViewOnlyAdmin):
    list_display = ["id", "payment", "amount", "kind", "handling", "refunded_on", "method", "reason"]
    list_filter = ["kind", "handling"]
    list_select_related = ["payment"]
    readonly_fields = [
        "payment",
        "application",
        "amount",
        "kind",
        "handling",
        "refunded_on",
        "method",
        "reason",
        "created_by",
    ]


@admin.register(ManualHandlingItem)
class ManualHandlingItemAdmin(ViewOnlyAdmin):
    """Marked handled on the Needs manual handling page (billing.services.manual_item_mark_handled: note, who, when)."""

    list_display = [
        "id",
        "kind",
        "status",
        "customer",
        "amount",
        "quickbooks_reference",
        "created_at",
        "handled_by",
    ]
    list_filter = ["status", "kind"]
    list_select_related = ["customer", "handled_by"]
    readonly_fields = [
        "kind",
        "customer",
        "payment",
        "refund",
        "amount",
        "quickbooks_reference",
        "instructions",
        "created_at",
        "status",
        "handled_at",
        "handled_by",
        "handled_note",
    ]
