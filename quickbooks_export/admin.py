from django.contrib import admin

from quickbooks_export.models import (
    InvoiceExportHold,
    QuickBooksCompanyProfile,
    QuickBooksConnection,
    QuickBooksJobTypeTracking,
    QuickBooksMapping,
    QuickBooksMappingAudit,
    QuickBooksMappingSettings,
    QuickBooksPaymentMethodMapping,
    QuickBooksTaxCodeMapping,
    QuickBooksUnitTracking,
)


@admin.register(QuickBooksConnection)
class QuickBooksConnectionAdmin(admin.ModelAdmin):
    """Read-only history of connections. Tokens are never shown: connecting happens on the QuickBooks page."""

    list_display = ["realm_id", "company_name", "state", "connected_at", "connected_by", "disconnected_at"]
    list_filter = ["state"]
    search_fields = ["realm_id", "company_name"]
    fields = [
        "realm_id",
        "company_name",
        "state",
        "connected_at",
        "connected_by",
        "disconnected_at",
        "disconnected_by",
        "access_token_expires_at",
        "refresh_token_expires_at",
        "last_error",
        "last_error_at",
        "updated_at",
    ]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class QuickBooksPaymentMethodMappingInline(admin.TabularInline):
    model = QuickBooksPaymentMethodMapping
    extra = 0
    fields = ["method", "qbo_payment_method_id", "qbo_payment_method_name"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(QuickBooksMappingSettings)
class QuickBooksMappingSettingsAdmin(admin.ModelAdmin):
    """Read-only: the mapping is chosen on the QuickBooks page, from the company's live lists."""

    list_display = ["realm_id", "deposit_account_name", "income_account_name", "updated_at", "updated_by"]
    fields = [
        "realm_id",
        "deposit_account_id",
        "deposit_account_name",
        "income_account_id",
        "income_account_name",
        "updated_at",
        "updated_by",
    ]
    readonly_fields = fields
    inlines = [QuickBooksPaymentMethodMappingInline]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class _ReadOnlyAdmin(admin.ModelAdmin):
    """Export records change only through the services (the payment page's hold actions, the QuickBooks page)."""

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(InvoiceExportHold)
class InvoiceExportHoldAdmin(_ReadOnlyAdmin):
    list_display = ["invoice", "reason", "state", "our_total", "qbo_total", "qbo_balance", "checked_at", "released_by"]
    list_filter = ["state", "reason"]
    list_select_related = ["invoice", "released_by"]
    search_fields = ["invoice__number", "qbo_invoice_id"]


@admin.register(QuickBooksMapping)
class QuickBooksMappingAdmin(_ReadOnlyAdmin):
    list_display = ["kind", "local_key", "qbo_id", "qbo_name", "linked_existing", "realm_id", "updated_at"]
    list_filter = ["kind", "linked_existing"]
    search_fields = ["local_key", "qbo_id", "qbo_name"]


@admin.register(QuickBooksMappingAudit)
class QuickBooksMappingAuditAdmin(_ReadOnlyAdmin):
    list_display = ["at", "action", "kind", "local_key", "by", "note"]
    list_filter = ["action", "kind"]
    list_select_related = ["by"]


@admin.register(QuickBooksCompanyProfile)
class QuickBooksCompanyProfileAdmin(_ReadOnlyAdmin):
    list_display = [
        "realm_id",
        "country",
        "home_currency",
        "automated_sales_tax",
        "custom_txn_numbers",
        "class_tracking",
        "track_departments",
        "read_at",
    ]


@admin.register(QuickBooksUnitTracking)
class QuickBooksUnitTrackingAdmin(_ReadOnlyAdmin):
    """Chosen on the QuickBooks page (company.unit_tracking_update); read-only here."""

    list_display = ["realm_id", "business_unit", "class_name", "department_name", "updated_by", "updated_at"]
    list_select_related = ["business_unit", "updated_by"]


@admin.register(QuickBooksJobTypeTracking)
class QuickBooksJobTypeTrackingAdmin(_ReadOnlyAdmin):
    """Chosen on the QuickBooks page next to the unit's (tracking.job_type_tracking_update); read-only here."""

    list_display = ["realm_id", "job_type", "class_name", "department_name", "updated_by", "updated_at"]
    list_select_related = ["job_type", "updated_by"]


@admin.register(QuickBooksTaxCodeMapping)
class QuickBooksTaxCodeMappingAdmin(_ReadOnlyAdmin):
    list_display = ["realm_id", "tax_rate", "qbo_tax_code_id", "qbo_tax_code_name", "updated_at"]
    list_select_related = ["tax_rate"]
