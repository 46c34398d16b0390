"""Reads: the token a request presents, the exchange history, token lists, the dashboard."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from time import monotonic
from typing import Any, TypeVar

from django.db.models import Count, Max, Model, Q, QuerySet
from django.db.models.fields.json import KT
from django.db.models.functions import TruncDate

from kernel.paging import Page, keyset_page
from kernel.ttlcache import TTLCache
from policies.patterns import compile_pattern
from tokens.errors import InvalidAccessToken
from tokens.filters import EventFilters, TokenFilters
from tokens.format import hash_token, parse_token
from tokens.models import AccessToken, Decision, ExchangeEvent, TokenType
from tokens.patterns import matches_pattern
from tokens.usage import UsageBuffer, default_buffer
from trustportal.models import Organization, User

M = TypeVar("M", bound=Model)
LINEAGE_BATCH = 1000


# Per process: token hash -> (when it was read, monotonic seconds; the row). SPEC §7 allows a
# short-lived cache that honours revocation within 5 s: an API call with a token this process
# read less than 5 s ago costs no query. Revocations through `tokens.services` also forget the
# process's own entries at once; other processes see them within the 5 s.
AUTH_CACHE_SECONDS = 5.0
AUTH_CACHE_MAX = 10_000
_recent_tokens: TTLCache[str, AccessToken] = TTLCache(
    ttl=AUTH_CACHE_SECONDS, max_entries=AUTH_CACHE_MAX
)


def forget_cached_tokens() -> None:
    """Drop this process's cached tokens (after a revocation, or between tests)."""
    _recent_tokens.clear()


def _token_by_hash(digest: str, clock: Callable[[], float]) -> AccessToken | None:
    cached = _recent_tokens.get(digest, clock=clock)
    if cached is not None:
        return cached
    token = (
        AccessToken.objects.select_related("organization", "team", "user", "runner")
        .filter(token_hash=digest)
        .first()
    )
    if token is not None:  # unknown hashes are never cached: random guesses cannot fill it
        _recent_tokens.set(digest, token, clock=clock)
    return token


def token_for_request(
    presented: str, *, now: datetime, clock: Callable[[], float] = monotonic
) -> AccessToken:
    """The active token whose plaintext is `presented`, or InvalidAccessToken with a reason.

    Checks the format and checksum before touching the database, then one indexed lookup by
    SHA-256 (or this process's 5-second cache of it). Does not compare secrets itself:
    equality of the hash is the check. Revocation, expiry and the user's state are checked on
    every call, against the row as read.
    """
    parsed = parse_token(presented)
    if parsed is None:
        raise InvalidAccessToken("malformed")
    token = _token_by_hash(hash_token(parsed.value), clock)
    if token is None:
        raise InvalidAccessToken("unknown")
    if token.revoked_at is not None:
        raise InvalidAccessToken("revoked")
    if token.expires is not None and token.expires <= now:
        raise InvalidAccessToken("expired")
    if token.user is not None and not token.user.is_active:
        raise InvalidAccessToken("user_inactive")
    return token


# --- exchange history ---------------------------------------------------------------------------
# The repository claim (GitHub's `owner/name`), indexed on PostgreSQL by migration 0004.
REPOSITORY_CLAIM = KT("claims__repository")
# History lists never show traces (up to 1,000 definitions each); the detail and exports do.
EVENT_LIST_DEFERRED = ("trace",)


def events_matching(
    *, organization: Organization, filters: EventFilters
) -> QuerySet[ExchangeEvent]:
    """The organization's exchange events narrowed by `filters`, newest first.

    The one query behind the history page, its CSV and JSON-lines exports and the API; each
    filter rides on an index from tokens.models / migration 0004.
    """
    events = ExchangeEvent.objects.filter(organization=organization)
    if filters.issuer is not None:
        events = events.filter(issuer_id=filters.issuer)
    if filters.decision is not None:
        events = events.filter(decision=filters.decision)
    if filters.reason is not None:
        events = events.filter(reason=filters.reason)
    if filters.type is not None:
        events = events.filter(requested_token_type=filters.type)
    if filters.request_id is not None:
        events = events.filter(request_id=filters.request_id)
    if filters.subject is not None:
        events = events.filter(matches_pattern("sub", filters.subject))
    if filters.repository is not None:
        events = events.filter(matches_pattern(REPOSITORY_CLAIM, filters.repository))
    if filters.since is not None:
        events = events.filter(created__gte=filters.since)
    if filters.until is not None:
        events = events.filter(created__lt=filters.until)
    return events.order_by("-id")


