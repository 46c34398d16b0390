from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class PortalConfig(AppConfig):
    default = True
    name = "portal"
    label = "portal"
    verbose_name = "Portal"

    def ready(self) -> None:
        from portal.tokens import schema  # noqa: F401  (registers the OpenAPI authentication scheme)


class PortalAdminConfig(admin_apps.AdminConfig):
    """`django.contrib.admin` with the portal's scoped site; autodiscovers `portal.admin`."""

    default = False
    default_site = "portal.admin_site.TrustPortalAdminSite"
