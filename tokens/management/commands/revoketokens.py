"""`revoketokens`: revoke every active token of an organization that the filters select."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from tokens.filters import FilterError, token_filters_from
from tokens.selectors import revocation_preview
from tokens.services import tokens_revoke_matching
from trustportal.models import Organization

# Command-line option → filter name (the same names as the token page and API).
OPTIONS = {
    "issuer": "issuer",
    "policy": "policy",
    "policy_version": "version",
    "definition": "definition",
    "subject": "subject",
    "repository": "repository",
    "type": "type",
    "since": "since",
    "until": "until",
}


class Command(BaseCommand):
    help = (
        "Revoke the active access tokens of an organization that the filters select (at least "
        "one filter), and the tokens created with them. Prints how many; --dry-run only counts. "
        "Revoked tokens fail on their next API call."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--org", required=True, help="organization login")
        parser.add_argument("--issuer", help="issuer id: tokens it minted")
        parser.add_argument("--policy", help="policy id: tokens it granted")
        parser.add_argument(
            "--policy-version",
            help="policy version: N (with --policy or --issuer) or POLICY_ID:N",
        )
        parser.add_argument(
            "--definition", help="definition index (needs --policy and --policy-version)"
        )
        parser.add_argument("--subject", help="subject pattern, e.g. 'repo:acme/infra:*'")
        parser.add_argument(
            "--repository", help="repository pattern (GitHub owner/name), e.g. 'acme/infra'"
        )
        parser.add_argument("--type", help="organization, team, personal or runner")
        parser.add_argument("--since", help="created at or after (ISO 8601 date or time, UTC)")
        parser.add_argument("--until", help="created before (ISO 8601; a date means its end)")
        parser.add_argument("--reason", default="revoked with revoketokens")
        parser.add_argument("--dry-run", action="store_true", help="only count, revoke nothing")
        parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    def handle(self, *args: Any, **options: Any) -> None:
        organization = Organization.objects.filter(login=options["org"]).first()
        if organization is None:
            raise CommandError(f"no organization {options['org']!r}")
        params = {name: options[option] for option, name in OPTIONS.items() if options[option]}
        policy, colon, version = str(params.get("version", "")).rpartition(":")
        if colon:
            params.update(policy=policy, version=version)
        try:
            filters = token_filters_from(params)
        except FilterError as exc:
            raise CommandError(str(exc)) from None
        if not filters.selects_tokens():
            raise CommandError(
                "give at least one filter (use --since 1970-01-01 to mean every token)"
            )
        now = timezone.now()
        preview = revocation_preview(organization=organization, filters=filters, now=now)
        created_with = (
            f" ({preview.descendants} of them created with the others)"
            if preview.descendants
            else ""
        )
        if options["dry_run"]:
            self.stdout.write(f"{preview.total} token(s) would be revoked{created_with}")
            return
        if preview.total and not options["yes"]:
            if not sys.stdin.isatty():
                raise CommandError(
                    f"{preview.total} token(s){created_with} would be revoked; without a terminal "
                    "to confirm on, pass --yes (or --dry-run to only count)"
                )
            answer = input(
                f"Revoke {preview.total} token(s){created_with} of {organization.login}? [y/N] "
            )
            if answer.strip().lower() not in ("y", "yes"):
                raise CommandError("nothing revoked")
        revoked = tokens_revoke_matching(
            organization=organization,
            filters=filters,
            by=None,
            reason=options["reason"],
            upto=preview.upto,
            now=now,
        )
        self.stdout.write(f"{revoked} token(s) revoked")
