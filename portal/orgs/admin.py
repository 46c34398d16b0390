"""Admin for organizations, memberships, teams, runners and users, scoped per organization."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin.utils import get_fields_from_path
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.forms import ModelChoiceField
from django.http import HttpRequest, HttpResponse

from audit.services import audit_record
from portal.admin_json import BoundedJsonAdmin
from trustportal.models import Membership, Organization, Role, Runner, Team, User
from trustportal.selectors import (
    organizations_for_user,
    users_in_organizations,
    users_wholly_within,
)


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


class ScopedRelatedFieldListFilter(admin.RelatedFieldListFilter):
    """A list filter on a relation that offers only objects the user may read.

    Django's own filter lists every row of the related table (every organization, team and
    user); this one limits the choices to the organizations where the user is admin or
    auditor, to their teams, runners and members, and otherwise to the objects the admin's own
    (scoped) queryset refers to.
    """

    def field_choices(self, field: Any, request: HttpRequest, model_admin: Any) -> Any:
        if request.user.is_superuser:
            return super().field_choices(field, request, model_admin)
        org_ids = readable_org_ids(request)
        related = field.related_model
        if related is Organization:
            allowed: QuerySet[Any] = Organization.objects.filter(pk__in=org_ids)
        elif related is User:
            allowed = users_in_organizations(org_ids)
        elif any(f.name == "organization" for f in related._meta.fields):
            allowed = related._default_manager.filter(organization_id__in=org_ids)
        else:
            allowed = related._default_manager.filter(
                pk__in=model_admin.get_queryset(request).values(f"{self.field_path}__pk")
            )
        ordering = self.field_admin_ordering(field, request, model_admin)
        return field.get_choices(
            include_blank=False,
            ordering=ordering,
            limit_choices_to={"pk__in": allowed.values("pk")},
        )


def scoped_list_filter(model: type[Model], list_filter: Any) -> list[Any]:
    """`list_filter` with every plain relation entry given the scoped related-object filter."""
    scoped: list[Any] = []
    for entry in list_filter:
        if isinstance(entry, str) and get_fields_from_path(model, entry)[-1].is_relation:
            entry = (entry, ScopedRelatedFieldListFilter)
        scoped.append(entry)
    return scoped


class OrgScopedAdmin(BoundedJsonAdmin):
    """A ModelAdmin that shows and changes only objects of the user's organizations.

    `org_path` is the lookup from the model to its Organization ("" for Organization itself).
    Admins of an organization change its objects; auditors only view them.
    """

    org_path = "organization"
    # Changes made through this admin's forms are recorded in the audit log here; an admin
    # whose saves go through services (which record their own changes) sets this to False.
    audited = True

    def log_addition(self, request: HttpRequest, obj: Model, message: Any) -> Any:
        self._audit(obj, "added", message)
        return super().log_addition(request, obj, message)

    def log_change(self, request: HttpRequest, obj: Model, message: Any) -> Any:
        self._audit(obj, "changed", message)
        return super().log_change(request, obj, message)

    def log_deletion(self, request: HttpRequest, obj: Model, object_repr: str) -> Any:
        self._audit(obj, "deleted", [])
        return super().log_deletion(request, obj, object_repr)

    def _audit(self, obj: Model, verb: str, message: Any) -> None:
        if self.audited:
            org_id = self._org_id_of(obj)
            organization = Organization.objects.filter(pk=org_id).first() if org_id else None
            record_admin_change(obj, verb, message, [organization] if organization else [])

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

    def get_list_filter(self, request: HttpRequest) -> Any:
        return scoped_list_filter(self.model, super().get_list_filter(request))

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


def _changed_fields(message: Any) -> list[str]:
    """The field names in the admin's change message (a list of {"changed": {"fields"}})."""
    if not isinstance(message, list):
        return []
    fields = {
        str(name)
        for part in message
        if isinstance(part, dict)
        for name in part.get("changed", {}).get("fields", [])
    }
    return sorted(fields)


def record_admin_change(
    obj: Model, verb: str, message: Any, organizations: list[Organization]
) -> None:
    """One audit record per organization the object belongs to, for a change in the admin."""
    name = obj._meta.model_name or "object"
    for organization in organizations:
        audit_record(
            event=f"{name}-{verb}-in-admin",
            description=f"{obj._meta.verbose_name} {obj} was {verb} in the admin.",
            organization=organization,
            target=obj,
            object_type=name,
            after={"changed_fields": _changed_fields(message)} if verb == "changed" else None,
        )


