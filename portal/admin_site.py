"""The admin site, open to organization admins and auditors, each scoped to their orgs."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from portal.signin.forms import ThrottledAuthenticationForm
from trustportal.models import Role, User
from trustportal.selectors import organizations_for_user

# The admin home lists at most this many organizations (a superuser sees every one).
INDEX_ORGANIZATIONS = 100


def may_administer(user: object) -> bool:
    """Superusers, and active users who are admin or auditor of at least one organization."""
    if not isinstance(user, User) or not user.is_active:
        return False
    if user.is_superuser:
        return True
    return organizations_for_user(user, roles=(Role.ADMIN, Role.AUDITOR)).exists()


class AdminLoginForm(ThrottledAuthenticationForm, AdminAuthenticationForm):
    """The administration's sign-in: open to whoever `may_administer`, not only to staff.

    Org admins and auditors are not staff; Django's own form would refuse them at the door of
    the site that is their home. Others get the same answer as a wrong password.
    """

    error_messages = {
        **ThrottledAuthenticationForm.error_messages,
        "invalid_login": (
            "Please enter the correct %(username)s and password of an organization admin or "
            "auditor. Note that both fields may be case-sensitive."
        ),
    }

    def confirm_login_allowed(self, user: AbstractBaseUser) -> None:
        if not may_administer(user):
            raise ValidationError(
                self.error_messages["invalid_login"],
                code="invalid_login",
                params={"username": self.username_field.verbose_name},
            )


class TrustPortalAdminSite(admin.AdminSite):
    site_header = "Trust Portal"
    site_title = "Trust Portal"
    index_title = "Administration"
    login_form = AdminLoginForm

    def has_permission(self, request: HttpRequest) -> bool:
        """Superusers, and users who are admin or auditor of at least one organization."""
        return may_administer(request.user)

    def index(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        """The admin home, listing the user's organizations with links to their portal pages."""
        organizations = organizations_for_user(
            request.user, roles=(Role.ADMIN, Role.AUDITOR)
        ).order_by("login")[:INDEX_ORGANIZATIONS]
        return super().index(
            request, {"portal_organizations": organizations, **(extra_context or {})}
        )
