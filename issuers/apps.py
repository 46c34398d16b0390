from django.apps import AppConfig


class IssuersConfig(AppConfig):
    name = "issuers"
