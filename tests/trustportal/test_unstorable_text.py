"""Text PostgreSQL cannot hold (NUL, lone surrogates) is refused with a 400, never a 500.

One middleware (`portal.unstorable`) checks URL paths, query strings, form and JSON bodies
and answers in the endpoint's shape: `{"code","message"}` under /api/, an OAuth error body on
the token endpoint, a plain 400 on pages and the admin. The token endpoint's own strict parser
refuses its body. Run on PostgreSQL (DATABASE_URL) as CI does: SQLite stores NUL happily.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from tests.factories import PASSWORD, UserFactory, make_token
from trustportal.models import Membership, Organization, Role, User

pytestmark = pytest.mark.django_db

NUL = "%00"
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"

# (kind, method, path with {org}, body, content type)
API: list[tuple[str, str, str, Any, str]] = [
    ("api", "GET", "/api/orgs/ac" + NUL + "me", None, ""),
    ("api", "GET", "/api/orgs/{org}/oidc/exchanges?subject=a" + NUL + "b", None, ""),
    ("api", "GET", "/api/orgs/{org}/oidc/exchanges?repository=" + NUL, None, ""),
    ("api", "GET", "/api/orgs/{org}/tokens?subject=x" + NUL, None, ""),
    ("api", "GET", "/api/orgs/{org}/tokens?x" + NUL + "=1", None, ""),
    ("api", "GET", "/api/esc/environments/{org}/pr" + NUL + "oj/env", None, ""),
    ("api", "GET", "/api/esc/environments/{org}/proj/e" + NUL + "nv/versions", None, ""),
    ("api", "GET", "/api/orgs/{org}/tokens/" + NUL, None, ""),
    ("api", "POST", "/api/orgs/{org}/tokens", '{"name": "a\\u0000b"}', JSON),
    ("api", "POST", "/api/orgs/{org}/tokens", '{"name": "a\\ud800b"}', JSON),
    ("api", "POST", "/api/orgs/{org}/tokens", '{"name": "ok", "x\\u0000": 1}', JSON),
    ("api", "POST", "/api/orgs/{org}/tokens", "name=a%00b", FORM),
    ("api", "POST", "/api/esc/environments/{org}", '{"project": "p\\u0000", "name": "e"}', JSON),
]
PAGES: list[tuple[str, str, str, Any, str]] = [
    ("page", "GET", "/orgs/ac" + NUL + "me/", None, ""),
    ("page", "GET", "/orgs/{org}/history/?subject=a" + NUL, None, ""),
    ("page", "GET", "/orgs/{org}/history/?reason=" + NUL, None, ""),
    ("page", "GET", "/orgs/{org}/tokens/?subject=" + NUL, None, ""),
    ("page", "GET", "/orgs/{org}/environments/pr" + NUL + "oj/env/", None, ""),
    ("page", "POST", "/orgs/{org}/tokens/new/", "name=a%00b&token_type=organization", FORM),
    ("page", "GET", "/admin/trustportal/team/?q=" + NUL, None, ""),
    ("page", "GET", "/admin/tokens/exchangeevent/?q=" + NUL, None, ""),
    ("page", "POST", "/admin/trustportal/team/add/", "name=t%00&display_name=x", FORM),
]
TOKEN_ENDPOINT: list[tuple[str, str, str, Any, str]] = [
    ("oauth", "POST", "/api/oauth/token?audience=" + NUL, "grant_type=x", FORM),
    ("oauth", "POST", "/api/oauth/token", "audience=urn:pulumi:org:ac%00me", FORM),
    ("oauth", "POST", "/api/oauth/token", '{"audience": "urn:pulumi:org:\\u0000"}', JSON),
    ("oauth", "POST", "/api/oauth/token", '{"audience": "urn:pulumi:org:\\udc00"}', JSON),
]
CASES = API + PAGES + TOKEN_ENDPOINT


@pytest.fixture
def organization() -> Organization:
    organization = Organization.objects.create(login="acme")
    UserFactory(username="alice")
    user = User.objects.get(username="alice")
    Membership.objects.create(organization=organization, user=user, role=Role.ADMIN)
    return organization


@pytest.mark.parametrize(
    ("kind", "method", "path", "body", "content_type"),
    CASES,
    ids=[f"{c[1]} {c[2]} {c[3] or ''}" for c in CASES],
)
def test_unstorable_text_is_a_400_in_the_endpoints_shape(
    organization: Organization, kind: str, method: str, path: str, body: Any, content_type: str
) -> None:
    client = Client(raise_request_exception=False)
    if kind == "page":
        assert client.login(username="alice", password=PASSWORD)
    else:
        token = make_token("organization", organization=organization, permission="admin")
        client.defaults["HTTP_AUTHORIZATION"] = f"token {token}"
    kwargs: dict[str, Any] = {}
    if body is not None:
        kwargs = {"data": body.encode(), "content_type": content_type}
    response = client.generic(method, path.format(org=organization.login), **kwargs)
    assert response.status_code == 400, response.content[:300]
    if kind == "api":
        assert response.json() == {"code": 400, "message": response.json()["message"]}
    elif kind == "oauth":
        assert response.json()["error"] == "invalid_request"
    else:
        assert response["Content-Type"].startswith("text/plain")


@pytest.mark.parametrize(
    ("path", "body", "content_type"),
    [
        ("/api/orgs/{org}/tokens", json.dumps({"name": "fine é ✓"}), JSON),
        ("/api/orgs/{org}/tokens", "name=fine+%C3%A9", FORM),
    ],
)
def test_ordinary_text_passes(
    organization: Organization, path: str, body: str, content_type: str
) -> None:
    client = Client()
    token = make_token("organization", organization=organization, permission="admin")
    client.defaults["HTTP_AUTHORIZATION"] = f"token {token}"
    response = client.post(path.format(org="acme"), body, content_type=content_type)
    assert response.status_code in (200, 201), response.content


def test_multipart_forms_are_checked_and_still_readable(organization: Organization) -> None:
    client = Client(raise_request_exception=False)
    assert client.login(username="alice", password=PASSWORD)
    form = {"organization": organization.pk, "display_name": "", "members": []}
    response = client.post("/admin/trustportal/team/add/", {**form, "name": "t\x00"})
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/plain")
    # Client.post sends multipart: the view still reads the form the middleware read first.
    response = client.post("/admin/trustportal/team/add/", {**form, "name": "deployers"})
    assert response.status_code == 302
    assert organization.teams.filter(name="deployers").exists()
