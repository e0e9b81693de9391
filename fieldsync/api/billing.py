"""API v1 for the billing domain: customers, jobs, invoices (issue, void), payments (applications, refunds).

Thin views: parse input with a nested InputSerializer, call one billing service or selector, render output.
The services refuse bad requests with ApplicationError (code, message, extra) and change nothing; the exception
handler gives those the API's error shape. Every POST is wrapped by `idempotent`.
"""

from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.response import Response

from billing import services
from billing.models import (
    NUMBER_CHARACTERS,
    Customer,
    Invoice,
    Job,
    JobType,
    Payment,
    Refund,
    TaxRate,
    validate_number,
)
from fieldsync.api import selectors
from fieldsync.api.base import ApiListView, ApiView, actor
from fieldsync.api.fields import CurrencyField, MoneyField, QuantityField, money_out
from fieldsync.api.filters import MAX_ID, CustomerFilter, InvoiceFilter, JobFilter, PaymentFilter
from fieldsync.api.idempotency import idempotent
from fieldsync.api.units import BusinessUnitField, UnitScopedMixin, in_units, unit_for_create
from quickbooks_export.models import InvoiceExportHold

# --- References in request bodies ---------------------------------------------------------------------------------


class IdRelatedField(serializers.PrimaryKeyRelatedField):
    """A row by id (an integer, or a string of digits); an id outside the column's range does not exist."""

    def to_internal_value(self, data):
        if isinstance(data, str) and data.isascii() and data.isdigit():
            data = int(data)
        if not isinstance(data, int) or isinstance(data, bool):
            self.fail("incorrect_type", data_type=type(data).__name__)  # 1.5 is not customer 1
        if not 1 <= data <= MAX_ID:
            self.fail("does_not_exist", pk_value=data)
        return super().to_internal_value(data)


class NumberRelatedField(serializers.SlugRelatedField):
    """A row by its number ("INV-1042"). Text the database cannot hold (NUL, lone surrogates) is not a number."""

    default_error_messages = {"invalid": 'A number must be text such as "INV-1042".'}

    def to_internal_value(self, data):
        if not isinstance(data, str) or not data or len(data) > 100 or "\x00" in data:
            self.fail("invalid")
        try:
            data.encode("utf-8")
        except UnicodeEncodeError:
            self.fail("invalid")
        return super().to_internal_value(data)


class UnitIdRelatedField(UnitScopedMixin, IdRelatedField):
    """A row of the caller's business units by id (fieldsync.api.units)."""


class UnitNumberRelatedField(UnitScopedMixin, NumberRelatedField):
    """A row of the caller's business units by number (fieldsync.api.units)."""


def customer_ref(**kwargs):
    kwargs.setdefault("help_text", "A customer id.")
    return UnitIdRelatedField(
        queryset=Customer.objects.select_related("business_unit"),
        error_messages={"does_not_exist": "No customer has the id {pk_value}."},
        **kwargs,
    )


def invoice_ref(**kwargs):
    kwargs.setdefault("help_text", 'An invoice number, e.g. "INV-1042".')
    return UnitNumberRelatedField(
        slug_field="number",
        queryset=Invoice.objects.select_related("customer__business_unit"),
        error_messages={"does_not_exist": "No invoice is numbered {value}."},
        **kwargs,
    )


# --- Output -------------------------------------------------------------------------------------------------------


def business_unit_out() -> serializers.CharField:
    """The record's business unit by slug, as a customer's POST names it (`business_unit`). Read with the record
    (select_related in fieldsync.api.selectors, or known to the view that created it): no query of its own."""
    return serializers.CharField(
        source="business_unit.slug", read_only=True, help_text="The business unit's slug (its own QuickBooks company)."
    )


def with_unit_of_customer(record):
    """`record` (a job or payment just created for a customer read with its unit) with that unit at hand, so the
    answer names it without a query: the service set only business_unit_id (always the customer's)."""
    customer = record.customer
    if type(customer).business_unit.is_cached(customer):
        record.business_unit = customer.business_unit
    return record


class CustomerOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    business_unit = business_unit_out()
    display_name = serializers.CharField()
    company_name = serializers.CharField()
    email = serializers.CharField()
    phone = serializers.CharField()
    billing_line1 = serializers.CharField()
    billing_line2 = serializers.CharField()
    billing_city = serializers.CharField()
    billing_region = serializers.CharField()
    billing_postal_code = serializers.CharField()
    billing_country = serializers.CharField()
    created_at = serializers.DateTimeField()

    class Meta:
        ref_name = "Customer"


class JobOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    business_unit = business_unit_out()
    customer = serializers.IntegerField(source="customer_id")
    number = serializers.CharField()
    title = serializers.CharField()
    service_address = serializers.CharField()
    scheduled_on = serializers.DateField(allow_null=True)
    completed_on = serializers.DateField(allow_null=True)
    status = serializers.ChoiceField(choices=Job.Status.choices)
    job_type = serializers.CharField(
        source="job_type.name", allow_null=True, default=None, help_text='The job type\'s name, e.g. "Repair".'
    )
    created_at = serializers.DateTimeField()

    class Meta:
        ref_name = "Job"


class TaxRateOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    percentage = serializers.DecimalField(max_digits=7, decimal_places=4, coerce_to_string=True)

    class Meta:
        ref_name = "TaxRate"


class InvoiceLineOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="Names the line in a PATCH of its invoice.")
    position = serializers.IntegerField()
    service_name = serializers.CharField()
    description = serializers.CharField()
    quantity = money_out()
    unit_price = money_out()
    amount = money_out()
    taxable = serializers.BooleanField(help_text="Sales tax applies to this line.")

    class Meta:
        ref_name = "InvoiceLine"


class InvoiceOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    number = serializers.CharField()
    business_unit = business_unit_out()
    customer = serializers.IntegerField(source="customer_id")
    job = serializers.CharField(source="job.number", allow_null=True, default=None, help_text="The job number.")
    status = serializers.ChoiceField(choices=Invoice.Status.choices)
    issued_on = serializers.DateField(allow_null=True)
    due_on = serializers.DateField(allow_null=True)
    currency = serializers.CharField()
    lines = InvoiceLineOutputSerializer(many=True)
    tax_rate = TaxRateOutputSerializer(
        allow_null=True, help_text="The rate the tax was computed from; null: an amount."
    )
    sales_tax = money_out()
    total = money_out()
    amount_paid = money_out(help_text="Applied payments minus their refunds.")
    open_balance = money_out()
    memo = serializers.CharField()
    created_at = serializers.DateTimeField()
    voided_at = serializers.DateTimeField(allow_null=True)
    changed_at = serializers.DateTimeField(
        allow_null=True, help_text="When its lines, tax or dates last changed after it was issued."
    )

    class Meta:
        ref_name = "Invoice"


class ApplicationOutputSerializer(serializers.Serializer):
    invoice = serializers.CharField(source="invoice.number", help_text="The invoice number.")
    amount = money_out(help_text="Applied to the invoice (before refunds).")

    class Meta:
        ref_name = "PaymentApplication"


class RefundOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    payment = serializers.IntegerField(source="payment_id")
    amount = money_out()
    invoice = serializers.CharField(
        source="application.invoice.number",
        allow_null=True,
        default=None,
        help_text="The invoice the refund came out of; null: from the payment's unapplied credit.",
    )
    kind = serializers.ChoiceField(
        choices=Refund.Kind.choices,
        help_text="no_longer_owed: the invoice stays paid (a credit on it); reversal: the invoice re-opens; "
        "unapplied_credit: an overpayment given back.",
    )
    quickbooks_status = serializers.ChoiceField(
        choices=["netted", "to_enter", "recorded", "entered"],
        help_text="netted: taken out of what FieldSync exports; to_enter: a manual-handling item waits for "
        "someone to enter it in QuickBooks; recorded: FieldSync entered it there; entered: a person did.",
    )
    quickbooks_id = serializers.SerializerMethodField(
        help_text="The QuickBooks transaction FieldSync recorded for it; null when none."
    )
    reason = serializers.CharField()
    refunded_on = serializers.DateField()
    method = serializers.ChoiceField(choices=Refund.Method.choices)
    created_at = serializers.DateTimeField()

    class Meta:
        ref_name = "Refund"

    @extend_schema_field(OpenApiTypes.STR)
    def get_quickbooks_id(self, refund) -> str | None:
        item = getattr(refund, "manual_item", None)
        return (item.handled_quickbooks_id or None) if item is not None else None


class PaymentOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    business_unit = business_unit_out()
    customer = serializers.IntegerField(source="customer_id")
    amount = money_out()
    currency = serializers.CharField()
    method = serializers.ChoiceField(choices=Payment.Method.choices)
    reference = serializers.CharField()
    received_on = serializers.DateField()
    memo = serializers.CharField()
    created_at = serializers.DateTimeField()
    applications = ApplicationOutputSerializer(many=True)
    refunds = RefundOutputSerializer(many=True)
    amount_applied = money_out(help_text="Applied to invoices, net of refunds of those applications.")
    amount_refunded = money_out()
    unapplied_credit = money_out(help_text="Neither applied nor refunded.")
    export_status = serializers.ChoiceField(choices=Payment.ExportStatus.choices)
    export_status_changed_at = serializers.DateTimeField(allow_null=True)
    exportable = serializers.BooleanField(
        source="export_readiness.exportable",
        help_text="The fully-paid rule lets it go to QuickBooks: applied, and every invoice it pays is fully paid.",
    )
    held_reason = serializers.CharField(
        source="export_readiness.held_reason", help_text="Why it waits, for a person; empty when exportable."
    )
    export_reference = serializers.CharField(help_text="Its QuickBooks Id once exported; empty before.")
    export_hold_reason = serializers.ChoiceField(
        choices=[("", "not on hold"), *InvoiceExportHold.Reason.choices],
        help_text="With export_status on_hold: why QuickBooks' invoice cannot take it (total_differs: QuickBooks "
        "computed a different total; balance_too_low: payments were recorded there already; not_found: the "
        "QuickBooks invoice is gone). Ways out: POST /payments/{id}/export-hold/.",
    )
    export_hold_message = serializers.CharField(help_text="The hold in words, with both figures; empty when none.")

    class Meta:
        ref_name = "Payment"


def _payment_response(payment_id: int, status_code: int = status.HTTP_200_OK) -> Response:
    return Response(PaymentOutputSerializer(selectors.payment_get(payment_id=payment_id)).data, status=status_code)


def _invoice_response(number: str, status_code: int = status.HTTP_200_OK) -> Response:
    return Response(InvoiceOutputSerializer(selectors.invoice_get(number=number)).data, status=status_code)


# --- Customers ----------------------------------------------------------------------------------------------------


class CustomersApi(ApiListView):
    """GET: list customers. POST: create one."""

    staff_permissions = {"GET": ("billing.view_customer",), "POST": ("billing.add_customer",)}
    filterset_class = CustomerFilter
    OutputSerializer = CustomerOutputSerializer

    class InputSerializer(serializers.Serializer):
        display_name = serializers.CharField(max_length=200)
        company_name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
        email = serializers.EmailField(max_length=254, required=False, allow_blank=True, default="")
        phone = serializers.CharField(max_length=40, required=False, allow_blank=True, default="")
        billing_line1 = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
        billing_line2 = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
        billing_city = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
        billing_region = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
        billing_postal_code = serializers.CharField(max_length=20, required=False, allow_blank=True, default="")
        billing_country = serializers.CharField(max_length=2, required=False, allow_blank=True, default="US")
        business_unit = BusinessUnitField(required=False)

        class Meta:
            ref_name = "CustomerCreate"

    def get_queryset(self):
        return in_units(selectors.customer_list(), self.request)

    @extend_schema(operation_id="customers_list", responses={200: CustomerOutputSerializer(many=True)})
    def get(self, request):
        page = self.list_page(request)
        return self.get_paginated_response(self.OutputSerializer(page, many=True).data)

    @extend_schema(operation_id="customers_create", request=InputSerializer, responses={201: OutputSerializer})
    @idempotent
    def post(self, request):
        serializer = self.InputSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        data["business_unit"] = unit_for_create(request, data.pop("business_unit", None))
        customer = services.customer_create(**data)
        return Response(self.OutputSerializer(customer).data, status=status.HTTP_201_CREATED)


class TaxRatesApi(ApiListView):
    """GET: list the sales tax rates (their ids go in an invoice's `tax_rate`). POST: create one."""

    staff_permissions = {"GET": ("billing.view_taxrate",), "POST": ("billing.add_taxrate",)}
    OutputSerializer = TaxRateOutputSerializer

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=100)
        percentage = serializers.CharField(
            max_length=20, help_text='A percentage from 0 to 100 as a string, e.g. "10.25" for 10.25%.'
        )

        class Meta:
            ref_name = "TaxRateCreate"

    def get_queryset(self):
        return TaxRate.objects.filter(active=True)

    @extend_schema(operation_id="tax_rates_list", responses={200: TaxRateOutputSerializer(many=True)})
    def get(self, request):
        page = self.list_page(request)
        return self.get_paginated_response(self.OutputSerializer(page, many=True).data)

    @extend_schema(operation_id="tax_rates_create", request=InputSerializer, responses={201: OutputSerializer})
    @idempotent
    def post(self, request):
        serializer = self.InputSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        rate = services.tax_rate_create(**serializer.validated_data)
        return Response(self.OutputSerializer(rate).data, status=status.HTTP_201_CREATED)


