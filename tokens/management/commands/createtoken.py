"""`createtoken`: create an access token by hand and print it once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from tokens.models import Permission, TokenType
from tokens.services import DEFAULT_LIFETIME_DAYS, token_create
from trustportal.models import Organization, Runner, Team, User


class Command(BaseCommand):
    help = (
        "Create an access token and print it on stdout (the only time it is shown). Prefer "
        "tokens obtained by OIDC exchange; a long-lived token is a secret to rotate."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--type", choices=TokenType.values, default=TokenType.ORGANIZATION)
        parser.add_argument("--org", help="organization login (organization/team/runner tokens)")
        parser.add_argument("--team", help="team name (team tokens)")
        parser.add_argument("--user", help="user login (personal tokens)")
        parser.add_argument("--runner", help="runner name (runner tokens)")
        parser.add_argument(
            "--permission",
            default=Permission.STANDARD,
            help="organization tokens: admin or standard (default standard)",
        )
        parser.add_argument("--name", default="", help="a name to recognise the token by")
        parser.add_argument("--description", default="")
        parser.add_argument(
            "--expires-in",
            type=int,
            default=DEFAULT_LIFETIME_DAYS * 86_400,
            metavar="SECONDS",
            help=f"lifetime in seconds (default: {DEFAULT_LIFETIME_DAYS} days, as on the page)",
        )
        parser.add_argument(
            "--never-expires",
            action="store_true",
            help="no expiry at all (not recommended: a long-lived secret to rotate by hand)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        token_type = options["type"]
        org = (
            self._get(Organization, "organization", login=options["org"])
            if options["org"]
            else None
        )
        kwargs: dict[str, Any] = {"organization": org}
        if token_type in (TokenType.ORGANIZATION, TokenType.TEAM, TokenType.RUNNER) and org is None:
            raise CommandError(f"--org is required for {token_type} tokens")
        if token_type == TokenType.TEAM:
            if not options["team"]:
                raise CommandError("--team is required for team tokens")
            kwargs["team"] = self._get(Team, "team", organization=org, name=options["team"])
        if token_type == TokenType.RUNNER:
            if not options["runner"]:
                raise CommandError("--runner is required for runner tokens")
            kwargs["runner"] = self._get(Runner, "runner", organization=org, name=options["runner"])
        if token_type == TokenType.PERSONAL:
            if not options["user"]:
                raise CommandError("--user is required for personal tokens")
            kwargs["user"] = self._get(User, "user", username=options["user"])
        if token_type == TokenType.ORGANIZATION:
            if options["permission"] not in Permission.values:
                raise CommandError("--permission must be admin or standard")
            kwargs["permission"] = options["permission"]
        expires_in = None if options["never_expires"] else options["expires_in"]
        if expires_in is not None and expires_in <= 0:
            raise CommandError("--expires-in must be a positive number of seconds")
        _, plaintext = token_create(
            token_type=token_type,
            name=options["name"],
            description=options["description"],
            expires=timezone.now() + timedelta(seconds=expires_in) if expires_in else None,
            **kwargs,
        )
        self.stdout.write(plaintext)

    def _get(self, model: Any, label: str, **lookup: Any) -> Any:
        try:
            return model.objects.get(**lookup)
        except model.DoesNotExist as exc:
            shown = ", ".join(f"{k.split('__')[0]}={v}" for k, v in lookup.items())
            raise CommandError(f"no {label} with {shown}") from exc
