"""Policy pages, mounted by the project at `orgs/<org>/policies/`."""

from django.urls import URLPattern, path

from portal.policies import draft_views, tool_views, views

app_name = "policies"

urlpatterns: list[URLPattern] = [
    path("<uuid:issuer_id>/", views.editor, name="editor"),
    path("<uuid:issuer_id>/definitions/add/", views.definition_add, name="add"),
    path("<uuid:issuer_id>/definitions/replace/", views.definitions_replace, name="replace"),
    path("<uuid:issuer_id>/definitions/<int:index>/edit/", views.definition_edit, name="edit"),
    path(
        "<uuid:issuer_id>/definitions/<int:index>/delete/",
        views.definition_delete,
        name="delete",
    ),
    path("<uuid:issuer_id>/definitions/<int:index>/move/", views.definition_move, name="move"),
    path("<uuid:issuer_id>/draft/publish/", draft_views.publish, name="publish"),
    path("<uuid:issuer_id>/draft/discard/", draft_views.discard, name="discard"),
    path("<uuid:issuer_id>/draft/restart/", draft_views.restart, name="restart"),
    path("<uuid:issuer_id>/simulate/", tool_views.simulate, name="simulate"),
    path("<uuid:issuer_id>/replay/", tool_views.replay, name="replay"),
    path("<uuid:issuer_id>/versions/", tool_views.versions, name="versions"),
    path(
        "<uuid:issuer_id>/versions/<int:version>/rollback/",
        tool_views.rollback,
        name="rollback",
    ),
]