class CustomerDetailApi(ApiView):
    staff_permissions = {"GET": ("billing.view_customer",)}

    @extend_schema(operation_id="customers_retrieve", responses={200: CustomerOutputSerializer})
    def get(self, request, customer_id: int):
        customer = in_units(selectors.customer_list(), request).filter(pk=customer_id).first()
        if customer is None:
            raise Http404
        return Response(CustomerOutputSerializer(customer).data)


# --- Jobs ---------------------------------------------------------------------------------------------------------


JOB_TYPE_HELP = (
    "The job type's name in the customer's business unit, e.g. \"Repair\" (any case); the unit's job types are kept "
    "in the admin. Its invoices carry the QuickBooks class / location chosen for it on the QuickBooks page."
)


def _job_type_named(name: str | None, *, business_unit_id: int, current: JobType | None = None) -> JobType | None:
    """The active job type of this name in the unit (one query). Another unit's type is as unknown as a name nobody
    uses; the job's current type may stay even when no longer in use."""
    if name is None:
        return None
    job_type = JobType.objects.filter(business_unit_id=business_unit_id, name__iexact=" ".join(name.split())).first()
    if job_type is None:
        raise serializers.ValidationError(
            {"job_type": [serializers.ErrorDetail(f"This business unit has no job type {name!r}.", "does_not_exist")]}
        )
    if not job_type.active and job_type != current:
        raise serializers.ValidationError(
            {
                "job_type": [
                    serializers.ErrorDetail(
                        f"The job type {job_type.name} is no longer in use; choose another.", "inactive"
                    )
                ]
            }
        )
    return job_type


def job_type_field(**kwargs) -> serializers.CharField:
    return serializers.CharField(max_length=80, allow_null=True, help_text=JOB_TYPE_HELP, **kwargs)


class JobsApi(ApiListView):
    """GET: list jobs. POST: create one for a customer."""

    staff_permissions = {"GET": ("billing.view_job",), "POST": ("billing.add_job",)}
    filterset_class = JobFilter
    OutputSerializer = JobOutputSerializer

    class InputSerializer(serializers.Serializer):
        customer = customer_ref()
        number = serializers.CharField(
            max_length=30, validators=[validate_number], help_text=f"Unique; {NUMBER_CHARACTERS}."
        )
        title = serializers.CharField(max_length=200)
        service_address = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")
        scheduled_on = serializers.DateField(required=False, allow_null=True, default=None)
        completed_on = serializers.DateField(required=False, allow_null=True, default=None)
        status = serializers.ChoiceField(choices=Job.Status.choices, required=False, default=Job.Status.SCHEDULED)
        job_type = job_type_field(required=False, default=None)

        class Meta:
            ref_name = "JobCreate"

        def validate_number(self, value):
            if Job.objects.filter(number=value).exists():
                raise serializers.ValidationError(f"A job is already numbered {value}.", code="unique")
            return value

        def validate(self, attrs):
            attrs["job_type"] = _job_type_named(
                attrs.get("job_type"), business_unit_id=attrs["customer"].business_unit_id
            )
            return attrs

    def get_queryset(self):
        return in_units(selectors.job_list(), self.request)

    @extend_schema(operation_id="jobs_list", responses={200: JobOutputSerializer(many=True)})
    def get(self, request):
        page = self.list_page(request)
        return self.get_paginated_response(self.OutputSerializer(page, many=True).data)

    @extend_schema(operation_id="jobs_create", request=InputSerializer, responses={201: OutputSerializer})
    @idempotent
    def post(self, request):
        serializer = self.InputSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        job = with_unit_of_customer(services.job_create(**serializer.validated_data))
        return Response(self.OutputSerializer(job).data, status=status.HTTP_201_CREATED)


