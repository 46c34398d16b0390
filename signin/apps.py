from django.apps import AppConfig


class SignInConfig(AppConfig):
    default = True
    name = "signin"
    verbose_name = "Sign-in"

    def ready(self) -> None:
        from signin import signals  # noqa: F401  (records every sign-in and failure)
