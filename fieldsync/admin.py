from django.contrib import admin, messages

from fieldsync.exceptions import ApplicationError

from .api.tokens import api_client_revoke
from .models import ApiClient


@admin.register(ApiClient)
class ApiClientAdmin(admin.ModelAdmin):
    """API clients are created with `manage.py create_api_client NAME` (which prints the token once). Here staff
    see them, change the scopes of a live client, and revoke. Revocation goes through api_client_revoke and is
    irreversible: "Revoked at" is never editable (a revoked token stays dead; a new client is the way back). Only the
    token's prefix is ever shown, never the token or its hash."""

    list_display = ["name", "token_prefix", "can_write", "can_export", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["can_write", "can_export"]
    search_fields = ["name", "token_prefix"]
    fields = [
        "name",
        "token_prefix",
        "can_write",
        "can_export",
        "business_units",
        "created_at",
        "created_by",
        "last_used_at",
        "revoked_at",
    ]
    readonly_fields = ["name", "token_prefix", "created_at", "created_by", "last_used_at", "revoked_at"]
    filter_horizontal = ["business_units"]  # the units whose records it acts on (fieldsync.api.units)
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False  # a token must be shown once to whoever creates it: use the command

    def has_delete_permission(self, request, obj=None):
        return False  # deleting would erase who did what with the token; revoke instead

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.is_revoked:
            return self.fields  # nothing about a revoked client changes any more
        return self.readonly_fields

    @admin.action(description="Revoke the selected API clients (irreversible)", permissions=["change"])
    def revoke(self, request, queryset):
        for client in queryset:
            try:
                api_client_revoke(name=client.name)
            except ApplicationError as exc:
                self.message_user(request, exc.message, messages.WARNING)
            else:
                self.message_user(request, f"{client.name!r} is revoked; its token no longer works.", messages.SUCCESS)
