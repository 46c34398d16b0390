"""The admin site, open to organization admins and auditors, each scoped to their orgs."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from trustportal.models import Role
from trustportal.selectors import organizations_for_user


class TrustPortalAdminSite(admin.AdminSite):
    site_header = "Trust Portal"
    site_title = "Trust Portal"
    index_title = "Administration"

    def has_permission(self, request: HttpRequest) -> bool:
        """Superusers, and users who are admin or auditor of at least one organization."""
        user = request.user
        if not user.is_active or not user.is_authenticated:
            return False
        if user.is_superuser:
            return True
        return organizations_for_user(user, roles=(Role.ADMIN, Role.AUDITOR)).exists()
