"""Project-wide middleware: the API's JSON 500 for errors outside DRF, and the Content-Security-Policy header."""

from django.conf import settings
from django.http import JsonResponse

from fieldsync.exceptions import server_error_payload


class ApiServerErrorMiddleware:
    """Under /api/, an exception that escapes DRF's handler (a middleware, URL resolution, a rendering error) is
    answered in the API's error shape, not with Django's HTML 500 page. Inside DRF views the exception handler
    (fieldsync.exceptions.api_exception_handler) already does this; this is the net under it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not request.path.startswith("/api/"):
            return None
        body, request_id = server_error_payload(exception, request)
        response = JsonResponse(body, status=500)
        response["X-Request-ID"] = request_id
        return response


class ContentSecurityPolicyMiddleware:
    """Send settings.FIELDSYNC_CONTENT_SECURITY_POLICY on every response that does not set its own.

    Our own ~15 lines rather than django-csp: the policy is one static string (no nonces: the pages have no inline
    script or style, and must keep it that way), Django 6.0 brings CSP built in, and a dependency for a header is
    more to keep than this. Empty setting: no header.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        policy = settings.FIELDSYNC_CONTENT_SECURITY_POLICY
        if policy and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = policy
        return response
