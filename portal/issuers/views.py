"""Issuer pages: the list, the Register Issuer wizard, an issuer's page and its admin actions.

Views stay thin: they check access (`organization_for_user`), read through selectors, write
through services, and turn a service's refusal into an error on the form. Settings are read here
(`services.web_outbound(organization)`: a short deadline and one fetch at a time per organization)
and passed down.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from issuers import selectors, services
from issuers.errors import IssuerBusy, IssuerConflict, IssuerInvalid
from issuers.jwks import ParsedKey
from issuers.models import Issuer
from outbound.transport import Certificate
from policies import registration
from policies.examples import example_for
from policies.selectors import issuer_policy_summary
from portal.acting import acting_user
from portal.issuers.forms import (
    IssuerEditForm,
    IssuerRegisterForm,
    IssuerSourceForm,
    add_service_error,
)
from tokens import retirement
from trustportal.access import Need, organization_for_user
from trustportal.models import Organization, Role


# CI platforms for which the policy editor offers an example policy: (name, URL, prefix match).
def known_provider(url: str) -> str | None:
    """The CI platform an issuer URL belongs to, when the policy editor has an example for it."""
    example = example_for(url)
    return example.provider if example is not None else None


@dataclass(frozen=True)
class IssuerRow:
    """One line of the issuer list."""

    issuer: Issuer
    active_keys: int
    warnings: int
    policy: str


@dataclass(frozen=True)
class PreviewPage:
    """What step 2 of the wizard shows about the issuer before anything is saved."""

    url: str
    issuer: str
    jwks_uri: str
    keys: Sequence[ParsedKey]
    certificates: Sequence[Certificate]
    thumbprints: Sequence[str]  # what the admin pins (may be none)
    observed: Sequence[str]  # what the hosts serve now (recorded, not enforced)
    static: bool
    plain_http: bool
    provider: str | None
    existing: Issuer | None


def _issuer_or_404(organization: Organization, issuer_id: UUID | str) -> Issuer:
    issuer = selectors.issuer_of(organization, issuer_id)
    if issuer is None:
        raise Http404("No such issuer.")
    return issuer


def _to_detail(issuer: Issuer) -> HttpResponse:
    """Redirect to the issuer's page (after every action, so a reload does not repeat it)."""
    return redirect("issuers:detail", org=issuer.organization.login, issuer_id=issuer.pk)


def _policy_url(issuer: Issuer) -> str:
    return reverse(
        "policies:editor", kwargs={"org": issuer.organization.login, "issuer_id": issuer.pk}
    )


# --- list ---------------------------------------------------------------------------------------
@login_required
@require_GET
def issuer_list(request: HttpRequest, org: str) -> HttpResponse:
    """List the organization's issuers with their key health; admins get a register button."""
    organization, role = organization_for_user(request.user, org, Need.READ_CONFIGURATION)
    now = timezone.now()
    issuers = (
        selectors.issuers_of(organization)
        .select_related("policy")
        .annotate(active_key_count=Count("keys", filter=Q(keys__removed_at__isnull=True)))
    )
    rows = [
        IssuerRow(
            issuer=issuer,
            active_keys=issuer.active_key_count,
            warnings=len(selectors.issuer_warnings(issuer, now)),
            policy=issuer_policy_summary(issuer),
        )
        for issuer in issuers
    ]
    return render(
        request,
        "issuers/list.html",
        {"organization": organization, "rows": rows, "is_admin": role == Role.ADMIN},
    )


# --- register wizard ----------------------------------------------------------------------------
@login_required
@require_http_methods(["GET", "POST"])
def issuer_register(request: HttpRequest, org: str) -> HttpResponse:
    """Register an issuer in two steps: discover and show what was found, then name and save."""
    organization, _role = organization_for_user(request.user, org, Need.ADMIN)
    context: dict[str, Any] = {"organization": organization}
    if request.method == "POST" and request.POST.get("step") == "settings":
        form = IssuerRegisterForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                issuer = registration.issuer_register(
                    organization=organization,
                    url=data["url"],
                    name=data["name"],
                    thumbprints=data["thumbprints"],
                    jwks=data["jwks"],
                    max_expiration=data["max_expiration"],
                    audiences=data["audiences"],
                    algorithms=list(data["algorithms"]),
                    single_use=bool(data["single_use"]),
                    outbound=services.web_outbound(organization),
                )
            except (IssuerInvalid, IssuerConflict, IssuerBusy) as exc:
                add_service_error(form, exc)
            else:
                messages.success(
                    request,
                    format_html(
                        'Registered the issuer {}. It denies every exchange until you <a href="{}">'
                        "add an allow policy for it</a>.",
                        issuer.name,
                        _policy_url(issuer),
                    ),
                )
                return _to_detail(issuer)
        url = str(form["url"].value() or "")
        context.update(form=form, url=url, provider=known_provider(url))
        return render(request, "issuers/register_settings.html", context)

    if request.method == "POST":
        source = IssuerSourceForm(request.POST)
        if source.is_valid():
            try:
                preview = _preview(organization, source)
            except (IssuerInvalid, IssuerConflict, IssuerBusy) as exc:
                add_service_error(source, exc, default="url")
            else:
                context.update(
                    form=IssuerRegisterForm.carrying(source, preview.thumbprints),
                    preview=preview,
                    url=preview.url,
                    provider=preview.provider,
                )
                return render(request, "issuers/register_settings.html", context)
        context["form"] = source
        return render(request, "issuers/register.html", context)

    context["form"] = IssuerSourceForm()
    return render(request, "issuers/register.html", context)


