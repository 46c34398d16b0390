from django.urls import path

from portal.signin import mfa, views

app_name = "signin"

urlpatterns = [
    path("oidc/<int:pk>/start/", views.SignInStartView.as_view(), name="oidc-start"),
    path("oidc/callback/", views.SignInCallbackView.as_view(), name="oidc-callback"),
    path("mfa/enrol/", mfa.enrol, name="mfa-enrol"),
    path("mfa/verify/", mfa.verify, name="mfa-verify"),
]
