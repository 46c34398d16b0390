"""`fn::open::aws-login`: AWS credentials from STS AssumeRoleWithWebIdentity.

    values:
      aws:
        login:
          fn::open::aws-login:
            oidc:
              roleArn: arn:aws:iam::123456789012:role/deploy
              sessionName: portal-deploy
              duration: 1h                      # optional, 15m-12h, default 2h
              policyArns: [arn:aws:iam::aws:policy/ReadOnlyAccess]   # optional, at most 10
              subjectAttributes: [currentEnvironment.name]           # optional
            region: eu-west-1                   # optional: sts.<region>.amazonaws.com
            endpoint: https://sts.example.com   # optional, wins over region

Returns `{accessKeyId, secretAccessKey, sessionToken}` (Pulumi ESC's names). The portal's ID
token (audience `aws:<org>`, as Pulumi's) is the only credential: the request is the unsigned
form POST the AWS SDKs send for this action. The XML answer is read by a parser that refuses
any DTD, so no entity can be declared or expanded. Does not sign requests, retry, or support
ESC's `static` credentials.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, NoReturn
from xml.parsers import expat

from environments.providers.base import Credentials, IdTokenRequest, OpenContext, ProviderError
from environments.providers.common import (
    BAD_ANSWER,
    Answer,
    Arguments,
    parse_timestamp,
    post_form,
    refusal,
    scrub,
)

SERVICE = "AWS STS"
AUDIENCE_PREFIX = "aws"
STS_VERSION = "2011-06-15"
DEFAULT_DURATION = timedelta(hours=2)  # Pulumi ESC's documented default
MIN_DURATION = timedelta(minutes=15)  # STS's DurationSeconds range
MAX_DURATION = timedelta(hours=12)
MAX_POLICY_ARNS = 10  # STS's limit

_PARTITION = r"arn:aws(?:-[a-z]+)*"
ROLE_ARN = re.compile(_PARTITION + r":iam::\d{12}:role/[\w+=,.@/-]{1,512}")
POLICY_ARN = re.compile(_PARTITION + r":iam::(?:aws|\d{12}):policy/[\w+=,.@/-]{1,512}")
SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}")
REGION = re.compile(r"[a-z]{2}(?:-[a-z]+)+-\d{1,2}")


def sts_endpoint(region: str | None) -> str:
    """The STS endpoint of a region (the global one without); China has its own domain."""
    if region is None:
        return "https://sts.amazonaws.com"
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://sts.{region}.{domain}"


# The schema of the arguments (types; the checks below say the rest): `environments.inputschema`.
INPUTS = {
    "type": "object",
    "properties": {
        "oidc": {
            "type": "object",
            "properties": {
                "roleArn": {"type": "string"},
                "sessionName": {"type": ["string", "number"]},
                "duration": {"type": ["string", "number"]},
                "policyArns": {"type": "array", "items": {"type": "string"}},
                "subjectAttributes": {"type": "array", "items": {"type": "string"}},
            },
        },
        "region": {"type": "string"},
        "endpoint": {"type": "string"},
    },
}


def aws_login(context: OpenContext, arguments: Mapping[str, Any]) -> Credentials:
    """Assume `oidc.roleArn` with the portal's ID token; returns the session's keys."""
    args = Arguments.read(
        "aws-login",
        arguments,
        allowed=("oidc", "region", "endpoint"),
        unsupported={"static": "static credentials are not handed out; use oidc"},
    )
    oidc = args.section(
        "oidc",
        allowed=("roleArn", "sessionName", "duration", "policyArns", "subjectAttributes"),
    )
    role_arn = oidc.string(
        "roleArn", pattern=ROLE_ARN, hint="an IAM role ARN (arn:aws:iam::<account>:role/<name>)"
    )
    session_name = oidc.string(
        "sessionName",
        pattern=SESSION_NAME,
        hint="2 to 64 letters, digits or any of +=,.@_-",
    )
    duration = oidc.duration(
        "duration", default=DEFAULT_DURATION, minimum=MIN_DURATION, maximum=MAX_DURATION
    )
    policy_arns = oidc.strings(
        "policyArns",
        pattern=POLICY_ARN,
        hint="an IAM policy ARN (arn:aws:iam::<account or aws>:policy/<name>)",
        max_items=MAX_POLICY_ARNS,
    )
    subject_attributes = oidc.strings("subjectAttributes")
    region = args.optional_string("region", pattern=REGION, hint="an AWS region such as us-east-1")
    endpoint = args.endpoint(
        "endpoint", default=sts_endpoint(region), service=SERVICE, endpoints=context.endpoints
    )

    token = context.id_token(
        IdTokenRequest(
            audience=f"{AUDIENCE_PREFIX}:{context.organization}",
            subject_attributes=subject_attributes,
        )
    )
    fields = [
        ("Action", "AssumeRoleWithWebIdentity"),
        ("Version", STS_VERSION),
        ("RoleArn", role_arn),
        ("RoleSessionName", session_name),
        ("WebIdentityToken", token),
        ("DurationSeconds", str(int(duration.total_seconds()))),
    ]
    fields += [(f"PolicyArns.member.{n}.arn", arn) for n, arn in enumerate(policy_arns, 1)]
    answer = post_form(
        context, endpoint + "/", fields, service=SERVICE, headers={"Accept": "text/xml"}
    )
    document = _answer_xml(answer, secrets=(token,))
    result = _child(document, "AssumeRoleWithWebIdentityResult")
    keys = _child(result, "Credentials")
    assumed = result.find("AssumedRoleUser/Arn")
    return Credentials(
        values={
            "accessKeyId": _text(keys, "AccessKeyId"),
            "secretAccessKey": _text(keys, "SecretAccessKey"),
            "sessionToken": _text(keys, "SessionToken"),
        },
        role=role_arn,
        expires_at=parse_timestamp(_text(keys, "Expiration"), service=SERVICE),
        details={
            "sessionName": session_name,
            "assumedRoleArn": (assumed.text or "") if assumed is not None else "",
            "endpoint": endpoint,
            "durationSeconds": int(duration.total_seconds()),
            "policyArns": list(policy_arns),
        },
    )


def _answer_xml(answer: Answer, *, secrets: tuple[str, ...]) -> ElementTree.Element:
    """The XML document of a 2xx answer; STS's `<Error><Code>`/`<Message>` otherwise."""
    try:
        document = parse_xml(answer.body)
    except ValueError as exc:
        if not answer.ok:
            raise refusal(answer, None) from None
        raise ProviderError(
            f"{SERVICE} sent an unreadable answer: {exc}", reason=BAD_ANSWER
        ) from None
    if not answer.ok:
        code = document.findtext("Error/Code") or ""
        message = document.findtext("Error/Message") or ""
        detail = ": ".join(part.strip() for part in (code, message) if part.strip())
        raise refusal(answer, detail or None, secrets=secrets)
    return document