class JobDetailApi(ApiView):
    """GET: one job. PATCH: change its title, address, dates, status or job type (its number and customer are
    fixed)."""

    client_scopes = {"GET": "read", "PATCH": "write"}
    staff_permissions = {"GET": ("billing.view_job",), "PATCH": ("billing.change_job",)}

    class InputSerializer(serializers.Serializer):
        title = serializers.CharField(max_length=200, required=False)
        service_address = serializers.CharField(max_length=300, required=False, allow_blank=True)
        scheduled_on = serializers.DateField(required=False, allow_null=True)
        completed_on = serializers.DateField(required=False, allow_null=True)
        status = serializers.ChoiceField(choices=Job.Status.choices, required=False)
        job_type = job_type_field(required=False)

        class Meta:
            ref_name = "JobEdit"

    @extend_schema(operation_id="jobs_retrieve", responses={200: JobOutputSerializer})
    def get(self, request, job_id: int):
        job = in_units(selectors.job_list(), request).filter(pk=job_id).first()
        if job is None:
            raise Http404
        return Response(JobOutputSerializer(job).data)

    @extend_schema(operation_id="jobs_partial_update", request=InputSerializer, responses={200: JobOutputSerializer})
    def patch(self, request, job_id: int):
        # No Idempotency-Key: a PATCH carries the values wanted, so repeating it changes nothing more.
        job = in_units(selectors.job_list(), request).filter(pk=job_id).first()
        if job is None:
            raise Http404
        serializer = self.InputSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        changes = dict(serializer.validated_data)
        if "job_type" in changes:
            changes["job_type"] = _job_type_named(
                changes["job_type"], business_unit_id=job.business_unit_id, current=job.job_type
            )
        job = services.job_update(job=job, **changes)
        return Response(JobOutputSerializer(job).data)


# --- Invoices -----------------------------------------------------------------------------------------------------


class InvoiceLineInputSerializer(serializers.Serializer):
    service_name = serializers.CharField(max_length=100, help_text="Becomes a QuickBooks Service item of this name.")
    description = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    quantity = QuantityField(required=False, default="1")
    unit_price = MoneyField(allow_zero=True)
    taxable = serializers.BooleanField(required=False, default=True, help_text="Sales tax applies to this line.")

    class Meta:
        ref_name = "InvoiceLineCreate"


class InvoicesApi(ApiListView):
    """GET: list invoices with their lines and balances. POST: create a draft invoice with its lines."""

    staff_permissions = {"GET": ("billing.view_invoice",), "POST": ("billing.add_invoice",)}
    filterset_class = InvoiceFilter
    OutputSerializer = InvoiceOutputSerializer

    class InputSerializer(serializers.Serializer):
        customer = customer_ref()
        number = serializers.CharField(
            max_length=21,
            validators=[validate_number],
            help_text=f"Unique; becomes the QuickBooks DocNumber; {NUMBER_CHARACTERS}.",
        )
        job = UnitNumberRelatedField(
            slug_field="number",
            queryset=Job.objects.all(),
            required=False,
            allow_null=True,
            default=None,
            error_messages={"does_not_exist": "No job is numbered {value}."},
            help_text="A job number of the same customer.",
        )
        issued_on = serializers.DateField(required=False, allow_null=True, default=None)
        due_on = serializers.DateField(required=False, allow_null=True, default=None)
        currency = CurrencyField()
        sales_tax = MoneyField(
            allow_zero=True,
            required=False,
            default="0.00",
            help_text="The tax as an amount; leave out when giving tax_rate (the tax is then computed).",
        )
        tax_rate = serializers.PrimaryKeyRelatedField(
            queryset=TaxRate.objects.all(),
            required=False,
            allow_null=True,
            default=None,
            help_text="Id of a sales tax rate: the tax is the taxable lines times its percentage, per invoice, "
            "rounded half up to the cent.",
        )
        memo = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")
        lines = InvoiceLineInputSerializer(many=True, required=False, max_length=200, default=list)

        class Meta:
            ref_name = "InvoiceCreate"

        def validate_number(self, value):
            if Invoice.objects.filter(number=value).exists():
                raise serializers.ValidationError(f"An invoice is already numbered {value}.", code="unique")
            return value

    def get_queryset(self):
        return in_units(selectors.invoice_list(), self.request)

    @extend_schema(operation_id="invoices_list", responses={200: InvoiceOutputSerializer(many=True)})
    def get(self, request):
        page = self.list_page(request)
        return self.get_paginated_response(self.OutputSerializer(page, many=True).data)

    @extend_schema(
        operation_id="invoices_create",
        request=InputSerializer,
        responses={201: OutputSerializer},
        examples=[
            OpenApiExample(
                "Draft invoice with two lines",
                request_only=True,
                value={
                    "customer": 12,
                    "number": "INV-1042",
                    "due_on": "2026-12-01",
                    "sales_tax": "8.00",
                    "lines": [
                        {"service_name": "Water heater", "unit_price": "650.00"},
                        {"service_name": "Labor", "quantity": "2", "unit_price": "95.00"},
                    ],
                },
            )
        ],
    )
    @idempotent
    def post(self, request):
        serializer = self.InputSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        lines = [services.LineInput(**line) for line in data.pop("lines")]
        invoice = services.invoice_create(lines=lines, **data)
        return _invoice_response(invoice.number, status.HTTP_201_CREATED)