def events_page(
    *, organization: Organization, filters: EventFilters, before: int | None, limit: int
) -> Page[ExchangeEvent]:
    """One page of the history list (traces left out)."""
    events = events_matching(organization=organization, filters=filters)
    return keyset_page(events.defer(*EVENT_LIST_DEFERRED), before=before, limit=limit)


def event_of(organization: Organization, event_id: object) -> ExchangeEvent | None:
    """The organization's event with that id; None for another org's event or a bad id."""
    try:
        key = int(str(event_id))
    except ValueError:
        return None
    return ExchangeEvent.objects.filter(organization=organization, pk=key).first()


def event_for_token(token: AccessToken) -> ExchangeEvent | None:
    """The exchange that minted `token` (None for tokens created by hand)."""
    if token.organization_id is None:
        return None
    return (
        ExchangeEvent.objects.filter(token_id=token.pk, organization_id=token.organization_id)
        .defer(*EVENT_LIST_DEFERRED)
        .first()
    )


# --- tokens -------------------------------------------------------------------------------------
def active_tokens_q(now: datetime) -> Q:
    """Tokens that authenticate right now (the same rule as `token_for_request`)."""
    return Q(revoked_at__isnull=True) & (Q(expires__isnull=True) | Q(expires__gt=now))


MAX_LINEAGE = 16


def token_lineage(token: AccessToken) -> tuple[int, ...]:
    """The token, then the token that created it, and so on (the audit log's "who").

    No query for a token nobody's token created (exchanged and hand-made tokens); otherwise one
    primary-key read per ancestor, at most MAX_LINEAGE in all.
    """
    lineage = [token.pk]
    parent_id = token.parent_id
    while parent_id is not None and parent_id not in lineage and len(lineage) < MAX_LINEAGE:
        lineage.append(parent_id)
        parent_id = (
            AccessToken.objects.filter(pk=parent_id).values_list("parent_id", flat=True).first()
        )
    return tuple(lineage)


def token_status(token: AccessToken, now: datetime) -> str:
    """active, expired or revoked (revoked wins), by the same rule as `active_tokens_q`."""
    if token.revoked_at is not None:
        return "revoked"
    if token.expires is not None and token.expires <= now:
        return "expired"
    return "active"


def last_used(
    tokens: Iterable[AccessToken], *, buffer: UsageBuffer | None = None
) -> dict[int, datetime | None]:
    """When each token was last used, counting uses still waiting in the usage buffer
    (`tokens.usage`): the stored `last_used` lags by up to a minute, and says nothing at all
    for a token whose first use is not flushed yet."""
    tokens = list(tokens)
    pending = (buffer or default_buffer()).pending([int(t.pk) for t in tokens])
    latest: dict[int, datetime | None] = {}
    for token in tokens:
        uses = [u for u in (token.last_used, pending.get(int(token.pk))) if u is not None]
        latest[int(token.pk)] = max(uses) if uses else None
    return latest


