"""`fn::open::vault-login`: a Vault token from the JWT auth method with the portal's ID token.

    values:
      vault:
        login:
          fn::open::vault-login:
            address: https://vault.example.com:8200
            namespace: admin/team                   # optional (Vault Enterprise)
            jwt:
              role: deploy
              mount: jwt                            # optional, default jwt
              subjectAttributes: [currentEnvironment.name]   # optional

Returns `{address, token}` (plus `namespace` when given), Pulumi ESC's names. The login is
`POST <address>/v1/auth/<mount>/login {"role", "jwt"}` with the ID token's audience set to the
organization login, as Pulumi's is for Vault. Does not support ESC's `token` (child token) login.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from environments.providers.base import Credentials, IdTokenRequest, OpenContext, ProviderError
from environments.providers.common import (
    BAD_ANSWER,
    Arguments,
    answer_string,
    json_answer,
    post_json,
)

SERVICE = "Vault"
DEFAULT_MOUNT = "jwt"
NAMESPACE_HEADER = "X-Vault-Namespace"

MOUNT = re.compile(r"[A-Za-z0-9_-]+(?:[./][A-Za-z0-9_-]+)*")
NAMESPACE = re.compile(r"[A-Za-z0-9_-]+(?:/[A-Za-z0-9_-]+)*/?")
ROLE = re.compile(r"[!-~]{1,256}")


# The schema of the arguments (types; the checks below say the rest): `environments.inputschema`.
INPUTS = {
    "type": "object",
    "properties": {
        "address": {"type": "string"},
        "namespace": {"type": "string"},
        "jwt": {
            "type": "object",
            "properties": {
                "role": {"type": ["string", "number"]},
                "mount": {"type": "string"},
                "subjectAttributes": {"type": "array", "items": {"type": "string"}},
            },
        },
    },
}


def vault_login(context: OpenContext, arguments: Mapping[str, Any]) -> Credentials:
    """Log in to Vault's JWT auth method as `jwt.role`; returns the client token."""
    args = Arguments.read(
        "vault-login",
        arguments,
        allowed=("address", "namespace", "jwt"),
        unsupported={"token": "child tokens of a stored token are not handed out; use jwt"},
    )
    namespace = args.optional_string(
        "namespace", pattern=NAMESPACE, hint="a namespace path such as admin/team"
    )
    jwt = args.section("jwt", allowed=("role", "mount", "subjectAttributes"))
    role = jwt.string("role", pattern=ROLE, hint="a role name without spaces")
    mount = jwt.optional_string(
        "mount", pattern=MOUNT, hint="an auth mount path such as jwt or ci/jwt"
    )
    subject_attributes = jwt.strings("subjectAttributes")
    address = args.endpoint(
        "address", default=None, service=SERVICE, endpoints=context.endpoints, allow_path=False
    )

    id_token = context.id_token(
        IdTokenRequest(audience=context.organization, subject_attributes=subject_attributes)
    )
    answer = json_answer(
        post_json(
            context,
            f"{address}/v1/auth/{mount or DEFAULT_MOUNT}/login",
            {"role": role, "jwt": id_token},
            service=SERVICE,
            headers={NAMESPACE_HEADER: namespace} if namespace else None,
        ),
        secrets=(id_token,),
    )
    auth = answer.get("auth")
    if not isinstance(auth, Mapping):
        raise ProviderError(f"{SERVICE}'s answer has no auth", reason=BAD_ANSWER)
    token = answer_string(auth, "client_token", service=SERVICE)
    lease = auth.get("lease_duration")
    # A lease of 0 is a token that never expires (Vault's convention), so no expiry is recorded.
    expires_at = (
        context.now() + timedelta(seconds=lease)
        if isinstance(lease, int) and not isinstance(lease, bool) and lease > 0
        else None
    )
    policies = auth.get("policies")
    values: dict[str, Any] = {"address": address, "token": token}
    if namespace:
        values["namespace"] = namespace
    return Credentials(
        values=values,
        role=role,
        expires_at=expires_at,
        details={
            "mount": mount or DEFAULT_MOUNT,
            "policies": [p for p in policies if isinstance(p, str)]
            if isinstance(policies, list)
            else [],
        },
    )
