"""Issuer pages, mounted by the project at `orgs/<org>/issuers/`."""

from django.urls import URLPattern, path

from portal.issuers import views

app_name = "issuers"

urlpatterns: list[URLPattern] = [
    path("", views.issuer_list, name="list"),
    path("register/", views.issuer_register, name="register"),
    path("<uuid:issuer_id>/", views.issuer_detail, name="detail"),
    path("<uuid:issuer_id>/refresh/", views.issuer_refresh, name="refresh"),
    path(
        "<uuid:issuer_id>/regenerate-thumbprints/",
        views.issuer_regenerate_thumbprints,
        name="regenerate-thumbprints",
    ),
    path("<uuid:issuer_id>/enabled/", views.issuer_set_enabled, name="set-enabled"),
    path("<uuid:issuer_id>/disable/", views.issuer_disable, name="disable"),
    path("<uuid:issuer_id>/delete/", views.issuer_delete, name="delete"),
]