def _preview(organization: Organization, source: IssuerSourceForm) -> PreviewPage:
    """Discover the issuer (or read the pasted key set) for step 2; saves nothing."""
    data = source.cleaned_data
    url: str = data["url"]
    if data["jwks"] is not None:
        parsed = services.clean_static_jwks(data["jwks"])
        assert parsed is not None
        issuer_value, jwks_uri = url, ""
        keys: Sequence[ParsedKey] = parsed[1]
        certificates: Sequence[Certificate] = ()
        observed: Sequence[str] = ()
    else:
        found = services.issuer_preview(
            url=url, thumbprints=data["thumbprints"], outbound=services.web_outbound(organization)
        ).discovered
        issuer_value, jwks_uri = found.issuer, found.jwks_uri
        keys = found.keys.keys
        # The discovery and JWKS hosts are usually one host: show its certificate once.
        certificates = tuple({cert.sha256: cert for cert in found.certificates}.values())
        observed = found.thumbprints
    return PreviewPage(
        url=url,
        issuer=issuer_value,
        jwks_uri=jwks_uri,
        keys=keys,
        certificates=certificates,
        thumbprints=data["thumbprints"],
        observed=observed,
        static=data["jwks"] is not None,
        plain_http=urlsplit(url).scheme.lower() == "http",
        provider=known_provider(url),
        existing=selectors.issuers_of(organization).filter(issuer=issuer_value).first(),
    )


# --- detail and actions -------------------------------------------------------------------------
@login_required
@require_http_methods(["GET", "POST"])
def issuer_detail(request: HttpRequest, org: str, issuer_id: UUID) -> HttpResponse:
    """Show an issuer's settings, health, warnings, keys and fetches; admins edit settings here."""
    need = Need.ADMIN if request.method == "POST" else Need.READ_CONFIGURATION
    organization, role = organization_for_user(request.user, org, need)
    issuer = _issuer_or_404(organization, issuer_id)
    if request.method == "POST":
        form = IssuerEditForm(request.POST)
        if form.is_valid():
            try:
                services.issuer_update(
                    issuer=issuer,
                    data=form.service_data(),
                    outbound=services.web_outbound(organization),
                )
            except (IssuerInvalid, IssuerConflict, IssuerBusy) as exc:
                # issuer_update sets fields on the instance before it refuses; show what is saved.
                issuer.refresh_from_db()
                add_service_error(form, exc)
            else:
                messages.success(request, "Saved the issuer's settings.")
                return _to_detail(issuer)
    else:
        form = IssuerEditForm.for_issuer(issuer)
    now = timezone.now()
    return render(
        request,
        "issuers/detail.html",
        {
            "organization": organization,
            "issuer": issuer,
            "is_admin": role == Role.ADMIN,
            "edit_form": form,
            "warnings": selectors.issuer_warnings(issuer, now),
            "keys": selectors.issuer_keys(issuer),
            "fetches": selectors.issuer_fetches(issuer),
            "provider": known_provider(issuer.url),
            "plain_http": urlsplit(issuer.url).scheme.lower() == "http",
            "now": now,
            "policy_url": _policy_url(issuer),
            "policy_summary": issuer_policy_summary(issuer),
        },
    )


@login_required
@require_POST
def issuer_refresh(request: HttpRequest, org: str, issuer_id: UUID) -> HttpResponse:
    """Fetch the issuer's keys now and say how it went; a failure keeps the previous keys."""
    organization, _role = organization_for_user(request.user, org, Need.ADMIN)
    issuer = _issuer_or_404(organization, issuer_id)
    try:
        fetch = services.issuer_refresh_keys(
            issuer=issuer, trigger="manual", outbound=services.web_outbound(organization)
        )
    except IssuerBusy as exc:
        messages.error(request, exc.message)
        return _to_detail(issuer)
    if fetch is None:
        messages.info(request, "This issuer has a static key set; there is nothing to fetch.")
    elif not fetch.ok:
        messages.error(
            request, f"Fetching keys failed: {fetch.message}. The previous keys stay in use."
        )
    elif fetch.status == 304:
        messages.success(request, "Keys checked: the issuer's key set has not changed.")
    else:
        messages.success(
            request,
            f"Keys refreshed: {fetch.keys_added} added, {fetch.keys_removed} removed.",
        )
    return _to_detail(issuer)


