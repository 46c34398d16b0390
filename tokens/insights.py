"""Reads behind the dashboard: the getting-started checklist and the chart data.

Pure reads (selectors): one organization's exchange events, issuers and policies, counted in
the database and shaped into small frozen values the chart geometry (`portal.tokens.charts`) draws.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.db.models import Count
from django.db.models.fields.json import KeyTransform
from django.db.models.functions import TruncDate

from issuers.selectors import issuers_of
from policies.models import AuthPolicy
from tokens.models import Decision, ExchangeEvent
from trustportal.models import Organization

OTHER = "other"


# --- getting started ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Progress:
    """How far the organization is from its first exchange."""

    issuer_id: object | None  # the first issuer (by name), for the policy editor link
    has_issuer: bool
    has_allow: bool
    attempted: bool  # any exchange attempt recorded, allowed or denied
    has_exchange: bool  # at least one allowed exchange

    @property
    def complete(self) -> bool:
        return self.has_issuer and self.has_allow and self.has_exchange


def getting_started(organization: Organization) -> Progress:
    """Whether the organization has an issuer, an allow definition and an allowed exchange."""
    first = issuers_of(organization).values_list("pk", flat=True).first()
    has_allow = any(
        isinstance(definition, dict) and definition.get("decision") == "allow"
        for definitions in AuthPolicy.objects.filter(organization=organization).values_list(
            "definitions", flat=True
        )
        if isinstance(definitions, list)
        for definition in definitions
    )
    events = ExchangeEvent.objects.filter(organization=organization)
    has_exchange = events.filter(decision=Decision.ALLOW).exists()
    return Progress(
        issuer_id=first,
        has_issuer=first is not None,
        has_allow=has_allow,
        attempted=has_exchange or events.exists(),
        has_exchange=has_exchange,
    )


# --- denials by reason, per day ----------------------------------------------------------------
@dataclass(frozen=True)
class DayStack:
    """Denied attempts of one UTC day, per reason (in `DenialsByReason.reasons` order)."""

    day: date
    counts: tuple[int, ...]

    @property
    def total(self) -> int:
        return sum(self.counts)


@dataclass(frozen=True)
class DenialsByReason:
    reasons: tuple[str, ...]  # the most frequent first; OTHER last when the rest is grouped
    days: tuple[DayStack, ...]  # oldest first, every day of the period

    @property
    def total(self) -> int:
        return sum(day.total for day in self.days)


def _window(days: int, now: datetime) -> tuple[date, datetime]:
    first = now.astimezone(UTC).date() - timedelta(days=days - 1)
    return first, datetime.combine(first, time(), UTC)


def denials_by_reason(
    *, organization: Organization, days: int, now: datetime, top: int = 5
) -> DenialsByReason:
    """Denied attempts per UTC day for the last `days` days, split by the `top` most frequent
    reasons of the period; the other reasons are summed as OTHER."""
    first, start = _window(days, now)
    rows = (
        ExchangeEvent.objects.filter(
            organization=organization, created__gte=start, decision=Decision.DENY
        )
        .annotate(day=TruncDate("created", tzinfo=UTC))
        .values("day", "reason")
        .annotate(n=Count("*"))
        .order_by()
    )
    counts: Counter[tuple[date, str]] = Counter()
    totals: Counter[str] = Counter()
    for row in rows:
        counts[row["day"], row["reason"]] += row["n"]
        totals[row["reason"]] += row["n"]
    ranked = sorted(totals, key=lambda reason: (-totals[reason], reason))
    named = ranked[:top]
    reasons = (*named, OTHER) if len(ranked) > top else tuple(named)
    stacks = []
    for day in (first + timedelta(days=i) for i in range(days)):
        per_reason = [counts[day, reason] for reason in named]
        if len(reasons) > len(named):
            per_reason.append(sum(counts[day, reason] for reason in ranked[top:]))
        stacks.append(DayStack(day=day, counts=tuple(per_reason)))
    return DenialsByReason(reasons=reasons, days=tuple(stacks))


# --- exchanges per issuer and per repository ---------------------------------------------------
@dataclass(frozen=True)
class Split:
    """Attempts of one issuer or repository in the period."""

    label: str
    key: str  # the history filter value (issuer id or repository)
    allowed: int
    denied: int

    @property
    def total(self) -> int:
        return self.allowed + self.denied


def _splits(rows: list[dict[str, object]], field: str, limit: int) -> list[tuple[str, int, int]]:
    allowed: Counter[str] = Counter()
    denied: Counter[str] = Counter()
    for row in rows:
        key = str(row[field])
        target = allowed if row["decision"] == Decision.ALLOW else denied
        target[key] += int(row["n"])  # type: ignore[call-overload]
    keys = sorted(set(allowed) | set(denied), key=lambda k: (-(allowed[k] + denied[k]), k))[:limit]
    return [(key, allowed[key], denied[key]) for key in keys]


def exchanges_per_issuer(
    *, organization: Organization, days: int, now: datetime, limit: int = 8
) -> list[Split]:
    """The issuers with the most attempts in the last `days` days (allowed and denied)."""
    _first, start = _window(days, now)
    rows = list(
        ExchangeEvent.objects.filter(
            organization=organization, created__gte=start, issuer_id__isnull=False
        )
        .values("issuer_id", "decision")
        .annotate(n=Count("*"))
        .order_by()
    )
    names = {str(pk): name for pk, name in issuers_of(organization).values_list("pk", "name")}
    return [
        Split(label=names.get(key, "deleted issuer"), key=key, allowed=a, denied=d)
        for key, a, d in _splits(rows, "issuer_id", limit)
    ]


def exchanges_per_repository(
    *, organization: Organization, days: int, now: datetime, limit: int = 8
) -> list[Split]:
    """The repositories (the `repository` claim) with the most attempts in the last `days`."""
    _first, start = _window(days, now)
    rows = [
        row
        for row in ExchangeEvent.objects.filter(organization=organization, created__gte=start)
        .annotate(repository=KeyTransform("repository", "claims"))
        .values("repository", "decision")
        .annotate(n=Count("*"))
        .order_by()
        if isinstance(row["repository"], str) and row["repository"]
    ]
    return [
        Split(label=key, key=key, allowed=a, denied=d)
        for key, a, d in _splits(rows, "repository", limit)
    ]
