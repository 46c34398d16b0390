"""The admin registers every model of the project once, through `portal.admin`'s imports."""

from __future__ import annotations

from django.contrib import admin

from portal.admin_site import TrustPortalAdminSite

PROJECT_ADMINS = {
    "environments.AccessEvent": "AccessEventAdmin",
    "environments.CredentialIssuance": "CredentialIssuanceAdmin",
    "environments.Environment": "EnvironmentAdmin",
    "environments.SigningKey": "SigningKeyAdmin",
    "issuers.Issuer": "IssuerAdmin",
    "signin.IdentityProvider": "IdentityProviderAdmin",
    "signin.OrganizationSignInPolicy": "OrganizationSignInPolicyAdmin",
    "signin.SignInEvent": "SignInEventAdmin",
    "tokens.AccessToken": "AccessTokenAdmin",
    "tokens.ExchangeEvent": "ExchangeEventAdmin",
    "trustportal.Membership": "MembershipAdmin",
    "trustportal.Organization": "OrganizationAdmin",
    "trustportal.Runner": "RunnerAdmin",
    "trustportal.Team": "TeamAdmin",
    "trustportal.User": "ScopedUserAdmin",
}
PROJECT_APPS = {
    "audit",
    "environments",
    "issuers",
    "notifications",
    "policies",
    "signin",
    "tokens",
    "trustportal",
}


def test_every_project_model_admin_is_registered_on_the_portal_site() -> None:
    assert isinstance(admin.site, TrustPortalAdminSite)
    registered = {
        model._meta.label: type(model_admin).__name__
        for model, model_admin in admin.site._registry.items()
        if model._meta.app_label in PROJECT_APPS
    }
    assert registered == PROJECT_ADMINS
