"""Business units in the API: a caller sees and writes the records of its units only.

An API client acts on the units it was given (ApiClient.business_units; while the installation has one unit, on that
one), a staff user on the units they see on the pages (billing.selectors.business_units_visible). For the caller,
another unit's record does not exist: a URL naming it is 404, a body naming it gets the answer an unknown id gets
(telling them apart would say that the id exists elsewhere). A create takes the caller's unit; a caller with several
names it (`business_unit`, its slug). Every helper here composes into the view's own query: no query of its own.
"""

from django.db.models import Q, QuerySet
from django.db.models.expressions import RawSQL
from rest_framework import serializers

from billing.models import BusinessUnit
from billing.selectors import business_units_visible
from fieldsync.models import ApiClient
from quickbooks_export.selectors import in_companies_of

# The units an API client acts on, as SQL to compose: its own, or the only unit while there is one. Written out
# rather than built from Exists() querysets: every scoped request composes it (the payment POST's invoice reference,
# the lists), and building those querysets cost Django ~2 ms of CPU per request. One placeholder: the client's id.
_CLIENT_UNIT_IDS_SQL = (
    "SELECT u.id FROM billing_businessunit u"
    " WHERE NOT EXISTS (SELECT 1 FROM billing_businessunit o WHERE o.id <> u.id)"
    " OR EXISTS (SELECT 1 FROM fieldsync_apiclient_business_units g"
    " WHERE g.businessunit_id = u.id AND g.apiclient_id = %s)"
)


def _unit_ids_of(request) -> RawSQL | QuerySet:
    """The ids of the units the caller acts on, as a subquery (for `<field>__in`)."""
    if isinstance(request.auth, ApiClient):
        return RawSQL(_CLIENT_UNIT_IDS_SQL, (request.auth.pk,))  # noqa: S611 - a constant, the id a parameter
    return business_units_visible(request.user).values("pk")


def units_of(request) -> QuerySet[BusinessUnit]:
    """The units the caller acts on (a query to compose)."""
    if isinstance(request.auth, ApiClient):
        return BusinessUnit.objects.filter(pk__in=_unit_ids_of(request))
    return business_units_visible(request.user)


def in_units(queryset: QuerySet, request, *, field: str = "business_unit") -> QuerySet:
    """`queryset` narrowed to the caller's units: another unit's record is not there."""
    return queryset.filter(**{f"{field}__in": _unit_ids_of(request)})


def in_units_companies(request, *, field: str = "realm_id") -> Q:
    """A filter for rows keyed by QuickBooks company (export batches): those of the caller's units' companies."""
    return in_companies_of(units_of(request).values("pk"), field=field)


def unit_for_create(request, named: BusinessUnit | None) -> BusinessUnit:
    """The unit a record created by the caller goes into: the one named (a BusinessUnitField, so one of the
    caller's), else the caller's only unit. Raises ValidationError (required) when the caller has several or none."""
    if named is not None:
        return named
    units = list(units_of(request)[:2])
    if len(units) == 1:
        return units[0]
    message = (
        "You act on several business units; say which one this is for (`business_unit`, its slug)."
        if units
        else "You act on no business unit; ask for one to be given to you."
    )
    raise serializers.ValidationError({"business_unit": [message]}, code="required")


class UnitScopedMixin:
    """For a reference field of an input serializer: it finds only rows of the caller's business units (the
    serializer's context carries the request; without one it finds nothing, so a view that forgot cannot leak)."""

    unit_field = "business_unit"

    def get_queryset(self):
        queryset = super().get_queryset()
        request = self.context.get("request")
        return in_units(queryset, request, field=self.unit_field) if request is not None else queryset.none()


class BusinessUnitField(serializers.SlugRelatedField):
    """One of the caller's business units, by slug; another unit is as unknown as a unit that does not exist."""

    default_error_messages = {
        "does_not_exist": "You act on no business unit {slug_name}={value}.",
        "invalid": "A business unit is named by its slug, as text.",
    }

    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", "The business unit's slug; required when you act on several.")
        super().__init__(slug_field="slug", queryset=BusinessUnit.objects.all(), **kwargs)

    def get_queryset(self):
        request = self.context.get("request")
        return units_of(request) if request is not None else BusinessUnit.objects.none()