def _storable(text: str) -> bool:
    """Text the database can compare: no NUL (PostgreSQL refuses it), no lone surrogates."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def invoice_or_404(request, number: str) -> Invoice:
    """The invoice of a URL, if it is of the caller's business units (the exports API uses it too), or 404."""
    invoice = in_units(Invoice.objects, request).filter(number=number).first() if _storable(number) else None
    if invoice is None:
        raise Http404
    return invoice


class InvoiceLineEditSerializer(InvoiceLineInputSerializer):
    id = serializers.IntegerField(
        required=False,
        allow_null=True,
        default=None,
        min_value=1,
        max_value=MAX_ID,
        help_text="The id of one of the invoice's lines to change; leave out to add a line.",
    )

    class Meta:
        ref_name = "InvoiceLineEdit"


class InvoiceDetailApi(ApiView):
    """GET: one invoice. PATCH: change its lines, tax or dates, also after it was issued (see invoice_edit)."""

    client_scopes = {"GET": "read", "PATCH": "write"}
    staff_permissions = {"GET": ("billing.view_invoice",), "PATCH": ("billing.change_invoice",)}

    class InputSerializer(serializers.Serializer):
        lines = InvoiceLineEditSerializer(
            many=True,
            required=False,
            max_length=200,
            help_text="The whole new list of lines: a line with an id changes it, one without is added, a line "
            "left out is removed.",
        )
        tax_rate = serializers.PrimaryKeyRelatedField(
            queryset=TaxRate.objects.all(),
            required=False,
            allow_null=True,
            help_text="Id of a sales tax rate (the tax is computed), or null: the tax is the sales_tax amount.",
        )
        sales_tax = MoneyField(allow_zero=True, required=False, help_text="The tax as an amount (no tax_rate).")
        issued_on = serializers.DateField(required=False, help_text="Left out: unchanged (a date is never cleared).")
        due_on = serializers.DateField(required=False)

        class Meta:
            ref_name = "InvoiceEdit"

    @extend_schema(operation_id="invoices_retrieve", responses={200: InvoiceOutputSerializer})
    def get(self, request, number: str):
        invoice = (
            in_units(selectors.invoice_list(), request).filter(number=number).first() if _storable(number) else None
        )
        if invoice is None:
            raise Http404
        return Response(InvoiceOutputSerializer(invoice).data)

    @extend_schema(
        operation_id="invoices_partial_update",
        request=InputSerializer,
        responses={200: InvoiceOutputSerializer},
        examples=[
            OpenApiExample(
                "Add a line to an issued invoice",
                request_only=True,
                value={
                    "lines": [
                        {"id": 311, "service_name": "Water heater", "unit_price": "650.00"},
                        {"service_name": "Disposal of the old heater", "unit_price": "45.00", "taxable": False},
                    ]
                },
            )
        ],
    )
    def patch(self, request, number: str):
        # No Idempotency-Key: a PATCH carries the values wanted, so repeating it changes nothing more.
        serializer = self.InputSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        if "lines" in data:
            data["lines"] = [
                services.LineEdit(line_id=line.pop("id"), **line) for line in (dict(row) for row in data["lines"])
            ]
        invoice = services.invoice_edit(invoice=invoice_or_404(request, number), **data)
        return _invoice_response(invoice.number)


class InvoiceIssueApi(ApiView):
    """Draft → open: the invoice can now be paid. It needs at least one line and a total above zero."""

    staff_permissions = {"POST": ("billing.change_invoice",)}

    class InputSerializer(serializers.Serializer):
        issued_on = serializers.DateField(required=False, allow_null=True, default=None, help_text="Default: today.")
        due_on = serializers.DateField(required=False, allow_null=True, default=None)

        class Meta:
            ref_name = "InvoiceIssue"

    @extend_schema(operation_id="invoices_issue", request=InputSerializer, responses={200: InvoiceOutputSerializer})
    @idempotent
    def post(self, request, number: str):
        serializer = self.InputSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        invoice = services.invoice_issue(invoice=invoice_or_404(request, number), **serializer.validated_data)
        return _invoice_response(invoice.number)


class InvoiceVoidApi(ApiView):
    """Void an invoice nobody has paid (payments applied to it must be refunded first)."""

    staff_permissions = {"POST": ("billing.change_invoice",)}

    @extend_schema(operation_id="invoices_void", request=None, responses={200: InvoiceOutputSerializer})
    @idempotent
    def post(self, request, number: str):
        invoice = services.invoice_void(invoice=invoice_or_404(request, number))
        return _invoice_response(invoice.number)


