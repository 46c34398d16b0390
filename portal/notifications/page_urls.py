from django.urls import path

from portal.notifications import views

app_name = "notifications"
urlpatterns = [
    path("", views.notifications_page, name="page"),
    path("threshold", views.threshold, name="threshold"),
    path("<str:name>/<str:action>", views.webhook_action, name="action"),
]
