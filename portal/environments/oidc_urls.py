"""The portal's OIDC issuer, mounted by the project at `oidc/`."""

from django.urls import URLPattern, path

from portal.environments import oidc_views

urlpatterns: list[URLPattern] = [
    path(
        ".well-known/openid-configuration",
        oidc_views.openid_configuration,
        name="oidc-configuration",
    ),
    path(".well-known/jwks", oidc_views.jwks, name="oidc-jwks"),
]
