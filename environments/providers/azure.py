"""`fn::open::azure-login`: a federated Microsoft Entra login with the portal's ID token.

    values:
      azure:
        login:
          fn::open::azure-login:
            clientId: 11111111-2222-3333-4444-555555555555
            tenantId: 66666666-7777-8888-9999-000000000000
            subscriptionId: /subscriptions/aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee
            oidc: true
            subjectAttributes: [currentEnvironment.name]          # optional
            authorityHost: https://login.microsoftonline.us       # optional (sovereign clouds)
            scope: https://management.usgovcloudapi.net/.default  # optional

Returns `{clientId, tenantId, subscriptionId, oidc: {token}, accessToken}`: Pulumi ESC's
outputs (the ID token, audience `azure:<org>` as Pulumi's, for `ARM_OIDC_TOKEN`) plus an ARM
access token from the client-credentials grant with the ID token as federated client
assertion — so a trust that is not set up fails at open time, not later in the job. Does not
support client secrets (`clientSecret`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from environments.providers.base import (
    MAX_ID_TOKEN_LIFETIME,
    Credentials,
    IdTokenRequest,
    OpenContext,
    ProviderError,
)
from environments.providers.common import (
    INVALID_ARGUMENTS,
    Arguments,
    answer_string,
    expires_in,
    json_answer,
    post_form,
)

SERVICE = "Microsoft Entra ID"
AUDIENCE_PREFIX = "azure"
AUTHORITY_HOST = "https://login.microsoftonline.com"
MANAGEMENT_SCOPE = "https://management.azure.com/.default"
CLIENT_CREDENTIALS = "client_credentials"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

GUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
TENANT = re.compile(GUID.pattern + r"|[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
SUBSCRIPTION = re.compile(r"(?:/subscriptions/)?" + GUID.pattern)
SCOPE = re.compile(r"[!-~]{1,300}/\.default")


# The schema of the arguments (types; the checks below say the rest): `environments.inputschema`.
INPUTS = {
    "type": "object",
    "properties": {
        "clientId": {"type": "string"},
        "tenantId": {"type": "string"},
        "subscriptionId": {"type": "string"},
        "oidc": {"type": "boolean"},
        "subjectAttributes": {"type": "array", "items": {"type": "string"}},
        "authorityHost": {"type": "string"},
        "scope": {"type": "string"},
    },
}


def azure_login(context: OpenContext, arguments: Mapping[str, Any]) -> Credentials:
    """Log the app registration `clientId` in with the portal's ID token as its assertion."""
    args = Arguments.read(
        "azure-login",
        arguments,
        allowed=(
            "clientId",
            "tenantId",
            "subscriptionId",
            "oidc",
            "subjectAttributes",
            "authorityHost",
            "scope",
        ),
        unsupported={"clientSecret": "client secrets are not handed out; use oidc: true"},
    )
    client_id = args.string("clientId", pattern=GUID, hint="an application (client) ID GUID")
    tenant_id = args.string(
        "tenantId", pattern=TENANT, hint="a directory (tenant) ID GUID or domain"
    )
    subscription_id = args.string(
        "subscriptionId", pattern=SUBSCRIPTION, hint="a subscription ID GUID"
    )
    if not args.flag("oidc", default=False):
        raise ProviderError(
            "azure-login.oidc must be true: only OIDC federated login is supported",
            reason=INVALID_ARGUMENTS,
        )
    subject_attributes = args.strings("subjectAttributes")
    authority = args.endpoint(
        "authorityHost",
        default=AUTHORITY_HOST,
        service=SERVICE,
        endpoints=context.endpoints,
        allow_path=False,
    )
    scope = args.optional_string(
        "scope", pattern=SCOPE, hint="a resource scope ending in /.default"
    )

    # The ID token is an output too (ARM_OIDC_TOKEN), so it lives as long as the portal allows.
    id_token = context.id_token(
        IdTokenRequest(
            audience=f"{AUDIENCE_PREFIX}:{context.organization}",
            subject_attributes=subject_attributes,
            lifetime=MAX_ID_TOKEN_LIFETIME,
        )
    )
    answer = json_answer(
        post_form(
            context,
            f"{authority}/{quote(tenant_id, safe='')}/oauth2/v2.0/token",
            [
                ("client_id", client_id),
                ("grant_type", CLIENT_CREDENTIALS),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", id_token),
                ("scope", scope or MANAGEMENT_SCOPE),
            ],
            service=SERVICE,
        ),
        secrets=(id_token,),
    )
    access_token = answer_string(answer, "access_token", service=SERVICE)
    return Credentials(
        values={
            "clientId": client_id,
            "tenantId": tenant_id,
            "subscriptionId": subscription_id,
            "oidc": {"token": id_token},
            "accessToken": access_token,
        },
        role=client_id,
        expires_at=expires_in(context, answer.get("expires_in"), service=SERVICE),
        details={"tenantId": tenant_id, "scope": scope or MANAGEMENT_SCOPE},
    )
