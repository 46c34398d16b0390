"""The exchange at the portal (RFC 8693) and the explanation of a refusal."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Mapping
from typing import Any

from trustportal_login.model import (
    GRANT_TYPE,
    ID_TOKEN_TYPE,
    PLAIN_TOKEN,
    REQUESTED_PREFIX,
    USER_AGENT,
    Granted,
    LoginError,
    Options,
    Response,
)
from trustportal_login.sources import unverified_claims
from trustportal_login.transport import http, json_object, shown


def exchange(options: Options, id_token: str) -> Granted:
    """POST the RFC 8693 exchange; the granted token, or a LoginError explaining the refusal."""
    body: dict[str, Any] = {
        "audience": options.audience,
        "grant_type": GRANT_TYPE,
        "subject_token_type": ID_TOKEN_TYPE,
        "requested_token_type": REQUESTED_PREFIX + options.token_type,
        "subject_token": id_token,
        "scope": options.scope,
    }
    if options.expiration is not None:
        body["expiration"] = options.expiration
    endpoint = f"{options.url}/api/oauth/token"
    request = urllib.request.Request(  # noqa: S310 (scheme checked by check_portal_url)
        endpoint,
        data=json.dumps(body).encode(),
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        },
    )
    answer = http(request, timeout=options.timeout, what=f"the portal at {endpoint}")
    document = json_object(answer.body)
    if answer.status == 200 and document and isinstance(document.get("access_token"), str):
        access_token = document["access_token"]
        # It goes into `export` lines and $GITHUB_ENV: a newline there would set other variables.
        if not PLAIN_TOKEN.fullmatch(access_token):
            raise LoginError(f"the portal at {endpoint} answered a malformed access token")
        expires_in = document.get("expires_in")
        return Granted(
            access_token=access_token,
            token_type=options.token_type,
            scope=str(document.get("scope", options.scope)),
            expires_in=expires_in if isinstance(expires_in, int) else None,
        )
    raise LoginError(refusal_message(options, answer, document, id_token, endpoint))


REASON_HINTS = {
    "denied_by_policy": "a deny definition of the issuer's trust policy matches this job",
    "no_matching_policy": "no allow definition of the issuer's trust policy grants "
    "{what} to this job",
    "untrusted_token": "the portal does not say which (on purpose): there is no organization "
    "{org}, it has no enabled issuer for iss {iss}, or the token's audience is not accepted",
    "token_expired": "the ID token has expired: take a fresh one",
    "jti_replayed": "this ID token was already exchanged and its issuer accepts each once",
    "issuer_unhealthy": "the portal cannot currently get the issuer's keys",
    "scope_mismatch": "the scope does not fit the token type",
}


def refusal_message(
    options: Options,
    answer: Response,
    document: Mapping[str, Any] | None,
    id_token: str,
    endpoint: str,
) -> str:
    """Explain a refused exchange: error, reason and request id, plus what to change."""
    if 300 <= answer.status < 400:
        location = answer.headers.get("location", "")
        return (
            f"the portal at {endpoint} answered a redirect (HTTP {answer.status}"
            + (f" to {shown(location)}" if location else "")
            + "), which is not followed: pass the portal's final URL as --url"
        )
    if document is None or not isinstance(document.get("error"), str):
        return (
            f"the portal at {endpoint} answered HTTP {answer.status} without an OAuth error: "
            "is --url the portal's base URL?"
        )
    error = document["error"]
    reason = str(document.get("reason") or "")
    request_id = str(document.get("request_id") or answer.headers.get("x-request-id") or "")
    lines = [
        f"the portal refused the exchange: {error} (HTTP {answer.status})"
        + (f", reason: {reason}" if reason else "")
    ]
    if not reason and document.get("error_description"):
        lines.append(str(document["error_description"]))
    claims = unverified_claims(id_token) or {}
    if reason == "untrusted_token" and not _has_audience(claims, options.audience):
        lines.extend(audience_advice(options, claims))
    elif reason == "rate_limited" or answer.status == 429:
        retry = answer.headers.get("retry-after", "")
        lines.append("too many attempts" + (f": retry in {retry} s" if retry else ""))
    elif reason in REASON_HINTS:
        what = f"the requested {options.token_type} token" + (
            f" with scope {options.scope}" if options.scope else ""
        )
        lines.append(
            REASON_HINTS[reason].format(
                what=what, org=options.organization, iss=claims.get("iss", "(unreadable)")
            )
        )
    if request_id:
        lines.append(
            f"request id: {request_id} (give the request id to your portal admin: the exchange "
            "history shows the full reason)"
        )
    return "\n  ".join(lines)


def _has_audience(claims: Mapping[str, Any], audience: str) -> bool:
    has = claims.get("aud")
    return audience in has if isinstance(has, list) else has == audience


def audience_advice(options: Options, claims: Mapping[str, Any]) -> list[str]:
    """Which audience the ID token has against the one asked for, and how to line them up."""
    has = claims.get("aud")
    if has is None:
        shown = "no audience (or an unreadable payload)"
    elif isinstance(has, list):
        shown = ", ".join(json.dumps(a) for a in has) or "an empty audience list"
    else:
        shown = json.dumps(has)
    lines = [
        f"the ID token's audience is {shown}, but this exchange asked for "
        f"{json.dumps(options.audience)}",
        "(the audience was read from the token's payload, decoded WITHOUT verifying it)",
    ]
    fixes = {
        "github": "request it with --id-token-audience " + options.audience,
        "buildkite": "request it with --id-token-audience " + options.audience,
        "gitlab": f"set `aud: {options.audience}` under `id_tokens: {options.gitlab_variable}:`",
        "circleci": "CircleCI's audience is your CircleCI organization id: ask your portal admin "
        "to add it to the issuer's audiences",
        "file": f"set `audience: {options.audience}` on the projected serviceAccountToken volume",
    }
    fix = fixes.get(options.platform, f"mint the ID token for {options.audience}")
    lines.append(f"fix: {fix}, or ask your portal admin to add the token's audience to the issuer")
    return lines
