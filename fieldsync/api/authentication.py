"""`Authorization: Token <token>` (or `Bearer <token>`) for API clients. Staff keep Django's session (with CSRF)."""

from django.contrib.auth.models import AnonymousUser
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from fieldsync.api.tokens import InvalidToken, api_client_authenticate
from fieldsync.models import ApiClient

KEYWORDS = (b"token", b"bearer")


class ApiClientPrincipal(AnonymousUser):
    """request.user for a request made with an API token: authenticated, not a person, no Django permissions.

    Views pass `user=None` to services for it (nothing is attributed to a person) and `api_client=request.auth`.
    """

    def __init__(self, api_client: ApiClient):
        self.api_client = api_client
        self.username = f"api:{api_client.name}"

    @property
    def is_anonymous(self) -> bool:
        return False

    @property
    def is_authenticated(self) -> bool:
        return True

    def __str__(self) -> str:
        return self.username

    def has_perm(self, perm, obj=None) -> bool:
        return False  # API clients act through scopes (fieldsync.api.permissions), never through Django perms


class ApiTokenAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        parts = authentication.get_authorization_header(request).split()
        if not parts or parts[0].lower() not in KEYWORDS:
            return None  # not ours: the session may still authenticate the request
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(
                "Send the token as 'Authorization: Token <token>' (or Bearer).", code="invalid_token"
            )
        try:
            token = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("The API token is not valid.", code="invalid_token") from None
        try:
            client = api_client_authenticate(token=token)
        except InvalidToken as exc:
            raise exceptions.AuthenticationFailed(exc.message, code=exc.code) from None
        return ApiClientPrincipal(client), client

    def authenticate_header(self, request):
        # Makes DRF answer 401 (not 403) to a request without credentials: this class is listed first.
        return 'Bearer realm="FieldSync API"'


class ApiTokenAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "fieldsync.api.authentication.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "An API client's token, created with `manage.py create_api_client NAME` and shown once. "
                "Send it as `Authorization: Bearer <token>` or `Authorization: Token <token>`."
            ),
        }
