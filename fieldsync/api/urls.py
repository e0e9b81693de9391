"""/api/v1/ routes, the OpenAPI schema (/api/schema/) and its documentation (/api/docs/, served locally)."""

from django.conf import settings
from django.http import JsonResponse
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

from fieldsync.api import billing, exports

app_name = "api"


@csrf_exempt  # it changes nothing; a 404 must not turn into CSRF's HTML 403
def not_found(request, *args, **kwargs):
    return JsonResponse(
        {"code": "not_found", "message": f"No API endpoint at {request.path}; see /api/docs/.", "details": {}},
        status=404,
    )


def docs_policy(view):
    """Swagger UI and Redoc inject their own style elements at run time: their two pages get the docs policy
    (inline styles allowed, scripts still only from this site). The Swagger page is the split view, whose
    initialisation script is a file (?script), not inline."""

    def wrapped(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        response["Content-Security-Policy"] = settings.FIELDSYNC_API_DOCS_CONTENT_SECURITY_POLICY
        return response

    return wrapped


v1 = [
    path("customers/", billing.CustomersApi.as_view(), name="customers"),
    path("tax-rates/", billing.TaxRatesApi.as_view(), name="tax_rates"),
    path("customers/<int:customer_id>/", billing.CustomerDetailApi.as_view(), name="customer"),
    path("jobs/", billing.JobsApi.as_view(), name="jobs"),
    path("jobs/<int:job_id>/", billing.JobDetailApi.as_view(), name="job"),
    path("invoices/", billing.InvoicesApi.as_view(), name="invoices"),
    path("invoices/<str:number>/", billing.InvoiceDetailApi.as_view(), name="invoice"),
    path("invoices/<str:number>/issue/", billing.InvoiceIssueApi.as_view(), name="invoice_issue"),
    path("invoices/<str:number>/void/", billing.InvoiceVoidApi.as_view(), name="invoice_void"),
    path("payments/", billing.PaymentsApi.as_view(), name="payments"),
    path("payments/<int:payment_id>/", billing.PaymentDetailApi.as_view(), name="payment"),
    path("payments/<int:payment_id>/applications/", billing.PaymentApplicationsApi.as_view(), name="payment_apply"),
    path("payments/<int:payment_id>/refunds/", billing.PaymentRefundsApi.as_view(), name="payment_refunds"),
    path("payments/<int:payment_id>/export/", exports.PaymentExportApi.as_view(), name="payment_export"),
    path("invoices/<str:number>/export/", exports.InvoiceExportApi.as_view(), name="invoice_export"),
    path("payments/<int:payment_id>/export-hold/", exports.PaymentExportHoldApi.as_view(), name="payment_export_hold"),
    path("exports/", exports.ExportsApi.as_view(), name="exports"),
    path("exports/<int:batch_id>/", exports.ExportDetailApi.as_view(), name="export"),
    path("exports/<int:batch_id>/items/", exports.ExportItemsApi.as_view(), name="export_items"),
]

urlpatterns = [
    path("v1/", include(v1)),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", docs_policy(SpectacularSwaggerSplitView.as_view(url_name="api:schema")), name="docs"),
    path("redoc/", docs_policy(SpectacularRedocView.as_view(url_name="api:schema")), name="redoc"),
    # Anything else under /api/ answers in the API's error shape, not with the site's HTML 404 page.
    re_path(r"^", not_found),
]
