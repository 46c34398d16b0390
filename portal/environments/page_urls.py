"""Environment pages, mounted by the project at `orgs/<org>/environments/`."""

from django.urls import URLPattern, path

from portal.environments import settings_views, views

app_name = "environments"

urlpatterns: list[URLPattern] = [
    path("", views.environment_list, name="list"),
    path("new/", views.environment_new, name="new"),
    path("settings/", settings_views.environment_settings, name="settings"),
    path(
        "settings/roles/<str:role_id>/delete/",
        settings_views.environment_role_delete,
        name="role-delete",
    ),
    path("<str:project>/<str:name>/", views.environment_detail, name="detail"),
    path("<str:project>/<str:name>/delete/", views.environment_delete, name="delete"),
    path("<str:project>/<str:name>/revisions/", views.environment_revisions, name="revisions"),
    path(
        "<str:project>/<str:name>/permissions/",
        views.environment_permissions,
        name="permissions",
    ),
]
