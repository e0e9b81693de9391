"""API v1 for QuickBooks exports: request the export of payments, then follow the batch and its per-payment results.

Starting an export only records intent (quickbooks_export.services): the answer is 202 with the batch, and the
work runs in the background. Clients follow it with GET /api/v1/exports/{id}/ (status and counts) and
/items/ (one result per payment), or by listing payments with `export_status_changed_after`.
"""

from django.http import Http404
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response

from billing.models import Payment
from fieldsync.api import selectors
from fieldsync.api.base import ApiListView, ApiView, actor
from fieldsync.api.billing import PaymentOutputSerializer, _payment_response, invoice_or_404, payment_or_404
from fieldsync.api.filters import MAX_ID
from fieldsync.api.idempotency import idempotent
from fieldsync.api.pagination import ApiCursorPagination
from fieldsync.api.permissions import EXPORT_PERMISSION, MANAGE_QUICKBOOKS
from fieldsync.api.units import BusinessUnitField, in_units, in_units_companies, unit_for_create
from fieldsync.exceptions import ApplicationError
from quickbooks_desktop import routing as export_routing
from quickbooks_export import selectors as export_selectors
from quickbooks_export.errors import QuickBooksError
from quickbooks_export.models import ExportBatch, ExportBatchItem

READ_PERMISSIONS = (EXPORT_PERMISSION, "quickbooks_export.view_exportbatch")


class ExportCountsSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    done = serializers.IntegerField(help_text="Every payment that is no longer pending.")
    pending = serializers.IntegerField()
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    linked = serializers.IntegerField(help_text="Already in QuickBooks: linked, not posted again.")
    skipped = serializers.IntegerField(help_text="Held by the fully-paid rule or marked “do not export”.")
    failed = serializers.IntegerField()
    held = serializers.IntegerField(
        help_text="On hold: QuickBooks' copy of the invoice cannot take the payment (another total, too small a "
        "balance, gone); nothing of that invoice was posted."
    )

    class Meta:
        ref_name = "ExportCounts"


class ExportBatchOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=ExportBatch.Status.choices)
    source = serializers.ChoiceField(choices=ExportBatch.Source.choices)
    selection = serializers.CharField(help_text="What was asked for, in words.")
    requested_by = serializers.CharField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    waiting_reason = serializers.CharField(help_text="Why the batch waits (e.g. QuickBooks needs reconnecting).")
    counts = ExportCountsSerializer()

    class Meta:
        ref_name = "ExportBatch"


class ExportItemOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    payment = serializers.IntegerField(
        source="payment_id", allow_null=True, help_text="The payment, or null for an invoice exported on its own."
    )
    invoice = serializers.CharField(
        source="invoice.number",
        allow_null=True,
        default=None,
        help_text="For an invoice with nothing to pay ($0.00, no payment) exported on its own: its number; else null.",
    )
    outcome = serializers.ChoiceField(choices=ExportBatchItem.Outcome.choices)
    message = serializers.CharField(help_text="Why it was skipped or failed, in plain words.")
    error_code = serializers.CharField()
    qbo_id = serializers.CharField(
        help_text="The QuickBooks Id of the payment (or of the invoice exported on its own) once created or linked."
    )
    added_with_invoice = serializers.BooleanField(
        help_text="Not selected, but shares an invoice with a selected payment (an invoice goes with all payments)."
    )
    updated_at = serializers.DateTimeField()

    class Meta:
        ref_name = "ExportItem"


BATCH_EXAMPLE = {
    "id": 57,
    "status": "finished",
    "source": "api",
    "selection": "2 payments selected through the API",
    "requested_by": "API client field-app",
    "created_at": "2026-11-10T15:04:00.120301-05:00",
    "started_at": "2026-11-10T15:04:00.512044-05:00",
    "finished_at": "2026-11-10T15:04:02.930118-05:00",
    "waiting_reason": "",
    "counts": {
        "total": 2,
        "done": 2,
        "pending": 0,
        "created": 1,
        "updated": 0,
        "linked": 0,
        "skipped": 1,
        "failed": 0,
    },
}


def _batch_response(batch: ExportBatch, status_code: int = status.HTTP_200_OK) -> Response:
    batch.counts = export_selectors.export_batch_counts(batch_id=batch.pk)
    return Response(ExportBatchOutputSerializer(batch).data, status=status_code)


def _batch_or_404(request, batch_id: int) -> ExportBatch:
    """A batch of the caller's business units' companies, or 404."""
    batches = ExportBatch.objects.filter(in_units_companies(request))
    batch = batches.filter(pk=batch_id).first() if batch_id <= MAX_ID else None
    if batch is None:
        raise Http404
    return batch


