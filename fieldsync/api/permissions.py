"""Who may call an operation.

API clients act through their scopes: every client reads, `write` posts customers, jobs, invoices, payments and
refunds, `export` requests QuickBooks exports. Staff users (session) need the same Django permissions as on the
staff pages (one of those listed). Each view says what it needs per HTTP method:

    client_scopes = {"GET": "read", "POST": "write"}
    staff_permissions = {"GET": ("billing.view_payment",), "POST": ("billing.add_payment",)}

A method a view does not list is refused (403): nothing is allowed by omission.
"""

from rest_framework import permissions

from fieldsync.models import ApiClient

EXPORT_PERMISSION = "quickbooks_export.export_payments"
# Changing QuickBooks links or records (the links page; a hold's "update" and "unlink").
MANAGE_QUICKBOOKS = "quickbooks_export.manage_quickbooks_connection"


class ApiPermission(permissions.BasePermission):
    message = "You are not allowed to do this."

    def has_permission(self, request, view) -> bool:
        method = "GET" if request.method in ("HEAD", "OPTIONS") else request.method
        if isinstance(request.auth, ApiClient):
            scope = getattr(view, "client_scopes", {}).get(method)
            if scope is None or not request.auth.has_scope(scope):
                self.message = (
                    f"The API client {request.auth.name!r} does not have the {scope!r} scope."
                    if scope
                    else "API clients cannot do this."
                )
                return False
            return True
        user = request.user
        if not (user and user.is_authenticated and user.is_active):
            return False
        required = getattr(view, "staff_permissions", {}).get(method)
        if required is None:
            return False
        if not any(user.has_perm(perm) for perm in required):
            self.message = f"You need the permission {' or '.join(required)}."
            return False
        return True
