from django.urls import path

from portal.notifications import api

urlpatterns = [
    path("orgs/<str:org>/hooks", api.WebhookListApi.as_view(), name="api-hooks"),
    path("orgs/<str:org>/hooks/<str:name>", api.WebhookApi.as_view(), name="api-hook"),
    path(
        "orgs/<str:org>/hooks/<str:name>/ping", api.WebhookPingApi.as_view(), name="api-hook-ping"
    ),
    path(
        "orgs/<str:org>/hooks/<str:name>/deliveries",
        api.WebhookDeliveriesApi.as_view(),
        name="api-hook-deliveries",
    ),
]
