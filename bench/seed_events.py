"""Generate many realistic exchange events fast (COPY on PostgreSQL, bulk_create elsewhere).

    python -m bench.seed_events --count 1000000 --org acme [--other-orgs 1] [--days 400]

Uses the database of the current settings (DATABASE_URL); creates the organizations and three
issuers per organization if they are missing. Events look like GitHub Actions exchanges: 5,000
repositories, three kinds of `sub` per repository, 80 % allowed, the rest spread over the usual
reason codes, full claims and a trace, `created` rising with the id over the last `days` days.
Deterministic for a given --seed. Bypasses the exchange (and the append-only checks, which only
refuse updates and deletes): it is for measuring reads.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import time
import uuid
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

REPOSITORIES = 5_000
DENY_REASONS = (
    ("denied_by_policy", "invalid_request", 40),
    ("no_matching_policy", "invalid_scope", 30),
    ("bad_signature", "invalid_request", 10),
    ("expired", "invalid_request", 10),
    ("bad_audience", "invalid_request", 5),
    ("jti_replayed", "invalid_request", 5),
)
COLUMNS = (
    "created",
    "request_id",
    "client_ip",
    "user_agent",
    "organization_id",
    "organization_login",
    "issuer_id",
    "iss",
    "sub",
    "aud",
    "jti",
    "kid",
    "alg",
    "claims",
    "subject_token_sha256",
    "requested_token_type",
    "requested_scope",
    "requested_expiration",
    "decision",
    "error",
    "reason",
    "detail",
    "trace",
    "policy_id",
    "policy_version",
    "token_id",
    "granted_scope",
    "granted_expires",
)


def repository(index: int, org: str) -> str:
    return f"{org}/svc-{index:04d}"


def subject(repo: str, kind: int) -> str:
    """GitHub's three common `sub` shapes: a branch, a pull request, an environment."""
    return (
        f"repo:{repo}:ref:refs/heads/main",
        f"repo:{repo}:pull_request",
        f"repo:{repo}:environment:production",
    )[kind]


def _trace(decision: str, sub: str) -> list[dict[str, Any]]:
    definitions = 1 if decision == "allow" else 5
    return [
        {
            "index": i,
            "decision": "allow",
            "token_type": "organization",
            "fits_request": True,
            "fit_failure": None,
            "applies": decision == "allow",
            "failure": None if decision == "allow" else 'rules not matched: "sub"',
            "rules": [
                {
                    "claim": "sub",
                    "patterns": ["repo:acme/*:ref:refs/heads/main"],
                    "values": [sub],
                    "matched": decision == "allow",
                    "matched_pattern": "repo:acme/*:ref:refs/heads/main"
                    if decision == "allow"
                    else None,
                    "matched_value": sub if decision == "allow" else None,
                },
                {
                    "claim": "repository_owner_id",
                    "patterns": ["88310"],
                    "values": ["88310"],
                    "matched": True,
                    "matched_pattern": "88310",
                    "matched_value": "88310",
                },
            ],
        }
        for i in range(definitions)
    ]


