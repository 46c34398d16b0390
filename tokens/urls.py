from django.urls import path

from tokens import api, views

urlpatterns = [
    path("oauth/token", views.token_exchange, name="oauth-token"),
    path("user", api.CurrentUserApi.as_view(), name="api-user"),
]
