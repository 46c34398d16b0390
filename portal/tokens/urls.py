from django.urls import path

from portal.tokens import api

urlpatterns = [
    path("user", api.CurrentUserApi.as_view(), name="api-user"),
    path("user/tokens", api.UserTokenListApi.as_view(), name="api-user-tokens"),
    path("user/tokens/<str:token_id>", api.UserTokenApi.as_view(), name="api-user-token"),
    path("orgs/<str:org>/oidc/exchanges", api.ExchangeListApi.as_view(), name="api-exchanges"),
    path(
        "orgs/<str:org>/oidc/exchanges/export.<str:fmt>",
        api.ExchangeExportApi.as_view(),
        name="api-exchanges-export",
    ),
    path(
        "orgs/<str:org>/oidc/exchanges/<str:event_id>",
        api.ExchangeDetailApi.as_view(),
        name="api-exchange",
    ),
    path("orgs/<str:org>/tokens", api.OrgTokenListApi.as_view(), name="api-org-tokens"),
    path(
        "orgs/<str:org>/tokens/revoke",
        api.OrgTokenRevokeApi.as_view(),
        name="api-org-tokens-revoke",
    ),
    path("orgs/<str:org>/tokens/<str:token_id>", api.OrgTokenApi.as_view(), name="api-org-token"),
]
