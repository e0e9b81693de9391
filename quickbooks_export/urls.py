from django.urls import path

from quickbooks_export import views, webhooks

app_name = "quickbooks_export"
urlpatterns = [
    path("", views.settings_page, name="settings"),
    path("connect/", views.connect, name="connect"),
    path("callback/", views.callback, name="callback"),
    path("disconnect/", views.disconnect, name="disconnect"),
    path("mapping/", views.mapping_update, name="mapping"),
    path("company/refresh/", views.company_refresh, name="company_refresh"),
    path("tax-codes/", views.tax_codes_update, name="tax_codes"),
    path("class-and-location/", views.unit_tracking_update_view, name="unit_tracking"),
    path("class-and-location/job-types/", views.job_type_tracking_update_view, name="job_type_tracking"),
    path("automatic-export/", views.auto_export_update, name="auto_export"),
    path("webhooks/", webhooks.webhook_receive, name="webhooks"),
]
