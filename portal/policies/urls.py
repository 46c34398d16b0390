from django.urls import path

from portal.policies import api

prefix = "orgs/<str:org>/auth/policies/"

urlpatterns = [
    path(
        prefix + "oidcissuers/<str:issuer_id>",
        api.PolicyForIssuerApi.as_view(),
        name="api-policy-for-issuer",
    ),
    path(prefix + "<str:policy_id>", api.PolicyApi.as_view(), name="api-policy"),
    path(
        prefix + "<str:policy_id>/simulate", api.SimulateApi.as_view(), name="api-policy-simulate"
    ),
    path(prefix + "<str:policy_id>/replay", api.ReplayApi.as_view(), name="api-policy-replay"),
    path(
        prefix + "<str:policy_id>/versions",
        api.VersionListApi.as_view(),
        name="api-policy-versions",
    ),
    path(
        prefix + "<str:policy_id>/versions/<int:version>/rollback",
        api.RollbackApi.as_view(),
        name="api-policy-rollback",
    ),
]
