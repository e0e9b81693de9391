from django.urls import path

from . import views

app_name = "quickbooks_desktop"

urlpatterns = [
    path("", views.desktop_page, name="page"),
    path("qbwc/", views.qbwc_endpoint, name="qbwc"),
    path("settings/", views.desktop_settings, name="settings"),
    path("password/", views.desktop_password, name="password"),
    path("forget-company/", views.desktop_forget_company, name="forget_company"),
    path("fieldsync.qwc", views.desktop_qwc, name="qwc"),
]
