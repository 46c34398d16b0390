from django.urls import path

from tokens import api

urlpatterns = [
    path("user", api.CurrentUserApi.as_view(), name="api-user"),
]
