"""Query filters of the list endpoints (django-filter). Invalid values are refused with 400, never ignored."""

import datetime

import django_filters
from django import forms
from django.db.models import Q
from django.utils import timezone
from django_filters.fields import IsoDateTimeField
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field

from billing.models import Invoice, Job, Payment, PaymentApplication
from billing.selectors import payment_filter_exportable, payment_filter_held

MAX_ID = 2**63 - 1


@extend_schema_field(OpenApiTypes.INT)
class IdFilter(django_filters.NumberFilter):
    """An id: an integer in the range of the column (a larger one is invalid input, not a database error)."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(*args, **kwargs)


class UtcIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 date-time, compared in UTC (PostgreSQL refuses offsets beyond ±15:59 that Python accepts)."""

    def to_python(self, value):
        value = super().to_python(value)
        if value is None:
            return None
        try:
            return value.astimezone(datetime.UTC) if timezone.is_aware(value) else value
        except OverflowError:
            raise forms.ValidationError("This date-time is out of range.", code="invalid") from None


class UtcDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcIsoDateTimeField


class CustomerFilter(django_filters.FilterSet):
    search = django_filters.CharFilter(method="filter_search", max_length=200, help_text="Part of the name or email.")
    email = django_filters.CharFilter(lookup_expr="iexact", max_length=254)
    created_after = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte")

    def filter_search(self, queryset, name, value):
        return queryset.filter(
            Q(display_name__icontains=value) | Q(company_name__icontains=value) | Q(email__icontains=value)
        )


class JobFilter(django_filters.FilterSet):
    customer = IdFilter(field_name="customer_id")
    status = django_filters.MultipleChoiceFilter(choices=Job.Status.choices)
    number = django_filters.CharFilter(max_length=30)


class InvoiceFilter(django_filters.FilterSet):
    customer = IdFilter(field_name="customer_id")
    status = django_filters.MultipleChoiceFilter(choices=Invoice.Status.choices)
    number = django_filters.CharFilter(max_length=21)
    job = django_filters.CharFilter(field_name="job__number", max_length=30, help_text="A job number.")
    issued_on_after = django_filters.DateFilter(field_name="issued_on", lookup_expr="gte")
    issued_on_before = django_filters.DateFilter(field_name="issued_on", lookup_expr="lte")


class PaymentFilter(django_filters.FilterSet):
    customer = IdFilter(field_name="customer_id")
    method = django_filters.MultipleChoiceFilter(choices=Payment.Method.choices)
    reference = django_filters.CharFilter(max_length=100)
    invoice = django_filters.CharFilter(
        method="filter_invoice", max_length=21, help_text="An invoice number: payments applied to it."
    )
    received_on_after = django_filters.DateFilter(field_name="received_on", lookup_expr="gte")
    received_on_before = django_filters.DateFilter(field_name="received_on", lookup_expr="lte")
    export_status = django_filters.MultipleChoiceFilter(choices=Payment.ExportStatus.choices)
    export_status_changed_after = UtcDateTimeFilter(
        field_name="export_status_changed_at",
        lookup_expr="gt",
        help_text="Follow exports: payments whose export status changed after this moment.",
    )
    exportable = django_filters.BooleanFilter(
        method="filter_exportable",
        help_text="true: payments the fully-paid rule lets go to QuickBooks; false: the ones it holds back.",
    )

    def filter_invoice(self, queryset, name, value):
        return queryset.filter(pk__in=PaymentApplication.objects.filter(invoice__number=value).values("payment_id"))

    def filter_exportable(self, queryset, name, value):
        return payment_filter_exportable(queryset) if value else payment_filter_held(queryset)