class ExportsApi(ApiListView):
    """GET: export batches, newest first. POST: export payments (by id) or everything exportable."""

    client_scopes = {"GET": "read", "POST": "export"}
    staff_permissions = {"GET": READ_PERMISSIONS, "POST": (EXPORT_PERMISSION,)}
    OutputSerializer = ExportBatchOutputSerializer

    class InputSerializer(serializers.Serializer):
        payment_ids = serializers.ListField(
            child=serializers.IntegerField(min_value=1, max_value=MAX_ID),
            required=False,
            min_length=1,
            max_length=10000,
            help_text="Payments to export; each brings the payments that share its invoices.",
        )
        all_exportable = serializers.BooleanField(
            required=False, default=False, help_text="Export every payment the fully-paid rule lets go."
        )
        business_unit = BusinessUnitField(
            required=False,
            help_text="With all_exportable: the business unit whose payments go (each unit has its own QuickBooks "
            "company); required when you act on several.",
        )

        class Meta:
            ref_name = "ExportCreate"

        def validate(self, data):
            if bool(data.get("payment_ids")) == bool(data.get("all_exportable")):
                raise serializers.ValidationError(
                    'Send either `payment_ids` or `"all_exportable": true`.', code="selection_required"
                )
            return data

    def get_queryset(self):
        return ExportBatch.objects.filter(in_units_companies(self.request))

    @extend_schema(operation_id="exports_list", responses={200: ExportBatchOutputSerializer(many=True)})
    def get(self, request):
        page = selectors.export_batches_attach_counts(self.list_page(request))
        return self.get_paginated_response(self.OutputSerializer(page, many=True).data)

    @extend_schema(
        operation_id="exports_create",
        request=InputSerializer,
        responses={202: OutputSerializer},
        examples=[
            OpenApiExample("Two payments", request_only=True, value={"payment_ids": [311, 312]}),
            OpenApiExample("Everything exportable", request_only=True, value={"all_exportable": True}),
            OpenApiExample(
                "Accepted",
                response_only=True,
                status_codes=["202"],
                value={
                    **BATCH_EXAMPLE,
                    "status": "queued",
                    "started_at": None,
                    "finished_at": None,
                    "counts": {**BATCH_EXAMPLE["counts"], "done": 1, "pending": 1, "created": 0},
                },
                description="Follow it with GET /api/v1/exports/{id}/ until `status` is `finished`.",
            ),
        ],
    )
    @idempotent
    def post(self, request):
        serializer = self.InputSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        who = actor(request)
        if data.get("all_exportable"):
            unit = unit_for_create(request, data.get("business_unit"))
            batch = export_routing.export_all_exportable_start(**who, source=ExportBatch.Source.API, business_unit=unit)
        else:
            ids = sorted(set(data["payment_ids"]))
            yours = set(in_units(Payment.objects.filter(pk__in=ids), request).values_list("pk", flat=True))
            if missing := [pk for pk in ids if pk not in yours]:  # another unit's: as unknown as no payment at all
                raise ApplicationError(
                    f"No payment with id {', '.join(map(str, missing[:10]))}.",
                    code="unknown_payment",
                    extra={"missing": missing},
                )
            batch = export_routing.export_batch_start(
                payments=ids,
                selection=f"{len(ids)} payment{'s' if len(ids) != 1 else ''} selected through the API",
                **who,
                source=ExportBatch.Source.API,
            )
        return _batch_response(batch, status.HTTP_202_ACCEPTED)


class ExportDetailApi(ApiView):
    """An export batch: its status (queued, running, finished) and how many payments ended how."""

    client_scopes = {"GET": "read"}
    staff_permissions = {"GET": READ_PERMISSIONS}

    @extend_schema(
        operation_id="exports_retrieve",
        responses={200: ExportBatchOutputSerializer},
        examples=[
            OpenApiExample(
                "Following an export",
                response_only=True,
                status_codes=["200"],
                value=BATCH_EXAMPLE,
                description=(
                    "Poll until `status` is `finished` (a few seconds apart), then read the per-payment results "
                    "at /api/v1/exports/{id}/items/ (`?outcome=failed` for the ones to fix). Each payment's "
                    "`export_status` and `export_reference` (its QuickBooks Id) show on /api/v1/payments/{id}/."
                ),
            )
        ],
    )
    def get(self, request, batch_id: int):
        return _batch_response(_batch_or_404(request, batch_id))


class ExportItemsPagination(ApiCursorPagination):
    ordering = "id"  # in the order the batch holds them


