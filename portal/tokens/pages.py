"""Pages of the tokens app: the org dashboard, the exchange history, access tokens.

Mounted by the project at `orgs/<org>/` (after the issuer, policy and environment pages).
Views stay thin: `organization_for_user` decides access (404 outside the user's orgs, 403 for a
role that is not enough: auditors read everything and change nothing), filters are parsed by
`tokens.filters`, reads go through selectors, writes through services.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from environments.models import Outcome
from environments.providers import names as provider_names
from environments.selectors import credential_issuances
from issuers.models import Issuer
from issuers.selectors import issuers_of
from portal.acting import acting_user
from portal.tokens.event_view import claim_rows, trace_rows
from portal.tokens.export import EXPORT_FORMATS, streaming_export
from portal.tokens.forms import RevokeForm, TokenCreateForm
from tokens import services
from tokens.errors import TokenInvalid
from tokens.export import repository_of
from tokens.filters import (
    EventFilters,
    FilterError,
    TokenFilters,
    cursor_from,
    event_filters_from,
    token_filters_from,
)
from tokens.models import AccessToken, Decision, ExchangeEvent, TokenType
from tokens.selectors import (
    event_for_token,
    event_of,
    events_matching,
    events_page,
    keyset_page,
    last_used,
    lineage_count,
    revocation_preview,
    token_of,
    token_status,
    tokens_matching,
)
from tokens.trace import event_trace
from trustportal.access import Need, organization_for_user
from trustportal.models import Organization, Role

PAGE_SIZE = 50
NO_STORE = "no-store"


def policy_versions_url(organization_login: str, issuer_id: object, version: int | None) -> str:
    """The policy page that lists an issuer's policy versions (owned by the policies app)."""
    url = f"/orgs/{organization_login}/policies/{issuer_id}/versions/"
    return f"{url}#version-{version}" if version is not None else url


def _query(params: dict[str, str], **extra: Any) -> str:
    merged = {**params, **{k: str(v) for k, v in extra.items() if v is not None}}
    return "?" + urlencode(merged) if merged else ""


# --- exchange history ---------------------------------------------------------------------------
@dataclass(frozen=True)
class EventRow:
    event: ExchangeEvent
    issuer: Issuer | None
    repository: str


def _event_filters(request: HttpRequest) -> tuple[EventFilters, dict[str, str]]:
    try:
        return event_filters_from(request.GET), {}
    except FilterError as exc:
        return EventFilters(), exc.errors


@login_required
@require_GET
def history(request: HttpRequest, org: str) -> HttpResponse:
    """Every exchange attempt of the organization, filtered, 50 at a time (keyset pages)."""
    organization, role = organization_for_user(request.user, org, Need.READ_CONFIGURATION)
    filters, errors = _event_filters(request)
    try:
        before = cursor_from(request.GET, "before")
    except FilterError as exc:
        before, errors = None, {**errors, **exc.errors}
    page = events_page(organization=organization, filters=filters, before=before, limit=PAGE_SIZE)
    issuers = {issuer.pk: issuer for issuer in issuers_of(organization)}
    params = filters.as_params()
    return render(
        request,
        "tokens/history.html",
        {
            "organization": organization,
            "is_admin": role == Role.ADMIN,
            "section": "history",
            "rows": [
                EventRow(
                    event=e,
                    issuer=issuers.get(e.issuer_id) if e.issuer_id else None,
                    repository=repository_of(e),
                )
                for e in page.rows
            ],
            "issuers": list(issuers.values()),
            "values": request.GET,
            "errors": errors,
            "decisions": Decision.choices,
            "token_types": TokenType.choices,
            "filtered": bool(params),
            "first_page": before is not None,
            "first_url": _query(params),
            "next_url": _query(params, before=page.next_cursor) if page.next_cursor else None,
            "export_query": _query(params),
        },
    )


@login_required
@require_GET
def history_export(request: HttpRequest, org: str, fmt: str) -> HttpResponseBase:
    """The filtered history as a CSV or JSON-lines download, streamed row by row."""
    organization, _role = organization_for_user(request.user, org, Need.READ_CONFIGURATION)
    if fmt not in EXPORT_FORMATS:
        raise Http404("Export as .csv or .jsonl.")
    try:
        filters = event_filters_from(request.GET)
    except FilterError as exc:
        return HttpResponseBadRequest(str(exc), content_type="text/plain")
    events = events_matching(organization=organization, filters=filters)
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    return streaming_export(events, fmt=fmt, filename=f"exchanges-{organization.login}-{stamp}")


