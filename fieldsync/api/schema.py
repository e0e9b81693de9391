"""OpenAPI for the API: every POST documents its Idempotency-Key, every operation its error responses.

The error responses share one component (`Error`: code, message, details), so clients and schemathesis can check
every answer against the schema, not only the happy ones.
"""

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers

from fieldsync.api.idempotency import HEADER, REPLAYED_HEADER


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable machine code, e.g. `invalid`, `over_application`.")
    message = serializers.CharField(help_text="What happened and what to do, for a person.")
    details = serializers.DictField(
        help_text=(
            'Per-field problems for invalid input ({"amount": [{"code": "float_not_allowed", "message": "..."}]}), '
            "or context of a refusal (e.g. the open balance)."
        )
    )

    class Meta:
        ref_name = "Error"


_ERRORS_BY_STATUS = {
    400: "Invalid input (see `details`), or a refusal by the rules of the business (see `code`).",
    401: "No credentials, or an unknown or revoked token (`code`: not_authenticated, invalid_token, token_revoked).",
    403: "Authenticated, but not allowed: a read-only client posting, a staff user without the permission, CSRF.",
    404: "No such object.",
    409: "Collides with the current state, or a request with the same Idempotency-Key is still being processed.",
    415: "The body must be JSON.",
    422: "The Idempotency-Key was already used for a different request (`code`: idempotency_key_reused).",
}

IDEMPOTENCY_KEY_PARAMETER = OpenApiParameter(
    name=HEADER,
    type=str,
    location=OpenApiParameter.HEADER,
    required=True,
    description=(
        "A new unique value (a UUID) per operation; send the same one when you retry it. The first response is "
        "stored for at least 24 hours: a retry with the same key and body gets it again (with "
        f"`{REPLAYED_HEADER}: true`) and nothing is done twice. The same key with another body is refused (422)."
    ),
    pattern=r"^[\x21-\x7e]{1,255}$",
)

REPLAYED_PARAMETER = OpenApiParameter(
    name=REPLAYED_HEADER,
    type=str,
    location=OpenApiParameter.HEADER,
    response=[200, 201, 202, 400, 404, 409],
    enum=["true"],
    description="Present when this is the stored response of an earlier request with the same Idempotency-Key.",
)


class ApiAutoSchema(AutoSchema):
    def _is_api(self) -> bool:
        return self.path.startswith("/api/v1/")

    def get_override_parameters(self):
        parameters = list(super().get_override_parameters())
        if self._is_api() and self.method == "POST":
            parameters += [IDEMPOTENCY_KEY_PARAMETER, REPLAYED_PARAMETER]
        return parameters

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if not self._is_api():
            return responses
        statuses = [400, 401, 403]
        if "{" in self.path:
            statuses.append(404)
        if self.method == "POST":
            statuses += [409, 415, 422]
        for status in statuses:
            if str(status) not in responses:
                error = OpenApiResponse(ErrorSerializer, description=_ERRORS_BY_STATUS[status])
                responses[str(status)] = self._get_response_for_code(error, str(status), direction=direction)
        return dict(sorted(responses.items()))
