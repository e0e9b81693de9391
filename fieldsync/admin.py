from django.contrib import admin

from .models import ApiClient


@admin.register(ApiClient)
class ApiClientAdmin(admin.ModelAdmin):
    """API clients are created with `manage.py create_api_client NAME` (which prints the token once). Here staff
    see them and can change scopes or revoke; only the token's prefix is ever shown, never the token or its hash."""

    list_display = ["name", "token_prefix", "can_write", "can_export", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["can_write", "can_export"]
    search_fields = ["name", "token_prefix"]
    fields = [
        "name",
        "token_prefix",
        "can_write",
        "can_export",
        "created_at",
        "created_by",
        "last_used_at",
        "revoked_at",
    ]
    readonly_fields = ["name", "token_prefix", "created_at", "created_by", "last_used_at"]

    def has_add_permission(self, request):
        return False  # a token must be shown once to whoever creates it: use the command
