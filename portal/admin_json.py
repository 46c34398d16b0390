"""Read-only JSON fields in the admin, rendered with a depth and size bound.

Django shows a read-only JSONField with `json.dumps`, which raises RecursionError on stored
JSON nested a few hundred levels deep (claims of a forged token are stored as received).
The mixin shows each such field through `trustportal.jsonview.bounded_json` instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.db.models import JSONField, Model
from django.http import HttpRequest
from django.utils.html import format_html

from trustportal.jsonview import bounded_json

SUFFIX = "_bounded_json"


def _display(field: JSONField) -> Callable[[Model], str]:
    @admin.display(description=field.verbose_name)
    def show(obj: Model) -> str:
        return format_html('<pre class="json">{}</pre>', bounded_json(getattr(obj, field.name)))

    return show


class BoundedJsonAdmin(admin.ModelAdmin[Any]):
    """A ModelAdmin whose read-only JSON fields render bounded (never a 500 for any value).

    Editable JSON fields keep their form widget: only what is shown read-only is replaced.
    Subclasses may override `get_readonly_fields` and `get_fieldsets` as usual: the instance
    wraps whichever methods the class ends up with, so the substitution always applies.
    """

    def __init__(self, model: type[Model], admin_site: admin.AdminSite) -> None:
        super().__init__(model, admin_site)
        self._json_fields = {
            field.name for field in model._meta.fields if isinstance(field, JSONField)
        }
        for field in model._meta.fields:
            if isinstance(field, JSONField):
                setattr(self, field.name + SUFFIX, _display(field))
        plain_readonly, plain_fieldsets = self.get_readonly_fields, self.get_fieldsets

        def get_readonly_fields(request: HttpRequest, obj: Model | None = None) -> Any:
            readonly = plain_readonly(request, obj)
            return [self._shown(name, set(readonly)) for name in readonly]

        def get_fieldsets(request: HttpRequest, obj: Model | None = None) -> Any:
            readonly = set(plain_readonly(request, obj))
            return [
                (name, {**opts, "fields": [self._shown(f, readonly) for f in opts["fields"]]})
                for name, opts in plain_fieldsets(request, obj)
            ]

        self.get_readonly_fields = get_readonly_fields  # type: ignore[method-assign]
        self.get_fieldsets = get_fieldsets  # type: ignore[method-assign]

    def _shown(self, name: Any, readonly: set[Any]) -> Any:
        """The name to show for a field: a JSON field shown read-only gets the bounded one."""
        if isinstance(name, tuple | list):
            return type(name)(self._shown(item, readonly) for item in name)
        if name in self._json_fields and name in readonly:
            return name + SUFFIX
        return name
