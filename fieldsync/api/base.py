"""What every API view shares: JSON only, the permission rules, and who is acting."""

from rest_framework import exceptions
from rest_framework.generics import GenericAPIView
from rest_framework.metadata import SimpleMetadata
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from fieldsync.api.parsers import BoundedJSONParser
from fieldsync.api.permissions import ApiPermission
from fieldsync.api.throttling import ApiClientRateThrottle, StaffUserRateThrottle
from fieldsync.models import ApiClient


class ApiJSONRenderer(JSONRenderer):
    """JSON, UTF-8. Text a client sent that cannot be UTF-8 encoded (a lone surrogate echoed in an error message)
    is written with \\u escapes instead of failing the response."""

    def render(self, data, accepted_media_type=None, renderer_context=None):
        try:
            return super().render(data, accepted_media_type, renderer_context)
        except UnicodeEncodeError:
            escaping = JSONRenderer()
            escaping.ensure_ascii = True
            return escaping.render(data, accepted_media_type, renderer_context)


class ApiMetadata(SimpleMetadata):
    """OPTIONS: name, description, media types. The operations themselves are described by /api/schema/."""

    def determine_actions(self, request, view):
        return {}


class ApiMixin:
    metadata_class = ApiMetadata
    parser_classes = [BoundedJSONParser]
    renderer_classes = [ApiJSONRenderer]
    permission_classes = [ApiPermission]
    throttle_classes = [ApiClientRateThrottle, StaffUserRateThrottle]
    # See fieldsync.api.permissions: what an API client and a staff user need, per HTTP method.
    client_scopes: dict[str, str] = {"GET": "read", "POST": "write"}
    staff_permissions: dict[str, tuple[str, ...]] = {}

    def initial(self, request, *args, **kwargs):
        # A method the view does not implement is 405 for everyone, before authentication and permissions (which
        # would otherwise answer 401/403 and hide that the method simply does not exist here).
        method = request.method.lower()
        if method not in self.http_method_names or not hasattr(self, method):
            raise exceptions.MethodNotAllowed(request.method)
        super().initial(request, *args, **kwargs)


class ApiView(ApiMixin, APIView):
    pass


class ApiListView(ApiMixin, GenericAPIView):
    """A view with a filtered, cursor-paginated list (DEFAULT_FILTER_BACKENDS, DEFAULT_PAGINATION_CLASS)."""

    def list_page(self, request):
        """The current page of get_queryset(), filtered by the query string."""
        return self.paginate_queryset(self.filter_queryset(self.get_queryset()))


def actor(request) -> dict:
    """Who is acting, as services take it: a staff user, or an API client (no user: no person did it)."""
    if isinstance(request.auth, ApiClient):
        return {"user": None, "api_client": request.auth}
    return {"user": request.user, "api_client": None}
