"""`devissuer serve|mint`: a local OIDC issuer for trying the whole flow offline."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from devtools.issuer import DevIssuer, load_keys, load_request_token


def _state_dir() -> Path:
    return Path(settings.VAR_DIR) / "devissuer"


def _default_port() -> int:
    return int(os.environ.get("DEVISSUER_PORT", "8001"))


def _parse_claims(pairs: list[str]) -> dict[str, Any]:
    """`k=v` pairs; a value that parses as JSON (numbers, true, lists…) is taken as JSON."""
    claims: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise CommandError(f"--claim takes name=value, not {pair!r}")
        try:
            claims[name] = json.loads(raw)
        except json.JSONDecodeError:
            claims[name] = raw
    return claims


class Command(BaseCommand):
    help = "Run a local OIDC issuer (serve) or print a token signed by its key (mint)."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        serve = sub.add_parser("serve", help="serve discovery, JWKS and a GitHub-style token URL")
        serve.add_argument("--host", default="127.0.0.1")
        serve.add_argument("--port", type=int, default=None, help="default $DEVISSUER_PORT or 8001")
        serve.add_argument(
            "--claim",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="claim for tokens from the token endpoint (repeatable)",
        )
        mint = sub.add_parser("mint", help="print a signed ID token")
        mint.add_argument("--sub", default=None, help="subject (default: a GitHub Actions branch)")
        mint.add_argument("--aud", default="urn:pulumi:org:acme", help="audience")
        mint.add_argument("--claim", action="append", default=[], metavar="NAME=VALUE")
        mint.add_argument("--ttl", type=int, default=300, help="lifetime in seconds")
        mint.add_argument(
            "--issuer", default=None, help="iss value (default http://127.0.0.1:$DEVISSUER_PORT)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        keys = load_keys(_state_dir() / "keys.json")
        request_token = load_request_token(_state_dir() / "request_token")
        if options["action"] == "serve":
            port = options["port"] or _default_port()
            try:
                issuer = DevIssuer(
                    host=options["host"], port=port, keys=keys, request_token=request_token
                )
            except OSError as exc:
                raise CommandError(f"cannot listen on {options['host']}:{port}: {exc}") from exc
            issuer.default_claims.update(_parse_claims(options["claim"]))
            self.stderr.write(f"development issuer at {issuer.url}")
            self.stderr.write(f"  ACTIONS_ID_TOKEN_REQUEST_URL={issuer.url}/token")
            self.stderr.write(f"  ACTIONS_ID_TOKEN_REQUEST_TOKEN={request_token}")
            with contextlib.suppress(KeyboardInterrupt):
                issuer.serve_forever()
            return
        issuer_url = (options["issuer"] or f"http://127.0.0.1:{_default_port()}").rstrip("/")
        if options["ttl"] <= 0:
            raise CommandError("--ttl must be positive")
        # Minting needs no server: the same keys the server publishes sign the token.
        minter = DevIssuer(listen=False, url=issuer_url, keys=keys, request_token=request_token)
        claims = _parse_claims(options["claim"])
        if options["sub"]:
            claims["sub"] = options["sub"]
        self.stdout.write(minter.mint(claims, audience=options["aud"], ttl=options["ttl"]))
