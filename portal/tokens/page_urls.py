"""Pages of the tokens app, mounted by the project at `orgs/<org>/` after the other org pages."""

from django.urls import URLPattern, path

from portal.tokens import dashboard, pages

app_name = "tokens"

urlpatterns: list[URLPattern] = [
    path("", dashboard.dashboard, name="dashboard"),
    path("history/", pages.history, name="history"),
    path("history/export.<str:fmt>", pages.history_export, name="history-export"),
    path("history/<int:event_id>/", pages.event_detail, name="event"),
    path("history/credentials/", pages.credential_history, name="credentials"),
    path("tokens/", pages.token_list, name="tokens"),
    path("tokens/new/", pages.token_create, name="token-create"),
    path("tokens/revoke/", pages.revoke_matching, name="revoke-matching"),
    path("tokens/<int:token_id>/", pages.token_detail, name="token"),
    path("tokens/<int:token_id>/created/", pages.token_created, name="token-created"),
    path("tokens/<int:token_id>/revoke/", pages.token_revoke, name="token-revoke"),
]
