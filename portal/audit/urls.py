from django.urls import path

from portal.audit import api

urlpatterns = [
    path("orgs/<str:org>/auditlogs", api.AuditLogApi.as_view(), name="api-auditlogs"),
    path(
        "orgs/<str:org>/auditlogs/export",
        api.AuditLogExportApi.as_view(),
        name="api-auditlogs-export",
    ),
]