def _child(element: ElementTree.Element, name: str) -> ElementTree.Element:
    """A required child element of the answer."""
    found = element.find(name)
    if found is None:
        raise ProviderError(f"{SERVICE}'s answer has no {name}", reason=BAD_ANSWER)
    return found


def _text(element: ElementTree.Element, name: str) -> str:
    """The required non-empty text of a child element."""
    text = (element.findtext(name) or "").strip()
    if not text:
        raise ProviderError(f"{SERVICE}'s answer has no {name}", reason=BAD_ANSWER)
    return text


# ---------------------------------------------------------------------------------------- XML

MAX_XML_DEPTH = 32


def parse_xml(body: bytes) -> ElementTree.Element:
    """Parse UTF-8 XML into elements named by local name (namespaces dropped).

    Refuses, as defusedxml does, any document type declaration — and with it every entity
    declaration, internal (the "billion laughs") or external (file and network reads) — and
    processing of any encoding but UTF-8. Raises ValueError with a short reason.
    """

    def refuse(*_args: object) -> NoReturn:
        raise ValueError("the XML declares a DTD or entities, which are refused")

    builder = ElementTree.TreeBuilder()
    depth = 0

    def start(name: str, attributes: dict[str, str]) -> None:
        nonlocal depth
        depth += 1
        if depth > MAX_XML_DEPTH:
            raise ValueError("the XML is nested too deeply")
        builder.start(name.rpartition("}")[2], attributes)

    def end(name: str) -> None:
        nonlocal depth
        depth -= 1
        builder.end(name.rpartition("}")[2])

    parser = expat.ParserCreate(encoding="utf-8", namespace_separator="}")
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.UnparsedEntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = builder.data
    try:
        body.decode("utf-8")
        parser.Parse(body, True)
    except UnicodeDecodeError:
        raise ValueError("the XML is not UTF-8") from None
    except expat.ExpatError as exc:
        raise ValueError(f"the XML is malformed ({scrub(str(exc))})") from None
    return builder.close()
