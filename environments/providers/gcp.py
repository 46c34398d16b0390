"""`fn::open::gcp-login`: a Google Cloud access token through workload identity federation.

    values:
      gcp:
        login:
          fn::open::gcp-login:
            project: 123456789012               # the project NUMBER that holds the pool
            oidc:
              workloadPoolId: portal
              providerId: portal
              serviceAccount: deploy@my-project.iam.gserviceaccount.com   # optional
              tokenLifetime: 1h                 # optional, 10m-12h, default 1h
              subjectAttributes: [currentEnvironment.name]                # optional
            stsEndpoint: https://sts.googleapis.com                       # optional
            iamCredentialsEndpoint: https://iamcredentials.googleapis.com # optional

Returns `{project, accessToken, expiry, tokenType}` (Pulumi ESC's names). Step one is the
RFC 8693 token exchange at Google STS with the portal's ID token (audience `gcp:<org>`, as
Pulumi's) as the subject token; with `serviceAccount`, step two impersonates it through IAM
Credentials `generateAccessToken` using the federated token as Bearer. Without it, the federated
token itself is returned (direct resource access by the pool's principal). Does not support
ESC's static credentials.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from environments.providers.base import Credentials, IdTokenRequest, OpenContext
from environments.providers.common import (
    Arguments,
    answer_string,
    expires_in,
    json_answer,
    parse_timestamp,
    post_form,
    post_json,
    rfc3339,
)

STS_SERVICE = "Google STS"
IAM_SERVICE = "Google IAM Credentials"
AUDIENCE_PREFIX = "gcp"
STS_ENDPOINT = "https://sts.googleapis.com"
IAM_CREDENTIALS_ENDPOINT = "https://iamcredentials.googleapis.com"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
DEFAULT_LIFETIME = timedelta(hours=1)  # generateAccessToken's default
MIN_LIFETIME = timedelta(minutes=10)
MAX_LIFETIME = timedelta(hours=12)  # needs the extended-lifetime org policy above 1h

PROJECT_NUMBER = re.compile(r"[1-9]\d{0,19}")
# Pool and provider IDs: 4-32 lower-case letters, digits and dashes (Google's rule).
POOL_ID = re.compile(r"[a-z0-9][a-z0-9-]{2,30}[a-z0-9]")
SERVICE_ACCOUNT = re.compile(r"[a-z0-9][a-z0-9-]{4,61}[a-z0-9]@[a-z0-9.-]+\.gserviceaccount\.com")
REGION = re.compile(r"[a-z]+-[a-z]+\d{1,2}")


def pool_provider_audience(project: str, pool: str, provider: str) -> str:
    """The STS `audience`: the full resource name of the workload identity pool provider."""
    return (
        f"//iam.googleapis.com/projects/{project}/locations/global"
        f"/workloadIdentityPools/{pool}/providers/{provider}"
    )


# The schema of the arguments (types; the checks below say the rest): `environments.inputschema`.
INPUTS = {
    "type": "object",
    "properties": {
        "project": {"type": ["string", "number"]},
        "oidc": {
            "type": "object",
            "properties": {
                "workloadPoolId": {"type": ["string", "number"]},
                "providerId": {"type": ["string", "number"]},
                "serviceAccount": {"type": "string"},
                "tokenLifetime": {"type": ["string", "number"]},
                "region": {"type": "string"},
                "subjectAttributes": {"type": "array", "items": {"type": "string"}},
            },
        },
        "stsEndpoint": {"type": "string"},
        "iamCredentialsEndpoint": {"type": "string"},
    },
}


def gcp_login(context: OpenContext, arguments: Mapping[str, Any]) -> Credentials:
    """Exchange the portal's ID token at Google STS, then impersonate the service account."""
    args = Arguments.read(
        "gcp-login",
        arguments,
        allowed=("project", "oidc", "stsEndpoint", "iamCredentialsEndpoint"),
        unsupported={"static": "static credentials are not handed out; use oidc"},
    )
    project = args.string(
        "project", pattern=PROJECT_NUMBER, hint="the numeric project number (not the ID)"
    )
    oidc = args.section(
        "oidc",
        allowed=(
            "workloadPoolId",
            "providerId",
            "serviceAccount",
            "tokenLifetime",
            "region",
            "subjectAttributes",
        ),
    )
    pool = oidc.string("workloadPoolId", pattern=POOL_ID, hint="a workload identity pool ID")
    provider = oidc.string("providerId", pattern=POOL_ID, hint="a workload identity provider ID")
    service_account = oidc.optional_string(
        "serviceAccount", pattern=SERVICE_ACCOUNT, hint="a service account e-mail address"
    )
    lifetime = oidc.duration(
        "tokenLifetime", default=DEFAULT_LIFETIME, minimum=MIN_LIFETIME, maximum=MAX_LIFETIME
    )
    region = oidc.optional_string("region", pattern=REGION, hint="a region such as us-central1")
    subject_attributes = oidc.strings("subjectAttributes")
    sts = args.endpoint(
        "stsEndpoint", default=STS_ENDPOINT, service=STS_SERVICE, endpoints=context.endpoints
    )
    iam = args.endpoint(
        "iamCredentialsEndpoint",
        default=IAM_CREDENTIALS_ENDPOINT,
        service=IAM_SERVICE,
        endpoints=context.endpoints,
    )

    audience = pool_provider_audience(project, pool, provider)
    id_token = context.id_token(
        IdTokenRequest(
            audience=f"{AUDIENCE_PREFIX}:{context.organization}",
            subject_attributes=subject_attributes,
        )
    )
    federated = json_answer(
        post_form(
            context,
            sts + "/v1/token",
            [
                ("grant_type", TOKEN_EXCHANGE),
                ("audience", audience),
                ("scope", CLOUD_PLATFORM),
                ("requested_token_type", ACCESS_TOKEN_TYPE),
                ("subject_token_type", JWT_TOKEN_TYPE),
                ("subject_token", id_token),
            ],
            service=STS_SERVICE,
        ),
        secrets=(id_token,),
    )
    access_token = answer_string(federated, "access_token", service=STS_SERVICE)
    expires_at = expires_in(context, federated.get("expires_in"), service=STS_SERVICE)
    token_type = federated.get("token_type") or "Bearer"

    if service_account is not None:
        impersonated = json_answer(
            post_json(
                context,
                f"{iam}/v1/projects/-/serviceAccounts/{quote(service_account, safe='@')}"
                ":generateAccessToken",
                {"scope": [CLOUD_PLATFORM], "lifetime": f"{int(lifetime.total_seconds())}s"},
                service=IAM_SERVICE,
                headers={"Authorization": f"Bearer {access_token}"},
            ),
            secrets=(id_token, access_token),
        )
        access_token = answer_string(impersonated, "accessToken", service=IAM_SERVICE)
        expires_at = parse_timestamp(impersonated.get("expireTime"), service=IAM_SERVICE)
        token_type = "Bearer"

    values: dict[str, Any] = {
        "project": project,
        "accessToken": access_token,
        "expiry": rfc3339(expires_at),
        "tokenType": str(token_type),
    }
    if region is not None:
        values["region"] = region
    return Credentials(
        values=values,
        role=service_account or audience,
        expires_at=expires_at,
        details={"audience": audience, "serviceAccount": service_account or ""},
    )