class ExportItemsApi(ApiListView):
    """The result of each payment of a batch: created, updated, linked, skipped (with the reason) or failed."""

    client_scopes = {"GET": "read"}
    staff_permissions = {"GET": READ_PERMISSIONS}
    pagination_class = ExportItemsPagination
    filter_backends = []
    OutputSerializer = ExportItemOutputSerializer

    class FilterSerializer(serializers.Serializer):
        outcome = serializers.ChoiceField(choices=ExportBatchItem.Outcome.choices, required=False)

    def get_queryset(self):
        filters = self.FilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        batch = _batch_or_404(self.request, self.kwargs["batch_id"])
        return (
            export_selectors.export_batch_items(batch_id=batch.pk, **filters.validated_data)
            .select_related(None)
            .select_related("invoice")
        )

    @extend_schema(
        operation_id="exports_items_list",
        parameters=[FilterSerializer],
        responses={200: ExportItemOutputSerializer(many=True)},
    )
    def get(self, request, batch_id: int):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(self.OutputSerializer(page, many=True).data)


class PaymentExportApi(ApiView):
    """Export one payment (with the payments sharing its invoices)."""

    client_scopes = {"POST": "export"}
    staff_permissions = {"POST": (EXPORT_PERMISSION,)}

    @extend_schema(operation_id="payments_export", request=None, responses={202: ExportBatchOutputSerializer})
    @idempotent
    def post(self, request, payment_id: int):
        payment = payment_or_404(request, payment_id)
        batch = export_routing.export_payment_start(
            payment_id=payment.pk, **actor(request), source=ExportBatch.Source.API
        )
        return _batch_response(batch, status.HTTP_202_ACCEPTED)


class InvoiceExportApi(ApiView):
    """Export one invoice with nothing to pay ($0.00, no payment: warranty work) on its own, invoice-only. An invoice
    with something to pay goes with its payment: refused (400, `invoice_has_something_to_pay`), nothing queued."""

    client_scopes = {"POST": "export"}
    staff_permissions = {"POST": (EXPORT_PERMISSION,)}

    @extend_schema(operation_id="invoices_export", request=None, responses={202: ExportBatchOutputSerializer})
    @idempotent
    def post(self, request, number: str):
        invoice = invoice_or_404(request, number)
        batch = export_routing.export_invoice_start(
            invoice_id=invoice.pk, **actor(request), source=ExportBatch.Source.API
        )
        return _batch_response(batch, status.HTTP_202_ACCEPTED)


class PaymentExportHoldApi(ApiView):
    """The ways out of a payment's QuickBooks hold (the open hold of an invoice it pays): `check_again` (read the
    QuickBooks invoice again; released and exported when it matches now), `update_quickbooks` (send our lines and
    tax to the QuickBooks invoice, then compare), `unlink` (forget the QuickBooks invoice; audited). 409
    `hold_still_applies` with the reason when QuickBooks still differs."""

    client_scopes = {"POST": "export"}
    staff_permissions = {"POST": (EXPORT_PERMISSION,)}

    class InputSerializer(serializers.Serializer):
        action = serializers.ChoiceField(choices=["check_again", "update_quickbooks", "unlink"])
        invoice_id = serializers.IntegerField(
            required=False,
            help_text="Which invoice's hold, when the payment pays several held invoices; default: the oldest hold.",
        )

        class Meta:
            ref_name = "PaymentExportHoldAction"

    @extend_schema(
        operation_id="payments_export_hold_action",
        request=InputSerializer,
        responses={200: OpenApiResponse(PaymentOutputSerializer, description="Done; the payment as it is now.")},
    )
    @idempotent
    def post(self, request, payment_id: int):
        from quickbooks_export import holds
        from quickbooks_export.models import InvoiceExportHold

        serializer = self.InputSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        payment = payment_or_404(request, payment_id)
        action = serializer.validated_data["action"]
        who = actor(request)
        # Changing the QuickBooks invoice or its link needs what the links page needs for the same change; an API
        # client acts under its export scope, and the audit names it.
        if action != "check_again" and who["user"] is not None and not who["user"].has_perm(MANAGE_QUICKBOOKS):
            raise PermissionDenied(f"You need the permission {MANAGE_QUICKBOOKS} to {action.replace('_', ' ')}.")
        holds_of_payment = InvoiceExportHold.objects.filter(
            state=InvoiceExportHold.State.OPEN, invoice__applications__payment_id=payment.pk
        ).order_by("pk")
        if "invoice_id" in serializer.validated_data:
            holds_of_payment = holds_of_payment.filter(invoice_id=serializer.validated_data["invoice_id"])
        hold = holds_of_payment.first()
        if hold is None:
            named = serializer.validated_data.get("invoice_id")
            raise ApplicationError(
                f"Payment #{payment.pk} is not on hold" + (f" for invoice #{named}." if named is not None else "."),
                code="not_on_hold",
            )
        service = {
            "check_again": holds.invoice_hold_check_again,
            "update_quickbooks": holds.invoice_hold_update_quickbooks,
            "unlink": holds.invoice_hold_unlink,
        }[action]
        try:
            service(hold_id=hold.pk, user=who["user"], api_client=who["api_client"])
        except QuickBooksError as exc:
            raise ApplicationError(exc.message, code="quickbooks_error") from None
        return _payment_response(payment.pk)
