"""The organization dashboard: a getting-started checklist until the first exchange, then the
charts (attempts per day, denials by reason, the busiest issuers and repositories), the top
subjects and deny reasons, issuer health and tokens.

Server-rendered SVG and tables only: no script and no `style` attribute (the CSP forbids both);
every chart has a text title and a table with the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from issuers.models import Issuer
from issuers.selectors import IssuerWarning, issuer_warnings, issuers_of
from kernel.config import TrustPortalConfig
from policies.selectors import issuer_policy_summary
from portal.tokens.charts import bar_rows, daily_chart, stacked_chart
from tokens.insights import (
    Progress,
    denials_by_reason,
    exchanges_per_issuer,
    exchanges_per_repository,
    getting_started,
)
from tokens.selectors import (
    active_token_count,
    exchanges_per_day,
    top_deny_reasons,
    top_subjects,
)
from trustportal.access import Need, organization_for_user
from trustportal.models import Organization, Role

DASHBOARD_DAYS = 30


@dataclass(frozen=True)
class IssuerHealth:
    issuer: Issuer
    active_keys: int
    warnings: list[IssuerWarning]
    policy: str


@dataclass(frozen=True)
class Step:
    """One step of the getting-started checklist."""

    title: str
    done: bool
    url: str
    link: str
    detail: str


def portal_url(request: HttpRequest) -> str:
    """This portal's URL for CI jobs: TRUSTPORTAL_PUBLIC_URL when set, else the request's host
    (what the browser reached; the host is already checked against ALLOWED_HOSTS)."""
    configured = settings.TRUSTPORTAL.public_url
    if configured and configured != TrustPortalConfig.public_url:
        return str(configured)
    return request.build_absolute_uri("/").rstrip("/")


def exchange_command(organization: Organization, url: str) -> str:
    """The CI step that exchanges the job's ID token (`trustportal-login`, see docs/ci/)."""
    return f'eval "$(trustportal-login --url {url} --org {organization.login})"'


def checklist(organization: Organization, progress: Progress) -> list[Step]:
    """Register an issuer → add an allow definition → run the exchange, each linked."""
    org = organization.login
    if progress.issuer_id is not None:
        policy_url = reverse(
            "policies:editor", kwargs={"org": org, "issuer_id": progress.issuer_id}
        )
    else:
        policy_url = reverse("issuers:list", kwargs={"org": org})
    history_url = reverse("tokens:history", kwargs={"org": org})
    return [
        Step(
            title="Register your CI platform's OIDC issuer",
            done=progress.has_issuer,
            url=reverse("issuers:register", kwargs={"org": org}),
            link="Register an issuer",
            detail="For example https://token.actions.githubusercontent.com for GitHub Actions.",
        ),
        Step(
            title="Add an allow definition to its trust policy",
            done=progress.has_allow,
            url=policy_url,
            link="Open the policy editor" if progress.has_issuer else "Choose an issuer",
            detail="Say which jobs (claims such as sub or repository) get which token.",
        ),
        Step(
            title="Run the exchange in a CI job",
            done=progress.has_exchange,
            url=history_url
            if progress.attempted
            else reverse("tokens:dashboard", kwargs={"org": org}) + "#exchange-command",
            link="See the attempts" if progress.attempted else "The command",
            detail=(
                "Attempts were made but none was allowed yet: the history says why."
                if progress.attempted and not progress.has_exchange
                else "The job exchanges its ID token for a short-lived access token."
            ),
        ),
    ]


@login_required
@require_GET
def dashboard(request: HttpRequest, org: str) -> HttpResponse:
    """The organization at a glance (or its first steps, until its first exchange)."""
    organization, role = organization_for_user(request.user, org, Need.READ_CONFIGURATION)
    now = timezone.now()
    since = now - timedelta(days=DASHBOARD_DAYS)
    days = exchanges_per_day(organization=organization, days=DASHBOARD_DAYS, now=now)
    issuers = (
        issuers_of(organization)
        .select_related("policy")
        .annotate(active_key_count=Count("keys", filter=Q(keys__removed_at__isnull=True)))
    )
    health = [
        IssuerHealth(
            issuer=issuer,
            active_keys=issuer.active_key_count,
            warnings=issuer_warnings(issuer, now),
            policy=issuer_policy_summary(issuer),
        )
        for issuer in issuers
    ]
    progress = getting_started(organization)
    chart = daily_chart(days)
    return render(
        request,
        "tokens/dashboard.html",
        {
            "organization": organization,
            "is_admin": role == Role.ADMIN,
            "section": "dashboard",
            "progress": progress,
            "steps": checklist(organization, progress),
            "command": exchange_command(organization, portal_url(request)),
            "chart": chart,
            "denials": stacked_chart(
                denials_by_reason(organization=organization, days=DASHBOARD_DAYS, now=now)
            ),
            "per_issuer": bar_rows(
                exchanges_per_issuer(organization=organization, days=DASHBOARD_DAYS, now=now)
            ),
            "per_repository": bar_rows(
                exchanges_per_repository(organization=organization, days=DASHBOARD_DAYS, now=now)
            ),
            "days": DASHBOARD_DAYS,
            "subjects": top_subjects(organization=organization, since=since),
            "reasons": top_deny_reasons(organization=organization, since=since),
            "health": health,
            "active_tokens": active_token_count(organization=organization, now=now),
        },
    )
