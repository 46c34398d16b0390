"""URL configuration: the portal pages, the admin and the API."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import URLPattern, URLResolver, include, path
from drf_spectacular.views import SpectacularJSONAPIView

from exchange.views import token_exchange
from signin.views import PortalLoginView
from trustportal import views

api_patterns: list[URLPattern | URLResolver] = [
    path("oauth/token", token_exchange, name="oauth-token"),
    path("", include("tokens.urls")),
    path("", include("trustportal.api_urls")),
    path("", include("issuers.urls")),
    path("", include("policies.urls")),
    path("", include("environments.urls")),
    path("", include("audit.urls")),
    path("", include("notifications.urls")),
    path("openapi.json", SpectacularJSONAPIView.as_view(), name="openapi-schema"),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", PortalLoginView.as_view(), name="login"),
    path("signin/", include("signin.urls")),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("orgs/<str:org>/issuers/", include("issuers.page_urls")),
    path("orgs/<str:org>/policies/", include("policies.page_urls")),
    path("orgs/<str:org>/environments/", include("environments.page_urls")),
    path("orgs/<str:org>/audit/", include("audit.page_urls")),
    path("orgs/<str:org>/notifications/", include("notifications.page_urls")),
    # After the other orgs/<org>/… pages: the dashboard, history and token pages.
    path("orgs/<str:org>/", include("tokens.page_urls")),
    path("api/", include(api_patterns)),
    path("oidc/", include("environments.oidc_urls")),
]

handler404 = "trustportal.views.not_found"
handler500 = "trustportal.views.internal_error"
