from django.apps import AppConfig


class PoliciesConfig(AppConfig):
    name = "policies"

    def ready(self) -> None:
        from issuers import epoch

        # Every saved policy (each new version saves it) reaches the exchange caches at once.
        epoch.connect("policies.AuthPolicy")