def rows(
    *,
    count: int,
    organizations: list[tuple[int, str, list[tuple[uuid.UUID, str]]]],
    days: int,
    seed: int,
    now: datetime,
) -> Iterator[tuple[Any, ...]]:
    """`count` event rows (COLUMNS order), oldest first; the first organization gets 90 %."""
    rng = random.Random(seed)  # noqa: S311 - benchmark data, not secrets
    start = now - timedelta(days=days)
    step = timedelta(days=days) / max(count, 1)
    weights = [90] + [10 / max(len(organizations) - 1, 1)] * (len(organizations) - 1)
    deny_weights = [w for _, _, w in DENY_REASONS]
    policy_ids = {
        issuer_id: uuid.UUID(int=rng.getrandbits(128))
        for _, _, issuers in organizations
        for issuer_id, _ in issuers
    }
    for n in range(count):
        org_id, login, issuers = rng.choices(organizations, weights)[0]
        issuer_id, iss = rng.choice(issuers)
        # A few busy repositories and a long tail, as in a real organization.
        repo = repository(min(int(rng.paretovariate(1.2)) - 1, REPOSITORIES - 1), login)
        sub = subject(repo, rng.choices((0, 1, 2), (70, 20, 10))[0])
        allowed = rng.random() < 0.8
        reason, error = (
            ("allowed", "")
            if allowed
            else rng.choices([(r, e) for r, e, _ in DENY_REASONS], deny_weights)[0]
        )
        token_type = rng.choices(("organization", "team", "runner"), (90, 5, 5))[0]
        created = start + step * n
        iat = int(created.timestamp())
        claims = {
            "iss": iss,
            "sub": sub,
            "aud": f"urn:pulumi:org:{login}",
            "jti": uuid.UUID(int=rng.getrandbits(128)).hex,
            "iat": iat,
            "nbf": iat,
            "exp": iat + 300,
            "repository": repo,
            "repository_owner": login,
            "repository_owner_id": "88310",
            "repository_id": str(100000 + zlib.crc32(repo.encode()) % 900000),
            "repository_visibility": "private",
            "ref": "refs/heads/main",
            "ref_type": "branch",
            "sha": hashlib.sha1(f"{n}".encode(), usedforsecurity=False).hexdigest(),
            "workflow": "deploy",
            "event_name": "push",
            "actor": f"dev{rng.randrange(200)}",
            "actor_id": str(rng.randrange(10**6)),
            "run_id": str(10**9 + n),
            "run_number": str(n % 5000),
            "run_attempt": "1",
            "runner_environment": "github-hosted",
            "job_workflow_ref": f"{repo}/.github/workflows/deploy.yml@refs/heads/main",
        }
        reached_policy = allowed or reason in ("denied_by_policy", "no_matching_policy")
        yield (
            created,
            uuid.UUID(int=rng.getrandbits(128)).hex[:24],
            f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
            "pulumi-auth-actions/1.0 node/20",
            org_id,
            login,
            issuer_id,
            iss,
            sub,
            f"urn:pulumi:org:{login}",
            claims["jti"],
            "key-1",
            "RS256",
            json.dumps(claims),
            hashlib.sha256(f"token{n}".encode()).hexdigest(),
            token_type,
            "" if token_type == "organization" else f"{token_type}:deploy",
            None,
            "allow" if allowed else "deny",
            error,
            reason,
            "",
            json.dumps(_trace("allow" if allowed else "deny", sub) if reached_policy else []),
            policy_ids[issuer_id] if reached_policy else None,
            3 if reached_policy else None,
            n + 1 if allowed else None,
            "",
            created + timedelta(hours=1) if allowed else None,
        )


def ensure_organizations(
    login: str, others: int
) -> list[tuple[int, str, list[tuple[uuid.UUID, str]]]]:
    """The organizations and their issuers (three each), created when missing."""
    from issuers.models import Issuer
    from trustportal.models import Organization

    found = []
    for name in [login] + [f"{login}-other{i}" for i in range(others)]:
        organization, _ = Organization.objects.get_or_create(login=name, defaults={"name": name})
        issuers = []
        for provider in ("github", "gitlab", "circleci"):
            url = f"https://{provider}.example.test/{name}"
            issuer, _ = Issuer.objects.get_or_create(
                organization=organization, issuer=url, defaults={"name": provider, "url": url}
            )
            issuers.append((issuer.pk, url))
        found.append((int(organization.pk), name, issuers))
    return found


def seed(*, count: int, org: str, others: int = 1, days: int = 400, seed: int = 1) -> float:
    """Insert `count` events; returns the seconds it took."""
    from django.db import connection

    from tokens.models import ExchangeEvent

    organizations = ensure_organizations(org, others)
    generated = rows(
        count=count, organizations=organizations, days=days, seed=seed, now=datetime.now(UTC)
    )
    started = time.perf_counter()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            raw = cursor.cursor  # the psycopg cursor, for COPY
            with raw.copy(f"COPY tokens_exchangeevent ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                for row in generated:
                    copy.write_row(row)
            # What autovacuum does soon after a bulk insert: statistics, and the visibility map
            # that lets the dashboard's counts run as index-only scans.
            cursor.execute("VACUUM (ANALYZE) tokens_exchangeevent")
    else:
        batch: list[ExchangeEvent] = []
        for row in generated:
            values = dict(zip(COLUMNS, row, strict=True))
            values["claims"] = json.loads(values["claims"])
            values["trace"] = json.loads(values["trace"])
            batch.append(ExchangeEvent(**values))
            if len(batch) == 5_000:
                ExchangeEvent.objects.bulk_create(batch)
                batch.clear()
        ExchangeEvent.objects.bulk_create(batch)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--org", default="acme")
    parser.add_argument("--other-orgs", type=int, default=1)
    parser.add_argument("--days", type=int, default=400)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trustportal.settings")
    os.environ.setdefault("TRUSTPORTAL_ENV", "development")
    import django

    django.setup()
    seconds = seed(
        count=args.count, org=args.org, others=args.other_orgs, days=args.days, seed=args.seed
    )
    print(f"inserted {args.count:,} events in {seconds:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