# --- Payments -----------------------------------------------------------------------------------------------------


class ApplicationInputSerializer(serializers.Serializer):
    invoice = invoice_ref()
    amount = MoneyField()

    class Meta:
        ref_name = "PaymentApplicationCreate"


PAYMENT_EXAMPLE = {
    "id": 311,
    "business_unit": "main-street",
    "customer": 12,
    "amount": "150.00",
    "currency": "USD",
    "method": "card",
    "reference": "ch_3PzB2K",
    "received_on": "2026-11-10",
    "memo": "",
    "created_at": "2026-11-10T15:02:11.482913-05:00",
    "applications": [{"invoice": "INV-1042", "amount": "100.00"}, {"invoice": "INV-1043", "amount": "50.00"}],
    "refunds": [],
    "amount_applied": "150.00",
    "amount_refunded": "0.00",
    "unapplied_credit": "0.00",
    "export_status": "not_exported",
    "export_status_changed_at": None,
    "exportable": False,
    "held_reason": "Held: INV-1043 still has $25.00 open.",
    "export_reference": "",
}


class PaymentsApi(ApiListView):
    """GET: list payments with their export status (filter by `export_status`, `exportable`,
    `export_status_changed_after` to follow exports). POST: record a payment and apply it to invoices."""

    staff_permissions = {"GET": ("billing.view_payment",), "POST": ("billing.add_payment",)}
    filterset_class = PaymentFilter
    OutputSerializer = PaymentOutputSerializer

    class InputSerializer(serializers.Serializer):
        customer = customer_ref(required=False)
        amount = MoneyField()
        currency = CurrencyField()
        method = serializers.ChoiceField(choices=Payment.Method.choices)
        received_on = serializers.DateField()
        reference = serializers.CharField(
            max_length=100,
            required=False,
            allow_blank=True,
            default="",
            help_text="A check number, a processor's charge id, an ACH trace number.",
        )
        memo = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")
        applications = ApplicationInputSerializer(
            many=True, required=False, max_length=100, help_text="How the payment is split across invoices."
        )
        invoice = invoice_ref(required=False, help_text="Shorthand: apply the whole amount to this invoice number.")

        class Meta:
            ref_name = "PaymentCreate"

        def validate(self, data):
            if "invoice" in data and "applications" in data:
                raise serializers.ValidationError(
                    {"invoice": ["Send either `invoice` (the whole amount) or `applications`, not both."]},
                    code="invoice_and_applications",
                )
            if "invoice" in data:
                data["applications"] = [{"invoice": data.pop("invoice"), "amount": data["amount"]}]
            data.setdefault("applications", [])
            if "customer" not in data:
                if not data["applications"]:
                    raise serializers.ValidationError(
                        {"customer": ["Say whose payment it is, or which invoice it pays."]}, code="required"
                    )
                data["customer"] = data["applications"][0]["invoice"].customer
            return data

    def get_queryset(self):
        return in_units(selectors.payment_list(), self.request)

    @extend_schema(operation_id="payments_list", responses={200: PaymentOutputSerializer(many=True)})
    def get(self, request):
        page = selectors.payments_attach_readiness(self.list_page(request))
        return self.get_paginated_response(self.OutputSerializer(page, many=True).data)

    @extend_schema(
        operation_id="payments_create",
        request=InputSerializer,
        responses={201: OutputSerializer},
        examples=[
            OpenApiExample(
                "Split across two invoices",
                request_only=True,
                value={
                    "customer": 12,
                    "amount": "150.00",
                    "method": "card",
                    "received_on": "2026-11-10",
                    "reference": "ch_3PzB2K",
                    "applications": [
                        {"invoice": "INV-1042", "amount": "100.00"},
                        {"invoice": "INV-1043", "amount": "50.00"},
                    ],
                },
            ),
            OpenApiExample(
                "Whole amount to one invoice",
                request_only=True,
                value={"invoice": "INV-1042", "amount": "100.00", "method": "check", "received_on": "2026-11-10"},
                description="The customer is the invoice's.",
            ),
            OpenApiExample("Recorded", response_only=True, status_codes=["201"], value=PAYMENT_EXAMPLE),
            OpenApiExample(
                "Idempotent retry",
                response_only=True,
                status_codes=["201"],
                value=PAYMENT_EXAMPLE,
                description=(
                    "The client lost the first response and sent the same request again with the same "
                    "`Idempotency-Key`: the stored response comes back with `Idempotent-Replayed: true`, and no "
                    "second payment is recorded. The same key with a different body gets 422 "
                    "`idempotency_key_reused`; while the first request is still running, 409 "
                    "`idempotency_key_in_progress`."
                ),
            ),
            OpenApiExample(
                "Amount sent as a JSON number",
                response_only=True,
                status_codes=["400"],
                value={
                    "code": "invalid",
                    "message": 'amount: amount must be a string such as "150.00", not a JSON number: floating point '
                    "is not money.",
                    "details": {"amount": [{"code": "float_not_allowed", "message": "..."}]},
                },
            ),
            OpenApiExample(
                "More than the invoice's open balance",
                response_only=True,
                status_codes=["400"],
                value={
                    "code": "over_application",
                    "message": "$150.00 is more than the $100.00 open on INV-1042.",
                    "details": {"invoice": "INV-1042", "open_balance": "100.00"},
                },
            ),
        ],
    )
    @idempotent
    def post(self, request):
        serializer = self.InputSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        applications = [
            services.ApplicationInput(invoice=item["invoice"], amount=item["amount"])
            for item in data.pop("applications")
        ]
        payment = services.payment_record(applications=applications, **data)
        return Response(
            PaymentOutputSerializer(selectors.payment_as_recorded(with_unit_of_customer(payment))).data,
            status=status.HTTP_201_CREATED,
        )