@login_required
@require_POST
def issuer_regenerate_thumbprints(request: HttpRequest, org: str, issuer_id: UUID) -> HttpResponse:
    """Re-read the served certificates: re-pin them if the issuer pins (not for static keys)."""
    organization, _role = organization_for_user(request.user, org, Need.ADMIN)
    issuer = _issuer_or_404(organization, issuer_id)
    try:
        services.issuer_regenerate_thumbprints(
            issuer=issuer, outbound=services.web_outbound(organization)
        )
    except (IssuerInvalid, IssuerConflict, IssuerBusy) as exc:
        messages.error(request, f"The thumbprints were not changed: {exc.message}.")
    else:
        pinned = len(issuer.thumbprints)
        messages.success(
            request,
            f"Pinned {pinned} certificate thumbprint{'s' if pinned != 1 else ''}."
            if pinned
            else "Recorded the certificate served now as observed. This issuer pins no "
            "thumbprints: its hosts are verified against the trusted certificate authorities."
            if issuer.observed_thumbprints
            else "The issuer is served over plain HTTP; there is no certificate to pin.",
        )
    return _to_detail(issuer)


def _tokens(count: int) -> str:
    return f"{count} token{'s' if count != 1 else ''}"


@login_required
@require_POST
def issuer_set_enabled(request: HttpRequest, org: str, issuer_id: UUID) -> HttpResponse:
    """Enable or disable an issuer; disabling refuses its ID tokens from now on.

    With `revoke` (the disable confirmation's checkbox) the tokens it already minted, and the
    tokens created with them, are revoked in the same transaction.
    """
    organization, _role = organization_for_user(request.user, org, Need.ADMIN)
    issuer = _issuer_or_404(organization, issuer_id)
    value = request.POST.get("enabled")
    if value not in ("true", "false"):
        messages.error(request, "Choose whether to enable or disable the issuer.")
        return _to_detail(issuer)
    enabled = value == "true"
    revoke = not enabled and request.POST.get("revoke") == "on"
    try:
        issuer, revoked = retirement.issuer_update_revoking(
            issuer=issuer,
            data={"name": issuer.name, "enabled": enabled},
            revoke=revoke,
            outbound=services.default_outbound(),
            by=acting_user(request),
        )
    except (IssuerInvalid, IssuerConflict, IssuerBusy) as exc:
        messages.error(request, exc.message)
    else:
        if enabled:
            messages.success(request, "Enabled the issuer.")
        elif revoke:
            messages.success(
                request,
                f"Disabled the issuer: its tokens are refused, and {_tokens(revoked)} it "
                "minted (or that were created with them) were revoked.",
            )
        else:
            messages.success(request, "Disabled the issuer: its tokens are refused.")
    return _to_detail(issuer)


@login_required
@require_GET
def issuer_disable(request: HttpRequest, org: str, issuer_id: UUID) -> HttpResponse:
    """Confirm disabling an issuer, offering to revoke the tokens it minted (with the count)."""
    organization, _role = organization_for_user(request.user, org, Need.ADMIN)
    issuer = _issuer_or_404(organization, issuer_id)
    return render(
        request,
        "issuers/disable.html",
        {
            "organization": organization,
            "issuer": issuer,
            "count": retirement.issuer_token_count(issuer),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def issuer_delete(request: HttpRequest, org: str, issuer_id: UUID) -> HttpResponse:
    """Delete an issuer after a confirmation that says how many tokens that revokes."""
    organization, _role = organization_for_user(request.user, org, Need.ADMIN)
    issuer = _issuer_or_404(organization, issuer_id)
    if request.method == "POST" and request.POST.get("confirm") == "on":
        name = issuer.name
        revoked = retirement.issuer_delete(issuer=issuer, by=acting_user(request))
        messages.success(request, f"Deleted the issuer {name} and revoked {_tokens(revoked)}.")
        return redirect("issuers:list", org=organization.login)
    return render(
        request,
        "issuers/delete.html",
        {
            "organization": organization,
            "issuer": issuer,
            "count": retirement.issuer_token_count(issuer),
            "unconfirmed": request.method == "POST",
        },
        status=400 if request.method == "POST" else 200,
    )