@login_required
@require_GET
def credential_history(request: HttpRequest, org: str) -> HttpResponse:
    """Every `fn::open` credential issuance of the organization, filtered, 50 at a time."""
    organization, role = organization_for_user(request.user, org, Need.READ_CONFIGURATION)
    filters = {
        key: request.GET.get(key, "").strip()[:201]
        for key in ("environment", "provider", "outcome")
    }
    try:
        before = cursor_from(request.GET, "before")
    except FilterError:
        before = None
    rows = credential_issuances(organization.pk, **filters)
    page = keyset_page(rows, before=before, limit=PAGE_SIZE)
    params = {k: v for k, v in filters.items() if v}
    return render(
        request,
        "tokens/credential_history.html",
        {
            "organization": organization,
            "is_admin": role == Role.ADMIN,
            "section": "credentials",
            "rows": page.rows,
            "values": filters,
            "providers": sorted(provider_names()),
            "outcomes": Outcome.choices,
            "filtered": bool(params),
            "first_page": before is not None,
            "first_url": _query(params),
            "next_url": _query(params, before=page.next_cursor) if page.next_cursor else None,
        },
    )


@login_required
@require_GET
def event_detail(request: HttpRequest, org: str, event_id: int) -> HttpResponse:
    """One attempt: the request, every claim, the evaluation trace and the minted token."""
    organization, role = organization_for_user(request.user, org, Need.READ_CONFIGURATION)
    event = event_of(organization, event_id)
    if event is None:
        raise Http404("No such exchange.")
    issuer = (
        issuers_of(organization).filter(pk=event.issuer_id).first() if event.issuer_id else None
    )
    token = token_of(organization, event.token_id) if event.token_id else None
    now = timezone.now()
    return render(
        request,
        "tokens/event_detail.html",
        {
            "organization": organization,
            "is_admin": role == Role.ADMIN,
            "section": "history",
            "event": event,
            "issuer": issuer,
            "repository": repository_of(event),
            "claims": claim_rows(event.claims),
            "trace": trace_rows(event_trace(event)),
            "token": token,
            "token_status": token_status(token, now) if token is not None else None,
            "policy_url": (
                policy_versions_url(organization.login, event.issuer_id, event.policy_version)
                if event.issuer_id and event.policy_id
                else None
            ),
        },
    )


# --- tokens -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TokenRow:
    token: AccessToken
    status: str
    last_used: datetime | None


def _token_filters(params: Any) -> tuple[TokenFilters, dict[str, str]]:
    try:
        return token_filters_from(params), {}
    except FilterError as exc:
        return TokenFilters(), exc.errors


def _token_context(
    organization: Organization, values: Any, errors: dict[str, str]
) -> dict[str, Any]:
    return {
        "issuers": list(issuers_of(organization)),
        "values": values,
        "errors": errors,
        "token_types": TokenType.choices,
        "statuses": (("active", "Active"), ("expired", "Expired"), ("revoked", "Revoked")),
    }


@login_required
@require_GET
def token_list(request: HttpRequest, org: str) -> HttpResponse:
    """The organization's access tokens, filtered, 50 at a time; admins create and revoke."""
    organization, role = organization_for_user(request.user, org, Need.READ_CONFIGURATION)
    filters, errors = _token_filters(request.GET)
    try:
        before = cursor_from(request.GET, "before")
    except FilterError as exc:
        before, errors = None, {**errors, **exc.errors}
    now = timezone.now()
    tokens = tokens_matching(organization=organization, filters=filters, now=now)
    page = keyset_page(
        tokens.select_related("issuer", "team", "runner", "user"), before=before, limit=PAGE_SIZE
    )
    used = last_used(page.rows)
    params = filters.as_params()
    revoke_params = {k: v for k, v in params.items() if k != "status"}
    return render(
        request,
        "tokens/token_list.html",
        {
            "organization": organization,
            "is_admin": role == Role.ADMIN,
            "section": "tokens",
            "rows": [
                TokenRow(token=t, status=token_status(t, now), last_used=used[t.pk])
                for t in page.rows
            ],
            "filtered": bool(params),
            "first_page": before is not None,
            "first_url": _query(params),
            "next_url": _query(params, before=page.next_cursor) if page.next_cursor else None,
            "revoke_url": (
                reverse("tokens:revoke-matching", kwargs={"org": organization.login})
                + _query(revoke_params)
                if revoke_params
                else None
            ),
            **_token_context(organization, request.GET, errors),
        },
    )


@login_required
@require_GET
def token_detail(request: HttpRequest, org: str, token_id: int) -> HttpResponse:
    """One token: what it acts as, its lifetime, use, revocation, and where it came from."""
    organization, role = organization_for_user(request.user, org, Need.READ_CONFIGURATION)
    token = token_of(organization, token_id)
    if token is None:
        raise Http404("No such token.")
    return _render_token(request, organization, role, token, RevokeForm())


def _render_token(
    request: HttpRequest,
    organization: Organization,
    role: str,
    token: AccessToken,
    form: RevokeForm,
    status: int = 200,
) -> HttpResponse:
    event = event_for_token(token)
    now = timezone.now()
    return render(
        request,
        "tokens/token_detail.html",
        {
            "organization": organization,
            "is_admin": role == Role.ADMIN,
            "section": "tokens",
            "token": token,
            "status": token_status(token, now),
            "descendants": lineage_count(
                AccessToken.objects.filter(pk=token.pk), now=now
            ).descendants,
            "last_used": last_used([token])[token.pk],
            "event": event,
            "policy_url": (
                policy_versions_url(organization.login, token.issuer_id, token.policy_version)
                if token.issuer_id and token.policy_id
                else None
            ),
            "form": form,
        },
        status=status,
    )


