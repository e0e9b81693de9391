from django.urls import path

from . import views

app_name = "billing"
urlpatterns = [
    path("payments/<int:payment_id>/refunds/", views.refund_create, name="refund_create"),
    path("manual-handling/<int:item_id>/handled/", views.manual_item_mark_handled, name="manual_item_handled"),
    path("business-unit/", views.business_unit_switch, name="business_unit_switch"),
]
