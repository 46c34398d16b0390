"""ESC API routes, mounted under `/api/`: `/api/esc/environments…` as `pulumi-esc-sdk` calls."""

from django.urls import URLPattern, path, re_path

from portal.environments import api, api_settings, api_tags

base = "esc/environments/<str:org>/<str:project>/<str:env>"

urlpatterns: list[URLPattern] = [
    path(
        "orgs/<str:org>/environments/settings",
        api_settings.EnvironmentSettingsApi.as_view(),
        name="api-env-settings",
    ),
    path(
        "orgs/<str:org>/environments/roles",
        api_settings.EnvironmentRoleListApi.as_view(),
        name="api-env-roles",
    ),
    path(
        "orgs/<str:org>/environments/roles/<str:role_id>",
        api_settings.EnvironmentRoleApi.as_view(),
        name="api-env-role",
    ),
    path("esc/environments", api.AllEnvironmentsApi.as_view(), name="api-esc-all"),
    path("esc/environments/<str:org>", api.OrgEnvironmentsApi.as_view(), name="api-esc-org"),
    # Before the environment routes: `yaml/check` is reserved as an environment name.
    path("esc/environments/<str:org>/yaml/check", api.CheckYamlApi.as_view(), name="api-esc-check"),
    path(base, api.EnvironmentApi.as_view(), name="api-esc-environment"),
    path(base + "/decrypt", api.DecryptApi.as_view(), name="api-esc-decrypt"),
    path(base + "/open", api.OpenApi.as_view(), name="api-esc-open"),
    # pulumi-esc-sdk 0.14 reads a single property from `open//{id}`: accept one or more slashes.
    re_path(
        r"^esc/environments/(?P<org>[^/]+)/(?P<project>[^/]+)/(?P<env>[^/]+)/open/+(?P<session>[^/]+)$",
        api.OpenSessionApi.as_view(),
        name="api-esc-session",
    ),
    path(base + "/rotate", api.RotateApi.as_view(), name="api-esc-rotate"),
    path(base + "/versions", api.RevisionListApi.as_view(), name="api-esc-revisions"),
    path(
        base + "/versions/tags",
        api_tags.RevisionTagListApi.as_view(),
        name="api-esc-revision-tags",
    ),
    path(
        base + "/versions/tags/<str:tag>",
        api_tags.RevisionTagApi.as_view(),
        name="api-esc-revision-tag",
    ),
    path(
        base + "/versions/<str:version>",
        api.EnvironmentVersionApi.as_view(),
        name="api-esc-version",
    ),
    path(
        base + "/versions/<str:version>/open",
        api.VersionOpenApi.as_view(),
        name="api-esc-version-open",
    ),
    path(
        base + "/versions/<str:version>/decrypt",
        api.VersionDecryptApi.as_view(),
        name="api-esc-version-decrypt",
    ),
    path(base + "/tags", api_tags.EnvironmentTagListApi.as_view(), name="api-esc-tags"),
    path(base + "/tags/<str:tag>", api_tags.EnvironmentTagApi.as_view(), name="api-esc-tag"),
]
