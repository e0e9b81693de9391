"""The filters of the Payments page (django-filter), written so a page of 50 stays cheap over 100,000 payments.

The page is ordered by (received_on, id), which has an index. Every filter here is written so the database can walk
that index and stop after one page: the export status is filtered as "not any other status" (an equality on the
status would make SQLite and PostgreSQL pick the status index and then sort every payment of that status, evaluating
the fully-paid rule's subqueries on all of them before returning 50).
"""

import django_filters
from django import forms
from django.db.models import Q, QuerySet

from billing.models import Payment, PaymentApplication
from billing.selectors import payment_filter_exportable, payment_filter_held

ExportStatus = Payment.ExportStatus

# What a person filters by, and which export statuses each means. "ready" and "held" also apply the fully-paid rule.
STATUS_CHOICES = [
    ("ready", "Ready to export"),
    ("held", "Held"),
    ("queued", "Queued or exporting"),
    ("failed", "Failed"),
    ("on_hold", "On hold (QuickBooks differs)"),
    ("exported", "Exported"),
    ("excluded", "Do not export"),
]
STATUS_EXPORT_STATUSES: dict[str, frozenset[str]] = {
    "ready": frozenset({ExportStatus.NOT_EXPORTED}),
    "held": frozenset({ExportStatus.NOT_EXPORTED}),
    "queued": frozenset({ExportStatus.QUEUED, ExportStatus.EXPORTING}),
    "failed": frozenset({ExportStatus.FAILED}),
    "on_hold": frozenset({ExportStatus.ON_HOLD}),
    "exported": frozenset({ExportStatus.EXPORTED, ExportStatus.EXPORTED_MANUALLY, ExportStatus.IN_QUICKBOOKS}),
    "excluded": frozenset({ExportStatus.EXCLUDED}),
}
STATUS_LABELS = dict(STATUS_CHOICES)


def _export_status_in(queryset: QuerySet[Payment], statuses: frozenset[str]) -> QuerySet[Payment]:
    """`export_status IN statuses`, spelled as `NOT IN (every other status)` so the ordering index stays usable."""
    others = sorted(set(ExportStatus.values) - statuses)
    return queryset.exclude(export_status__in=others)


class _DateInput(forms.DateInput):
    input_type = "date"


class PaymentFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(
        method="filter_search",
        label="Search",
        widget=forms.TextInput(attrs={"placeholder": "Customer, reference or invoice number", "type": "search"}),
    )
    status = django_filters.ChoiceFilter(
        choices=STATUS_CHOICES, method="filter_status", label="Status", empty_label="Any status"
    )
    method = django_filters.ChoiceFilter(choices=Payment.Method.choices, label="Method", empty_label="Any method")
    received_from = django_filters.DateFilter(
        field_name="received_on",
        lookup_expr="gte",
        label="Received from",
        widget=_DateInput(attrs={"aria-label": "Received from"}),
    )
    received_to = django_filters.DateFilter(
        field_name="received_on", lookup_expr="lte", label="to", widget=_DateInput(attrs={"aria-label": "Received to"})
    )
    amount_min = django_filters.NumberFilter(
        field_name="amount",
        lookup_expr="gte",
        label="Amount from",
        widget=forms.NumberInput(
            attrs={"step": "0.01", "min": "0", "placeholder": "0.00", "aria-label": "Amount from"}
        ),
    )
    amount_max = django_filters.NumberFilter(
        field_name="amount",
        lookup_expr="lte",
        label="to",
        widget=forms.NumberInput(attrs={"step": "0.01", "min": "0", "placeholder": "any", "aria-label": "Amount to"}),
    )
    # One customer, chosen from a row's "only this customer" link (a drop-down of every customer would not scale).
    customer = django_filters.NumberFilter(field_name="customer_id", widget=forms.HiddenInput())

    class Meta:
        model = Payment
        fields: list[str] = []

    def filter_status(self, queryset: QuerySet[Payment], name: str, value: str) -> QuerySet[Payment]:
        queryset = _export_status_in(queryset, STATUS_EXPORT_STATUSES[value])
        if value == "ready":
            return payment_filter_exportable(queryset)
        if value == "held":
            return payment_filter_held(queryset)
        return queryset

    def filter_search(self, queryset: QuerySet[Payment], name: str, value: str) -> QuerySet[Payment]:
        value = value.strip()
        if not value:
            return queryset
        on_invoice = PaymentApplication.objects.filter(invoice__number__icontains=value).values("payment_id")
        match = (
            Q(customer__display_name__icontains=value)
            | Q(customer__company_name__icontains=value)
            | Q(reference__icontains=value)
            | Q(pk__in=on_invoice)
        )
        number = value.removeprefix("#")
        if number.isdigit() and len(number) < 19:
            match |= Q(pk=int(number))
        return queryset.filter(match)

    def describe(self) -> str:
        """The active filters in words, for a batch's `selection` ("status ready to export, method check")."""
        if not self.is_bound or not self.form.is_valid():
            return ""
        data = self.form.cleaned_data
        parts = []
        if data.get("status"):
            parts.append(f"status {STATUS_LABELS[data['status']].lower()}")
        if data.get("q"):
            parts.append(f'search "{data["q"].strip()}"')
        if data.get("method"):
            parts.append(f"method {Payment.Method(data['method']).label.lower()}")
        if data.get("received_from") or data.get("received_to"):
            parts.append(f"received {data.get('received_from') or '…'} to {data.get('received_to') or '…'}")
        if data.get("amount_min") is not None or data.get("amount_max") is not None:
            low = data.get("amount_min")
            high = data.get("amount_max")
            parts.append(f"amount {low if low is not None else '…'} to {high if high is not None else '…'}")
        if data.get("customer"):
            parts.append(f"customer #{int(data['customer'])}")
        return ", ".join(parts)
