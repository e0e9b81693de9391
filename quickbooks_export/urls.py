from django.urls import path  # noqa: F401

app_name = "quickbooks_export"
urlpatterns: list = []
