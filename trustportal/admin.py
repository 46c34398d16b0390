"""Admin for organizations, memberships, teams, runners and users, scoped per organization."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.db.models import Model, Q, QuerySet
from django.forms import ModelChoiceField
from django.http import HttpRequest

from trustportal.models import Membership, Organization, Role, Runner, Team, User
from trustportal.selectors import organizations_for_user


def admin_org_ids(request: HttpRequest) -> set[int]:
    """Ids of the organizations the signed-in user administers (cached on the request)."""
    cached = getattr(request, "_admin_org_ids", None)
    if cached is None:
        cached = set(
            organizations_for_user(request.user, roles=(Role.ADMIN,)).values_list("pk", flat=True)
        )
        request._admin_org_ids = cached  # type: ignore[attr-defined]
    return cached


def readable_org_ids(request: HttpRequest) -> set[int]:
    """Ids of the organizations the signed-in user may read in the admin (admin or auditor)."""
    cached = getattr(request, "_readable_org_ids", None)
    if cached is None:
        cached = set(
            organizations_for_user(
                request.user,
                roles=(Role.ADMIN, Role.AUDITOR),
            ).values_list("pk", flat=True)
        )
        request._readable_org_ids = cached  # type: ignore[attr-defined]
    return cached


class ReadOnlyAdmin:
    """Mixin (listed before the ModelAdmin): records nobody adds, changes or deletes here."""

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


class OrgScopedAdmin(admin.ModelAdmin[Any]):
    """A ModelAdmin that shows and changes only objects of the user's organizations.

    `org_path` is the lookup from the model to its Organization ("" for Organization itself).
    Admins of an organization change its objects; auditors only view them.
    """

    org_path = "organization"

    def _org_lookup(self) -> str:
        return f"{self.org_path}__in" if self.org_path else "pk__in"

    def _org_id_of(self, obj: Model) -> int | None:
        if not self.org_path:
            return int(obj.pk)
        target: Any = obj
        for part in self.org_path.split("__"):
            target = getattr(target, part, None)
            if target is None:
                return None
        return int(target.pk)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(**{self._org_lookup(): readable_org_ids(request)})

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser or bool(readable_org_ids(request))

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        if request.user.is_superuser:
            return True
        if obj is None:
            return bool(readable_org_ids(request))
        return self._org_id_of(obj) in readable_org_ids(request)

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        if request.user.is_superuser:
            return True
        if obj is None:
            return bool(admin_org_ids(request))
        return self._org_id_of(obj) in admin_org_ids(request)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self.has_change_permission(request, obj)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return request.user.is_superuser or bool(admin_org_ids(request))

    def formfield_for_foreignkey(
        self, db_field: Any, request: HttpRequest, **kwargs: Any
    ) -> ModelChoiceField[Any] | None:
        """Offer only the user's administered organizations (and their teams) as choices."""
        if not request.user.is_superuser:
            if db_field.related_model is Organization:
                kwargs["queryset"] = Organization.objects.filter(pk__in=admin_org_ids(request))
            elif db_field.related_model is Team:
                kwargs["queryset"] = Team.objects.filter(organization_id__in=admin_org_ids(request))
            elif db_field.related_model is Runner:
                kwargs["queryset"] = Runner.objects.filter(
                    organization_id__in=admin_org_ids(request)
                )
            elif db_field.related_model is User:
                kwargs["queryset"] = visible_users(request)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if not request.user.is_superuser and db_field.related_model is User:
            kwargs["queryset"] = visible_users(request)
        return super().formfield_for_manytomany(db_field, request, **kwargs)


def visible_users(request: HttpRequest) -> QuerySet[User]:
    """Users an org admin may pick: members of their orgs, and accounts in no org yet."""
    return User.objects.filter(
        Q(memberships__organization_id__in=admin_org_ids(request)) | Q(memberships__isnull=True),
        is_superuser=False,
    ).distinct()


@admin.register(Organization)
class OrganizationAdmin(OrgScopedAdmin):
    org_path = ""
    list_display = ("login", "name", "created")
    search_fields = ("login", "name")

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return request.user.is_superuser

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return request.user.is_superuser

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None) -> Any:
        # The login is part of every audience and token; only a superuser may rename it.
        return () if request.user.is_superuser else ("login",)


@admin.register(Membership)
class MembershipAdmin(OrgScopedAdmin):
    list_display = ("user", "organization", "role", "created")
    list_filter = ("role",)
    search_fields = ("user__username", "user__email", "organization__login")


@admin.register(Team)
class TeamAdmin(OrgScopedAdmin):
    list_display = ("name", "organization", "display_name", "created")
    search_fields = ("name", "display_name")
    filter_horizontal = ("members",)


@admin.register(Runner)
class RunnerAdmin(OrgScopedAdmin):
    list_display = ("name", "organization", "description", "created")
    search_fields = ("name",)


@admin.register(User)
class ScopedUserAdmin(UserAdmin[User]):
    """Users: superusers see all; org admins see and edit the members of their orgs."""

    def get_queryset(self, request: HttpRequest) -> QuerySet[User]:
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(
            memberships__organization_id__in=readable_org_ids(request)
        ).distinct()

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser or bool(admin_org_ids(request))

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        if request.user.is_superuser:
            return True
        if obj is None:
            return bool(readable_org_ids(request))
        return self.get_queryset(request).filter(pk=obj.pk).exists()

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        if request.user.is_superuser:
            return True
        if obj is None:
            return bool(admin_org_ids(request))
        if getattr(obj, "is_superuser", False):
            return False
        return User.objects.filter(
            pk=obj.pk, memberships__organization_id__in=admin_org_ids(request)
        ).exists()

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser or bool(admin_org_ids(request))

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return request.user.is_superuser

    def get_fieldsets(self, request: HttpRequest, obj: User | None = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if request.user.is_superuser or obj is None:
            return fieldsets
        # Org admins manage people, not site-wide privileges.
        return [
            (name, {**opts, "fields": [f for f in opts["fields"] if f not in _PRIVILEGE_FIELDS]})
            for name, opts in fieldsets
            if [f for f in opts["fields"] if f not in _PRIVILEGE_FIELDS]
        ]


_PRIVILEGE_FIELDS = {"is_staff", "is_superuser", "groups", "user_permissions"}