def tokens_matching(
    *, organization: Organization, filters: TokenFilters, now: datetime
) -> QuerySet[AccessToken]:
    """The organization's access tokens narrowed by `filters`, newest first.

    The one query behind the token page, `GET /api/orgs/{org}/tokens`, the bulk revocation
    preview and its confirmation, and `revoketokens`. `repository` matches tokens whose
    subject is GitHub's `repo:<owner>/<name>:…` or whose exchange recorded that `repository`
    claim; `definition` matches tokens granted by that definition of that policy version.
    """
    tokens = AccessToken.objects.filter(organization=organization)
    if filters.type is not None:
        tokens = tokens.filter(token_type=filters.type)
    if filters.issuer is not None:
        tokens = tokens.filter(issuer_id=filters.issuer)
    if filters.policy is not None:
        tokens = tokens.filter(policy_id=filters.policy)
    if filters.version is not None:
        tokens = tokens.filter(policy_version=filters.version)
    if filters.definition is not None:
        granted = ExchangeEvent.objects.filter(
            organization=organization,
            policy_id=filters.policy,
            policy_version=filters.version,
            decision="allow",
            token_id__isnull=False,
            trace__0__index=filters.definition,
        )
        tokens = tokens.filter(pk__in=granted.values("token_id"))
    if filters.status == "active":
        tokens = tokens.filter(active_tokens_q(now))
    elif filters.status == "expired":
        tokens = tokens.filter(revoked_at__isnull=True, expires__lte=now)
    elif filters.status == "revoked":
        tokens = tokens.filter(revoked_at__isnull=False)
    if filters.subject is not None:
        tokens = tokens.filter(matches_pattern("subject", filters.subject))
    if filters.repository is not None:
        in_subject = compile_pattern(f"repo:{filters.repository.source}:*")
        by_claim = ExchangeEvent.objects.filter(
            organization=organization, token_id__isnull=False
        ).filter(matches_pattern(REPOSITORY_CLAIM, filters.repository))
        tokens = tokens.filter(
            matches_pattern("subject", in_subject) | Q(pk__in=by_claim.values("token_id"))
        )
    if filters.since is not None:
        tokens = tokens.filter(created__gte=filters.since)
    if filters.until is not None:
        tokens = tokens.filter(created__lt=filters.until)
    return tokens.order_by("-id")


def tokens_selected(
    *, organization: Organization, filters: TokenFilters, now: datetime, upto: int | None = None
) -> QuerySet[AccessToken]:
    """The tokens a bulk revocation by `filters` starts from, whatever their status.

    The status filter is left out (a revocation only ever revokes active tokens), so the set
    still holds its tokens once they are revoked, which is where their descendants are found
    from. `upto` (the highest id the preview saw) keeps the confirmation to the previewed set:
    tokens minted after the preview are not revoked by it. A status other than active selects
    nothing to revoke.
    """
    if filters.status not in (None, "active"):
        return AccessToken.objects.none()
    tokens = tokens_matching(
        organization=organization, filters=replace(filters, status=None), now=now
    )
    if upto is not None:
        tokens = tokens.filter(pk__lte=upto)
    return tokens


def tokens_revocable(
    *, organization: Organization, filters: TokenFilters, now: datetime, upto: int | None = None
) -> QuerySet[AccessToken]:
    """What a bulk revocation by `filters` revokes: the matching tokens that are still active."""
    selected = tokens_selected(organization=organization, filters=filters, now=now, upto=upto)
    return selected.filter(active_tokens_q(now))


# --- lineage (tokens created with other tokens; writes in tokens/lineage.py) ---------------
def id_chunks(ids: Sequence[int]) -> Iterator[Sequence[int]]:
    """`ids` in slices of at most LINEAGE_BATCH (bounded IN lists)."""
    for start in range(0, len(ids), LINEAGE_BATCH):
        yield ids[start : start + LINEAGE_BATCH]


def descendant_ids(roots: QuerySet[AccessToken]) -> list[int]:
    """The ids of every token created with a token of `roots`, transitively, whatever its status.

    The first step is one query over `roots` as a subquery; each further step looks up the
    children of the previous step's ids.
    """
    found: set[int] = set()
    level = list(
        AccessToken.objects.filter(parent_id__in=roots.values("pk")).values_list("pk", flat=True)
    )
    while level:
        fresh = sorted(set(level) - found)
        found.update(fresh)
        level = []
        for chunk in id_chunks(fresh):
            level += AccessToken.objects.filter(parent_id__in=chunk).values_list("pk", flat=True)
    return sorted(found)


@dataclass(frozen=True)
class LineageCount:
    """How many active tokens a revocation of `roots` revokes: the roots, and their descendants."""

    tokens: int
    descendants: int

    @property
    def total(self) -> int:
        return self.tokens + self.descendants


def lineage_count(roots: QuerySet[AccessToken], *, now: datetime) -> LineageCount:
    """Count what `revoke_lineage(roots=…)` would revoke now (a descendant that is also a root
    counts once, as a root)."""
    active_roots = roots.filter(active_tokens_q(now))
    ids = descendant_ids(roots)
    descendants = 0
    for chunk in id_chunks(ids):
        descendants += (
            AccessToken.objects.filter(pk__in=chunk)
            .filter(active_tokens_q(now))
            .exclude(pk__in=active_roots.values("pk"))
            .count()
        )
    return LineageCount(tokens=active_roots.count(), descendants=descendants)


