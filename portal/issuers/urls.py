from django.urls import path

from portal.issuers import api

urlpatterns = [
    path("orgs/<str:org>/oidc/issuers", api.IssuerListApi.as_view(), name="api-issuers"),
    path(
        "orgs/<str:org>/oidc/issuers/<str:issuer_id>",
        api.IssuerDetailApi.as_view(),
        name="api-issuer",
    ),
    path(
        "orgs/<str:org>/oidc/issuers/<str:issuer_id>/regenerate-thumbprints",
        api.RegenerateThumbprintsApi.as_view(),
        name="api-issuer-thumbprints",
    ),
]
