from django.contrib import admin

from quickbooks_export.models import QuickBooksConnection, QuickBooksMappingSettings, QuickBooksPaymentMethodMapping


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