def visible_users(request: HttpRequest) -> QuerySet[User]:
    """Users an org admin may pick (as a member, a team member): people already in one of the
    orgs they administer, never an account in no org (adopting it is a superuser's call) and
    never a superuser or staff account."""
    return users_in_organizations(admin_org_ids(request)).filter(is_superuser=False, is_staff=False)


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


class TeamForm(forms.ModelForm[Team]):
    """A team: its members must be members of the team's organization."""

    class Meta:
        model = Team
        fields = ("organization", "name", "display_name", "members")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        organization, members = data.get("organization"), data.get("members")
        if organization is not None and members is not None:
            outsiders = members.exclude(pk__in=users_in_organizations([organization.pk]))
            if outsiders.exists():
                names = ", ".join(sorted(user.username for user in outsiders[:5]))
                self.add_error(
                    "members", f"Not members of {organization.login}: {names}. Add them first."
                )
        return data


@admin.register(Team)
class TeamAdmin(OrgScopedAdmin):
    form = TeamForm
    list_display = ("name", "organization", "display_name", "created")
    search_fields = ("name", "display_name")
    filter_horizontal = ("members",)


@admin.register(Runner)
class RunnerAdmin(OrgScopedAdmin):
    list_display = ("name", "organization", "description", "created")
    search_fields = ("name",)


@admin.register(User)
class ScopedUserAdmin(UserAdmin[User]):
    """Users: superusers see and change all; org admins change only people wholly theirs.

    An admin or auditor of an org views its members. An org admin changes a user's profile
    (username, name, email, `is_active`) only when every membership of the user is in an org
    they administer, so a user who also belongs elsewhere (maybe an admin there) is not theirs
    to take over. Only superusers create accounts, set or unset passwords, grant site-wide
    privileges and delete users: org admins have no password control at all (no set, no reset).
    Every change is recorded in the audit log of each organization the user belongs to.
    """

    def log_addition(self, request: HttpRequest, obj: User, message: Any) -> Any:
        self._audit(obj, "added", message)
        return super().log_addition(request, obj, message)

    def log_change(self, request: HttpRequest, obj: User, message: Any) -> Any:
        self._audit(obj, "changed", message)
        return super().log_change(request, obj, message)

    def log_deletion(self, request: HttpRequest, obj: User, object_repr: str) -> Any:
        self._audit(obj, "deleted", [])
        return super().log_deletion(request, obj, object_repr)

    def _audit(self, obj: User, verb: str, message: Any) -> None:
        organizations = list(Organization.objects.filter(memberships__user_id=obj.pk).distinct())
        record_admin_change(obj, verb, message, organizations)

    def get_queryset(self, request: HttpRequest) -> QuerySet[User]:
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(pk__in=users_in_organizations(readable_org_ids(request)))

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
        return users_wholly_within(admin_org_ids(request)).filter(pk=obj.pk).exists()

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A new account belongs to no org and carries a password: both a superuser's call.
        return bool(request.user.is_superuser)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return bool(request.user.is_superuser)

    def user_change_password(
        self, request: HttpRequest, id: str, form_url: str = ""
    ) -> HttpResponse:
        if not request.user.is_superuser:
            raise PermissionDenied
        return super().user_change_password(request, id, form_url)

    def get_list_filter(self, request: HttpRequest) -> Any:
        filters = super().get_list_filter(request)
        if request.user.is_superuser:
            return filters
        return scoped_list_filter(
            self.model, [name for name in filters if name not in _SUPERUSER_FIELDS]
        )

    def get_readonly_fields(self, request: HttpRequest, obj: User | None = None) -> Any:
        if request.user.is_superuser:
            return super().get_readonly_fields(request, obj)
        return ("last_login", "date_joined")

    def get_fieldsets(self, request: HttpRequest, obj: User | None = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if request.user.is_superuser or obj is None:
            return fieldsets
        # Org admins manage people's profiles, not passwords or site-wide privileges.
        return [
            (name, {**opts, "fields": [f for f in opts["fields"] if f not in _SUPERUSER_FIELDS]})
            for name, opts in fieldsets
            if [f for f in opts["fields"] if f not in _SUPERUSER_FIELDS]
        ]


# Fields (and list filters) only a superuser sees on the user admin.
_SUPERUSER_FIELDS = {"password", "is_staff", "is_superuser", "groups", "user_permissions"}
