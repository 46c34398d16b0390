from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class TrustPortalConfig(AppConfig):
    default = True
    name = "trustportal"
    verbose_name = "Organizations"

    def ready(self) -> None:
        from trustportal import checks  # noqa: F401  (registers the system checks)


class TrustPortalAdminConfig(admin_apps.AdminConfig):
    default = False
    default_site = "trustportal.admin_site.TrustPortalAdminSite"
