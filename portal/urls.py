"""URL configuration: the portal pages, the admin and the API."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import URLPattern, URLResolver, include, path
from drf_spectacular.views import SpectacularJSONAPIView

from portal import views
from portal.exchange.views import token_exchange
from portal.orgs import people
from portal.signin.views import PortalLoginView

api_patterns: list[URLPattern | URLResolver] = [
    path("oauth/token", token_exchange, name="oauth-token"),
    path("", include("portal.tokens.urls")),
    path("", include("portal.orgs.urls")),
    path("", include("portal.issuers.urls")),
    path("", include("portal.policies.urls")),
    path("", include("portal.environments.urls")),
    path("", include("portal.audit.urls")),
    path("", include("portal.notifications.urls")),
    path("openapi.json", SpectacularJSONAPIView.as_view(), name="openapi-schema"),
]

people_patterns: list[URLPattern | URLResolver] = [
    path("", people.people, name="people"),
    path("members/add/", people.member_add, name="people-member-add"),
    path("members/<int:user_id>/created/", people.member_created, name="people-member-created"),
    path("members/<int:membership_id>/role/", people.member_role, name="people-member-role"),
    path("members/<int:membership_id>/remove/", people.member_remove, name="people-member-remove"),
    path("teams/add/", people.team_add, name="people-team-add"),
    path("teams/<int:team_id>/delete/", people.team_delete, name="people-team-delete"),
    path(
        "teams/<int:team_id>/members/add/",
        people.team_member_add,
        name="people-team-member-add",
    ),
    path(
        "teams/<int:team_id>/members/<int:user_id>/remove/",
        people.team_member_remove,
        name="people-team-member-remove",
    ),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", PortalLoginView.as_view(), name="login"),
    path("signin/", include("portal.signin.urls")),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("orgs/<str:org>/issuers/", include("portal.issuers.page_urls")),
    path("orgs/<str:org>/policies/", include("portal.policies.page_urls")),
    path("orgs/<str:org>/environments/", include("portal.environments.page_urls")),
    path("orgs/<str:org>/audit/", include("portal.audit.page_urls")),
    path("orgs/<str:org>/notifications/", include("portal.notifications.page_urls")),
    path("orgs/<str:org>/people/", include(people_patterns)),
    # After the other orgs/<org>/… pages: the dashboard, history and token pages.
    path("orgs/<str:org>/", include("portal.tokens.page_urls")),
    path("api/", include(api_patterns)),
    path("oidc/", include("portal.environments.oidc_urls")),
]

handler403 = "portal.views.forbidden"
handler404 = "portal.views.not_found"
handler500 = "portal.views.internal_error"
