from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from fieldsync import health, metrics

urlpatterns = [
    # For load balancers, orchestrators and Prometheus: no login for health (no secrets in it), a token for metrics.
    path("health/live", health.live_view, name="health-live"),
    path("health/ready", health.ready_view, name="health-ready"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("quickbooks/", include("quickbooks_export.urls")),
    path("quickbooks-desktop/", include("quickbooks_desktop.urls")),
    path("api/", include("fieldsync.api.urls")),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    # Staff pages: Payments is the home page ("/"); billing's actions and the export pages share the root.
    path("", include("billing.urls")),
    path("", include("billing.record_urls")),
    path("", include("quickbooks_export.staff_urls")),
]