@dataclass(frozen=True)
class RevocationPreview:
    """What a bulk revocation would do: how many tokens, up to which id, the newest few."""

    count: int
    upto: int | None
    sample: list[AccessToken]
    # Active tokens created with those (transitively) that the revocation also revokes.
    descendants: int = 0

    @property
    def total(self) -> int:
        return self.count + self.descendants


def revocation_preview(
    *, organization: Organization, filters: TokenFilters, now: datetime, sample: int = 20
) -> RevocationPreview:
    """Count the tokens `tokens_revoke_matching` would revoke; `upto` pins the confirmation."""
    revocable = tokens_revocable(organization=organization, filters=filters, now=now)
    totals = revocable.aggregate(count=Count("id"), upto=Max("id"))
    rows = list(revocable.select_related("issuer")[:sample]) if totals["count"] else []
    lineage = lineage_count(
        tokens_selected(organization=organization, filters=filters, now=now, upto=totals["upto"]),
        now=now,
    )
    return RevocationPreview(
        count=totals["count"], upto=totals["upto"], sample=rows, descendants=lineage.descendants
    )


def token_of(organization: Organization, token_id: object) -> AccessToken | None:
    """The organization's token with that id; None for another org's token or a bad id."""
    try:
        key = int(str(token_id))
    except ValueError:
        return None
    return (
        AccessToken.objects.select_related("team", "runner", "user", "issuer", "created_by")
        .filter(organization=organization, pk=key)
        .first()
    )


def personal_tokens_of(user: User) -> QuerySet[AccessToken]:
    """The user's own personal tokens (what `/api/user/tokens` lists), newest first."""
    return AccessToken.objects.filter(user=user, token_type=TokenType.PERSONAL).order_by("-id")


# --- dashboard ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class DayCount:
    """Exchange attempts of one UTC day."""

    day: date
    allowed: int
    denied: int


@dataclass(frozen=True)
class Ranked:
    """A value and how many exchanges had it."""

    value: str
    count: int


def exchanges_per_day(*, organization: Organization, days: int, now: datetime) -> list[DayCount]:
    """Allowed and denied attempts per UTC day for the last `days` days, oldest first, gaps as 0."""
    first = now.astimezone(UTC).date() - timedelta(days=days - 1)
    start = datetime.combine(first, time(), UTC)
    rows = (
        ExchangeEvent.objects.filter(organization=organization, created__gte=start)
        .annotate(day=TruncDate("created", tzinfo=UTC))
        .values("day", "decision")
        .annotate(n=Count("*"))
        .order_by()
    )
    counts: dict[tuple[date, str], int] = {(r["day"], r["decision"]): r["n"] for r in rows}
    return [
        DayCount(
            day=day,
            allowed=counts.get((day, Decision.ALLOW), 0),
            denied=counts.get((day, Decision.DENY), 0),
        )
        for day in (first + timedelta(days=i) for i in range(days))
    ]


def _top(
    organization: Organization, field: str, since: datetime, limit: int, **where: Any
) -> list[Ranked]:
    rows = (
        ExchangeEvent.objects.filter(organization=organization, created__gte=since, **where)
        .exclude(**{field: ""})
        .values(field)
        .annotate(n=Count("*"))
        .order_by("-n", field)[:limit]
    )
    return [Ranked(value=r[field], count=r["n"]) for r in rows]


def top_subjects(*, organization: Organization, since: datetime, limit: int = 10) -> list[Ranked]:
    """The subjects (`sub`) with the most exchange attempts since `since`."""
    return _top(organization, "sub", since, limit)


def top_deny_reasons(
    *, organization: Organization, since: datetime, limit: int = 10
) -> list[Ranked]:
    """The most frequent reason codes of denied attempts since `since`."""
    return _top(organization, "reason", since, limit, decision=Decision.DENY)


def active_token_count(*, organization: Organization, now: datetime) -> int:
    """How many of the organization's tokens authenticate right now."""
    return (
        AccessToken.objects.filter(organization=organization).filter(active_tokens_q(now)).count()
    )
