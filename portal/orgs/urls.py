from django.urls import path

from portal.orgs import api

urlpatterns = [
    path("orgs/<str:org>", api.OrganizationApi.as_view(), name="api-org"),
    path("orgs/<str:org>/teams", api.TeamListApi.as_view(), name="api-org-teams"),
]