def payment_or_404(request, payment_id: int) -> Payment:
    """The payment of a URL, if it is of the caller's business units (the exports API uses it too), or 404."""
    payment = in_units(Payment.objects, request).filter(pk=payment_id).first() if payment_id <= MAX_ID else None
    if payment is None:
        raise Http404
    return payment


class PaymentDetailApi(ApiView):
    staff_permissions = {"GET": ("billing.view_payment",)}

    @extend_schema(operation_id="payments_retrieve", responses={200: PaymentOutputSerializer})
    def get(self, request, payment_id: int):
        payment = selectors.payment_get(payment_id=payment_or_404(request, payment_id).pk)
        return Response(PaymentOutputSerializer(payment).data)


class PaymentApplicationsApi(ApiView):
    """Apply part of a payment's unapplied credit to an invoice of the same customer."""

    staff_permissions = {"POST": ("billing.change_payment",)}

    class InputSerializer(ApplicationInputSerializer):
        class Meta:
            ref_name = "PaymentApply"

    @extend_schema(operation_id="payments_apply", request=InputSerializer, responses={201: PaymentOutputSerializer})
    @idempotent
    def post(self, request, payment_id: int):
        serializer = self.InputSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        payment = payment_or_404(request, payment_id)
        services.payment_apply(payment=payment, **serializer.validated_data)
        return _payment_response(payment.pk, status.HTTP_201_CREATED)


class PaymentRefundsApi(ApiView):
    """Record money given back from a payment, and what it means (`kind`). Without `kind`, a refund that fits in the
    unapplied credit is an overpayment returned, otherwise a reversal. A refund of a payment that is (or may be) in
    QuickBooks, and any refund of money no longer owed, waits for a person to record it there (docs/refunds.md)."""

    staff_permissions = {"POST": ("billing.add_refund",)}

    class InputSerializer(serializers.Serializer):
        amount = MoneyField()
        reason = serializers.CharField(max_length=300)
        refunded_on = serializers.DateField()
        method = serializers.ChoiceField(choices=Refund.Method.choices)
        kind = serializers.ChoiceField(
            choices=Refund.Kind.choices,
            required=False,
            allow_null=True,
            default=None,
            help_text="What happened: no_longer_owed (goodwill, price adjustment, cancelled work: the invoice stays "
            "paid), reversal (bounced check, chargeback, wrong charge: the invoice re-opens), unapplied_credit "
            "(overpayment returned). Default: unapplied_credit when the amount fits in it, else reversal.",
        )
        invoice = invoice_ref(
            required=False, allow_null=True, default=None, help_text="The invoice number the refund is for."
        )

        class Meta:
            ref_name = "RefundCreate"

    @extend_schema(
        operation_id="payments_refund",
        request=InputSerializer,
        responses={201: OpenApiResponse(RefundOutputSerializer, description="Recorded.")},
    )
    @idempotent
    def post(self, request, payment_id: int):
        serializer = self.InputSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        refund = services.refund_record(
            payment=payment_or_404(request, payment_id), user=actor(request)["user"], **serializer.validated_data
        )
        refund = Refund.objects.select_related("application__invoice", "manual_item").get(pk=refund.pk)
        return Response(RefundOutputSerializer(refund).data, status=status.HTTP_201_CREATED)
