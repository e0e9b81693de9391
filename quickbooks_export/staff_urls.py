"""The staff pages: Payments is the home page; exports, the export log and manual handling hang off it."""

from django.urls import path

from quickbooks_export import change_views, reconciliation_views, undo_views
from quickbooks_export import staff_views as views

app_name = "exports"
urlpatterns = [
    path("", views.payment_list, name="payment_list"),
    path("payments/count/", views.payment_count, name="payment_count"),
    path("payments/export/", views.payments_export, name="payments_export"),
    path("payments/<int:payment_id>/", views.payment_detail, name="payment_detail"),
    path("payments/<int:payment_id>/export/", views.payment_export, name="payment_export"),
    path("payments/<int:payment_id>/export/panel/", views.payment_export_panel, name="payment_export_panel"),
    path("payments/<int:payment_id>/retry/", views.payment_retry, name="payment_retry"),
    path("invoices/<int:invoice_id>/export/", views.invoice_export, name="invoice_export"),
    path(
        "payments/<int:payment_id>/holds/<int:hold_id>/<slug:action>/",
        views.payment_hold_action,
        name="payment_hold_action",
    ),
    path("payments/<int:payment_id>/mark-exported/", views.payment_mark_exported, name="payment_mark_exported"),
    path("payments/<int:payment_id>/exclude/", views.payment_exclude, name="payment_exclude"),
    path("payments/<int:payment_id>/include/", views.payment_include, name="payment_include"),
    path("exports/", views.export_log, name="log"),
    path("quickbooks-links/", views.mapping_list, name="mappings"),
    path("quickbooks-links/<int:mapping_id>/<slug:action>/", views.mapping_action, name="mapping_action"),
    path("exports/<int:batch_id>/", views.batch_detail, name="batch_detail"),
    path("exports/<int:batch_id>/progress/", views.batch_progress, name="batch_progress"),
    path("exports/<int:batch_id>/records/<str:outcome>/", views.batch_items, name="batch_items"),
    path("exports/<int:batch_id>/retry/", views.batch_retry_failed, name="batch_retry_failed"),
    path("exports/<int:batch_id>/undo/", undo_views.batch_undo, name="batch_undo"),
    path("payments/<int:payment_id>/undo/", undo_views.payment_undo, name="payment_undo"),
    path("undos/<int:undo_id>/", undo_views.undo_detail, name="undo_detail"),
    path("quickbooks-changes/", change_views.change_list, name="changes"),
    path("quickbooks-changes/<int:change_id>/<slug:resolution>/", change_views.change_action, name="change_action"),
    path("reconciliation/", reconciliation_views.reconciliation_list, name="reconciliation"),
    path("reconciliation/<int:run_id>/", reconciliation_views.reconciliation_detail, name="reconciliation_detail"),
    path(
        "reconciliation/<int:run_id>/progress/",
        reconciliation_views.reconciliation_progress,
        name="reconciliation_progress",
    ),
    path("reconciliation/<int:run_id>/csv/", reconciliation_views.reconciliation_csv, name="reconciliation_csv"),
    path("manual-handling/", views.manual_items, name="manual_items"),
    path("manual-handling/<int:item_id>/record/", views.manual_item_record, name="manual_item_record"),
]
