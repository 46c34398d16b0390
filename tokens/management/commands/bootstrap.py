"""`bootstrap --org ORG --admin LOGIN [--email E] [--print-token]`."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from tokens.models import Permission, TokenType
from tokens.services import token_create
from trustportal.services import organization_bootstrap


class Command(BaseCommand):
    help = (
        "Create (idempotently) an organization and its admin user. With --print-token, print a "
        "new org-admin access token as the only line on stdout."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--org", required=True, help="organization login, e.g. acme")
        parser.add_argument("--admin", required=True, help="login of the organization's admin")
        parser.add_argument("--email", default="", help="the admin's email address")
        parser.add_argument(
            "--print-token",
            action="store_true",
            help="create an organization admin token and print it (only line on stdout)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            result = organization_bootstrap(
                login=options["org"], admin_login=options["admin"], email=options["email"]
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        org, admin = result.organization, result.admin
        self.stderr.write(
            f"organization {org.login}: {'created' if result.created_organization else 'exists'}; "
            f"admin {admin.get_username()}: {'created' if result.created_admin else 'exists'}"
        )
        if options["print_token"]:
            _, plaintext = token_create(
                token_type=TokenType.ORGANIZATION,
                organization=org,
                permission=Permission.ADMIN,
                name="bootstrap",
                description=f"created by `bootstrap` for {admin.get_username()}",
                created_by=admin,
            )
            self.stdout.write(plaintext)