@login_required
@require_POST
def token_revoke(request: HttpRequest, org: str, token_id: int) -> HttpResponse:
    """Revoke one token (admins); it fails on its next API call in every process."""
    organization, role = organization_for_user(request.user, org, Need.ADMIN)
    token = token_of(organization, token_id)
    if token is None:
        raise Http404("No such token.")
    form = RevokeForm(request.POST)
    if not form.is_valid():
        return _render_token(request, organization, role, token, form, status=400)
    if services.token_revoke(
        token=token,
        by=acting_user(request),
        reason=form.cleaned_data["reason"] or "revoked by an admin",
    ):
        messages.success(
            request,
            f"Revoked the token {token.prefix}…; it and the tokens created with it no longer work.",
        )
    else:
        messages.info(request, "The token was already revoked.")
    return redirect("tokens:token", org=organization.login, token_id=token.pk)


@login_required
@require_http_methods(["GET", "POST"])
def token_create(request: HttpRequest, org: str) -> HttpResponse:
    """Create a long-lived token by hand (admins); its value is shown once, on the next page."""
    organization, _role = organization_for_user(request.user, org, Need.ADMIN)
    form = TokenCreateForm(request.POST or None, organization=organization)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            token, plaintext = services.token_create_for_organization(
                organization=organization,
                token_type=data["type"],
                name=data["name"],
                description=data["description"],
                permission=data["permission"] or "standard",
                team_name=data["team"],
                runner_name=data["runner"],
                expires=form.expires(timezone.now()),
                created_by=acting_user(request),
            )
        except TokenInvalid as exc:
            form.add_service_error(exc)
        else:
            # POST-redirect-GET: the value waits in this session for the one page that shows it.
            request.session[_created_key(token.pk)] = plaintext
            return redirect("tokens:token-created", org=organization.login, token_id=token.pk)
    return render(
        request,
        "tokens/token_create.html",
        {"organization": organization, "section": "tokens", "form": form},
        status=400 if request.method == "POST" else 200,
    )


def _created_key(token_id: int) -> str:
    return f"tokens:created:{token_id}"


@login_required
@require_GET
def token_created(request: HttpRequest, org: str, token_id: int) -> HttpResponse:
    """Show a token just created in this session, once: its value leaves the session here."""
    organization, _role = organization_for_user(request.user, org, Need.ADMIN)
    token = token_of(organization, token_id)
    plaintext = request.session.pop(_created_key(token_id), None)
    if token is None or not isinstance(plaintext, str):
        if token is None:
            raise Http404("No such token.")
        messages.info(
            request,
            f"The value of token {token.prefix}… was shown only once, when it was created. "
            "If it was lost, revoke the token and create another.",
        )
        return redirect("tokens:token", org=organization.login, token_id=token.pk)
    response = render(
        request,
        "tokens/token_created.html",
        {"organization": organization, "section": "tokens", "token": token, "plaintext": plaintext},
    )
    response["Cache-Control"] = NO_STORE
    return response


@login_required
@require_http_methods(["GET", "POST"])
def revoke_matching(request: HttpRequest, org: str) -> HttpResponse:
    """Revoke every active token a filter selects (admins): preview with a count, then confirm.

    Linked from the issuer page (`?issuer=<id>`, e.g. after disabling it) and the policy editor
    (`?policy=<id>&version=<n>&definition=<index>`, after deleting a definition). The
    confirmation carries the preview's highest id, so it revokes exactly the previewed set.
    """
    organization, _role = organization_for_user(request.user, org, Need.ADMIN)
    params = request.POST if request.method == "POST" else request.GET
    filters, errors = _token_filters(params)
    try:
        upto = cursor_from(params, "upto")
    except FilterError as exc:
        upto, errors = None, {**errors, **exc.errors}
    form = RevokeForm(request.POST or None)
    now = timezone.now()
    if request.method == "POST" and not errors and filters.selects_tokens() and form.is_valid():
        revoked = services.tokens_revoke_matching(
            organization=organization,
            filters=filters,
            by=acting_user(request),
            reason=form.cleaned_data["reason"] or "revoked by filter",
            upto=upto,
            now=now,
        )
        messages.success(request, f"Revoked {revoked} token{'s' if revoked != 1 else ''}.")
        listed = {k: v for k, v in filters.as_params().items() if k != "status"}
        return redirect(
            reverse("tokens:tokens", kwargs={"org": organization.login})
            + _query({**listed, "status": "revoked"})
        )
    ready = not errors and filters.selects_tokens()
    preview = (
        revocation_preview(organization=organization, filters=filters, now=now) if ready else None
    )
    return render(
        request,
        "tokens/revoke_matching.html",
        {
            "organization": organization,
            "section": "tokens",
            "ready": ready,
            "preview": preview,
            "hidden": sorted((k, v) for k, v in filters.as_params().items() if k != "status"),
            "form": form,
            **_token_context(organization, params, errors),
        },
        status=400 if request.method == "POST" else 200,
    )
