"""Record pages: customers, jobs, invoices and payments (see billing.record_views)."""

from django.urls import path

from . import record_views as views

app_name = "records"
urlpatterns = [
    path("customers/", views.customer_list, name="customer_list"),
    path("customers/new/", views.customer_create, name="customer_create"),
    path("customers/<int:customer_id>/", views.customer_detail, name="customer_detail"),
    path("customers/<int:customer_id>/edit/", views.customer_edit, name="customer_edit"),
    path("customers/<int:customer_id>/jobs/new/", views.job_create, name="job_create"),
    path("jobs/<int:job_id>/edit/", views.job_edit, name="job_edit"),
    path("customers/<int:customer_id>/invoices/new/", views.invoice_create, name="invoice_create"),
    path("customers/<int:customer_id>/payments/new/", views.payment_create, name="payment_create"),
    path("invoices/", views.invoice_list, name="invoice_list"),
    path("invoices/<int:invoice_id>/", views.invoice_detail, name="invoice_detail"),
    path("invoices/<int:invoice_id>/edit/", views.invoice_edit, name="invoice_edit"),
    path("invoices/<int:invoice_id>/issue/", views.invoice_issue, name="invoice_issue"),
    path("invoices/<int:invoice_id>/void/", views.invoice_void, name="invoice_void"),
    path("payments/<int:payment_id>/apply-credit/", views.payment_apply_credit, name="payment_apply_credit"),
]
