from django.apps import AppConfig


class TrustPortalConfig(AppConfig):
    default = True
    name = "trustportal"
    verbose_name = "Organizations"

    def ready(self) -> None:
        from trustportal import checks  # noqa: F401  (registers the system checks)

