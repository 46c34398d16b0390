"""The policy pages without JavaScript: editor, simulator, replay, history, roles and tenancy."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.html import Element, parse_html
from django.urls import reverse
from django.utils import timezone

from devtools.issuer import DevIssuer, SigningKey
from issuers.services import Outbound
from policies.drafts import draft_stage
from policies.errors import PolicyInvalid
from policies.examples import example_for, placeholder_errors
from policies.models import AuthPolicy, AuthPolicyVersion
from policies.registration import issuer_register
from policies.samples import sample_claims, samples
from policies.selectors import working_copy
from policies.services import policy_update
from portal.policies.forms import locate
from tests.factories import PASSWORD, MembershipFactory, OrganizationFactory, UserFactory
from tests.tokens.conftest import AUDIENCE, exchange_body
from trustportal.models import Organization, Role

pytestmark = pytest.mark.django_db

GITHUB = "https://token.actions.githubusercontent.com"
ALLOW_MAIN = {
    "decision": "allow",
    "tokenType": "organization",
    "authorizedPermissions": ["admin"],
    "rules": {"sub": "repo:acme/infra:ref:refs/heads/main", "repository_owner_id": "88310"},
}
DENY_PR = {
    "decision": "deny",
    "tokenType": "organization",
    "authorizedPermissions": ["admin"],
    "rules": {"event_name": ["pull_request", "pull_request_target"]},
}


@pytest.fixture(autouse=True)
def _fast_passwords(settings: Any) -> None:
    # Signing in with the production hasher costs about a second per login.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def policy(org: Organization, local_issuer: DevIssuer, outbound: Outbound) -> AuthPolicy:
    issuer = issuer_register(organization=org, url=local_issuer.url, outbound=outbound)
    return AuthPolicy.objects.get(issuer=issuer)


@pytest.fixture
def github_policy(org: Organization, outbound: Outbound) -> AuthPolicy:
    issuer = issuer_register(
        organization=org,
        url=GITHUB,
        name="GitHub Actions",
        jwks={"keys": [SigningKey.generate("RS256").public_jwk()]},
        outbound=outbound,
    )
    return AuthPolicy.objects.get(issuer=issuer)


def member(org: Organization, username: str, role: str) -> Client:
    MembershipFactory(organization=org, user=UserFactory(username=username), role=role)
    client = Client()
    assert client.login(username=username, password=PASSWORD)
    return client


@pytest.fixture
def admin(org: Organization) -> Client:
    return member(org, "alice", Role.ADMIN)


@pytest.fixture
def auditor(org: Organization) -> Client:
    return member(org, "audrey", Role.AUDITOR)


def url(name: str, policy: AuthPolicy, **kwargs: Any) -> str:
    return reverse(
        f"policies:{name}",
        kwargs={"org": policy.organization.login, "issuer_id": policy.issuer_id, **kwargs},
    )


def reloaded(policy: AuthPolicy) -> AuthPolicy:
    return AuthPolicy.objects.get(pk=policy.pk)


def staged(policy: AuthPolicy) -> list[Any]:
    """What the editor shows and edits: the open draft, or the live definitions."""
    return working_copy(reloaded(policy)).definitions


def revision(policy: AuthPolicy) -> int:
    return working_copy(reloaded(policy)).revision


def publish(client: Client, policy: AuthPolicy, **extra: str) -> Any:
    return client.post(url("publish", policy), {"revision": str(revision(policy)), **extra})


# --- reading the HTML ---------------------------------------------------------------------------


def page(response: Any) -> Element:
    return parse_html(response.content.decode())


def _walk(node: Element | str) -> Iterator[Element]:
    if isinstance(node, Element):
        yield node
        for child in node.children:
            yield from _walk(child)


def _matches(element: Element, tag: str, attrs: dict[str, str]) -> bool:
    if element.name != tag:
        return False
    have = dict(element.attributes)
    for name, wanted in attrs.items():
        value = have.get(name)
        if value is None:
            return False
        if name == "class" and wanted not in str(value).split():
            return False
        if name != "class" and value != wanted:
            return False
    return True


def find_all(root: Element, tag: str, **attrs: str) -> list[Element]:
    """Elements by tag and attributes (`class_` matches one of the classes)."""
    wanted = {name.rstrip("_"): value for name, value in attrs.items()}
    return [e for e in _walk(root) if _matches(e, tag, wanted)]


def find(root: Element, tag: str, **attrs: str) -> Element:
    found = find_all(root, tag, **attrs)
    assert len(found) == 1, (tag, attrs, len(found))
    return found[0]


def containing(root: Element, tag: str, test: Callable[[Element], bool], **attrs: str) -> Element:
    """The innermost `tag` element that has a descendant passing `test`."""
    found = [e for e in find_all(root, tag, **attrs) if any(test(d) for d in _walk(e))]
    assert found, (tag, attrs)
    return found[-1]


def text(element: Element | str) -> str:
    if isinstance(element, str):
        return element
    return " ".join(text(child) for child in element.children)


def input_named(name: str) -> Callable[[Element], bool]:
    return lambda e: e.name in ("input", "textarea", "select") and ("name", name) in e.attributes


def cards(root: Element) -> list[str]:
    """The text of each definition card, in order."""
    return [text(li) for li in find_all(root, "li", class_="definition")]


def definition_data(
    revision: int,
    *,
    decision: str = "allow",
    token_type: str = "organization",
    permissions: tuple[str, ...] = ("admin",),
    rules: tuple[tuple[str, str], ...] = (),
    **extra: Any,
) -> dict[str, Any]:
    """What the browser sends from the add or edit form, rule rows included (plus empty ones)."""
    data: dict[str, Any] = {
        "revision": str(revision),
        "decision": decision,
        "token_type": token_type,
        "permissions": list(permissions),
        "rule_rows": str(len(rules) + 3),
        "note": "",
        **extra,
    }
    for n, (claim, patterns) in enumerate(rules):
        data[f"rule-{n}-claim"] = claim
        data[f"rule-{n}-patterns"] = patterns
    for n in range(len(rules), len(rules) + 3):
        data[f"rule-{n}-claim"] = ""
        data[f"rule-{n}-patterns"] = ""
    return data


MAIN_RULES = (("sub", "repo:acme/infra:ref:refs/heads/main"), ("repository_owner_id", "88310"))
PR_RULES = (("event_name", "pull_request\npull_request_target"),)


# --- the editor ---------------------------------------------------------------------------------


def test_empty_state_offers_the_github_example_without_saving_it(admin, github_policy) -> None:
    response = admin.get(url("editor", github_policy))
    assert response.status_code == 200
    root = page(response)
    empty = text(find(root, "div", class_="empty-state"))
    assert "This issuer denies every exchange until you add an allow." in empty
    assert "GitHub Actions issuer" in empty
    assert "Load the GitHub Actions example" in empty

    loaded = admin.get(url("editor", github_policy), {"example": "github-actions"})
    root = page(loaded)
    draft = json.loads(text(find(root, "textarea", name="definitions")))
    assert [d["decision"] for d in draft] == ["allow", "deny"]
    assert draft[0]["rules"]["sub"] == "repo:<OWNER>/<REPOSITORY>:ref:refs/heads/main"
    assert draft[1]["rules"]["event_name"] == ["pull_request", "pull_request_target"]
    assert "is loaded below as a draft: it is not saved" in text(root)
    assert reloaded(github_policy).version == 1

    # Saving it unedited is refused: the placeholders must be filled in first.
    refused = admin.post(
        url("replace", github_policy), {"revision": "0", "definitions": json.dumps(draft)}
    )
    assert refused.status_code == 400
    assert "replace the placeholder &lt;OWNER&gt; first" in refused.content.decode()
    assert reloaded(github_policy).version == 1

    filled = json.dumps(draft).replace("<OWNER>", "acme").replace("<REPOSITORY>", "infra")
    filled = filled.replace("<OWNER_ID>", "88310").replace("<REPOSITORY_ID>", "704117")
    saved = admin.post(url("replace", github_policy), {"revision": "0", "definitions": filled})
    assert saved.status_code == 302
    assert staged(github_policy) == json.loads(filled)
    assert publish(admin, github_policy).status_code == 302
    assert reloaded(github_policy).definitions == json.loads(filled)
    root = page(admin.get(url("editor", github_policy)))
    assert not find_all(root, "div", class_="empty-state")
    # The filled-in example is clean: pinned, and no pull request can get an admin token.
    assert not find_all(root, "li", class_="lint-warning")


def test_no_example_for_an_unknown_issuer(admin, policy) -> None:
    content = admin.get(url("editor", policy)).content.decode()
    assert "This issuer denies every exchange until you add an allow." in content
    assert "example" not in content.lower().split("denies every exchange")[1].split("</div>")[0]


def test_add_an_allow_and_a_deny_without_javascript(admin, policy) -> None:
    response = admin.post(url("add", policy), definition_data(0, rules=MAIN_RULES))
    assert response.status_code == 302
    assert response["Location"].endswith("#definition-1")
    # Staged, not live: the allow without its deny never reaches an exchange.
    assert reloaded(policy).version == 1 and reloaded(policy).definitions == []
    response = admin.post(
        url("add", policy), definition_data(1, decision="deny", rules=PR_RULES), follow=True
    )
    assert "Definition 2 added. Staged in the draft" in response.content.decode()
    assert reloaded(policy).version == 1
    response = publish(admin, policy)
    assert response.status_code == 302
    response = admin.get(response["Location"])
    assert "Draft published as version 2." in response.content.decode()
    saved = reloaded(policy)
    assert saved.version == 2
    assert saved.definitions == [ALLOW_MAIN, DENY_PR]

    root = page(response)
    shown = cards(root)
    assert len(shown) == 2
    assert (
        "#1" in shown[0]
        and "Allow" in shown[0]
        and "repo:acme/infra:ref:refs/heads/main" in shown[0]
    )
    assert "#2" in shown[1] and "Deny" in shown[1] and "pull_request_target" in shown[1]
    assert "Live: version 2" in text(find(root, "section", class_="policy-summary"))
    notes = [v.note for v in AuthPolicyVersion.objects.filter(policy=policy).order_by("version")]
    assert notes == [
        "created with the issuer",
        "published draft: added definition 1; added definition 2",
    ]
    author = AuthPolicyVersion.objects.get(policy=policy, version=2).created_by
    assert author is not None and author.username == "alice"


def test_team_token_definition(admin, org, policy) -> None:
    from tests.factories import TeamFactory

    TeamFactory(organization=org, name="platform")
    data = definition_data(
        0, token_type="team", permissions=(), team_name="platform", rules=MAIN_RULES
    )
    assert admin.post(url("add", policy), data).status_code == 302
    assert staged(policy) == [
        {
            "decision": "allow",
            "tokenType": "team",
            "teamName": "platform",
            "rules": ALLOW_MAIN["rules"],
        }
    ]
    shown = cards(page(admin.get(url("editor", policy))))
    assert "teamName" in shown[0] and "platform" in shown[0]


def test_edit_shows_the_definition_in_the_form_and_saves_it(admin, policy) -> None:
    policy_update(policy=policy, definitions=[ALLOW_MAIN, DENY_PR])
    form = page(admin.get(url("edit", policy, index=0)))
    edit = find(form, "form", action=url("edit", policy, index=0))
    assert ("value", "sub") in find(edit, "input", name="rule-0-claim").attributes
    assert text(find(edit, "textarea", name="rule-0-patterns")) == (
        "repo:acme/infra:ref:refs/heads/main"
    )
    assert ("value", "0") in find(edit, "input", name="revision").attributes
    # Three empty rows after the two rules, to add more without JavaScript.
    assert len(find_all(edit, "tr", class_="rule-row")) == 5

    rules = (
        ("sub", "repo:acme/infra:ref:refs/heads/main\nrepo:acme/infra:ref:refs/heads/release"),
        ("repository_owner_id", "88310"),
    )
    data = definition_data(0, permissions=("standard",), rules=rules, note="release too")
    response = admin.post(url("edit", policy, index=0), data)
    assert response.status_code == 302
    assert publish(admin, policy).status_code == 302
    saved = reloaded(policy)
    assert saved.version == 3
    assert saved.definitions[0] == {
        "decision": "allow",
        "tokenType": "organization",
        "authorizedPermissions": ["standard"],
        "rules": {
            "sub": [
                "repo:acme/infra:ref:refs/heads/main",
                "repo:acme/infra:ref:refs/heads/release",
            ],
            "repository_owner_id": "88310",
        },
    }
    assert saved.definitions[1] == DENY_PR
    assert AuthPolicyVersion.objects.get(policy=policy, version=3).note == (
        "published draft: edited definition 1: release too"
    )


def test_move_up_and_down_change_the_order(admin, policy) -> None:
    third = {**ALLOW_MAIN, "rules": {"sub": "repo:acme/app:ref:refs/heads/main"}}
    policy_update(policy=policy, definitions=[ALLOW_MAIN, DENY_PR, third])
    root = page(admin.get(url("editor", policy)))
    first, middle, last = find_all(root, "li", class_="definition")
    assert "Move up" not in text(first) and "Move down" in text(first)
    assert "Move up" in text(middle) and "Move down" in text(middle)
    assert "Move up" in text(last) and "Move down" not in text(last)

    response = admin.post(url("move", policy, index=2), {"revision": "0", "direction": "up"})
    assert response.status_code == 302 and response["Location"].endswith("#definition-2")
    assert staged(policy) == [ALLOW_MAIN, third, DENY_PR]
    response = admin.post(
        url("move", policy, index=0), {"revision": "1", "direction": "down"}, follow=True
    )
    assert staged(policy) == [third, ALLOW_MAIN, DENY_PR]
    assert reloaded(policy).version == 2  # both moves wait in the draft
    shown = cards(page(response))
    assert "repo:acme/app" in shown[0] and "88310" in shown[1] and "Deny" in shown[2]
    # The last definition cannot move down.
    assert (
        admin.post(url("move", policy, index=2), {"revision": "2", "direction": "down"}).status_code
        == 404
    )


def test_delete_a_definition(admin, policy) -> None:
    policy_update(policy=policy, definitions=[ALLOW_MAIN, DENY_PR])
    response = admin.post(url("delete", policy, index=0), {"revision": "0"}, follow=True)
    content = response.content.decode()
    assert "Definition 1 deleted." in content and "Staged in the draft" in content
    assert "/orgs/acme/tokens/revoke/?policy=" in content
    assert "version=2&amp;definition=0" in content
    assert staged(policy) == [DENY_PR] and reloaded(policy).definitions == [ALLOW_MAIN, DENY_PR]
    assert len(cards(page(response))) == 1
    admin.post(url("delete", policy, index=0), {"revision": "1"})
    root = page(admin.get(url("editor", policy)))
    assert "denies every exchange until you add an allow" in text(root)


def test_invalid_input_is_shown_next_to_the_field_kept_and_not_saved(admin, policy) -> None:
    data = definition_data(
        0,
        token_type="team",
        permissions=(),
        team_name="ghost",
        rules=(("sub", "repo:acme/\\x"), ("aud", "")),
    )
    response = admin.post(url("add", policy), data)
    assert response.status_code == 400
    assert reloaded(policy).version == 1
    assert AuthPolicyVersion.objects.filter(policy=policy).count() == 1
    root = page(response)
    form = find(root, "form", action=url("add", policy))
    assert "Nothing was saved." in text(form)
    assert ("value", "ghost") in find(form, "input", name="team_name").attributes
    sub_row = containing(form, "tr", input_named("rule-0-claim"), class_="rule-row")
    assert "unknown escape" in text(sub_row)
    assert text(find(sub_row, "textarea")) == "repo:acme/\\x"
    # A claim without patterns is an incomplete row, said on that row.
    aud_row = containing(form, "tr", input_named("rule-1-claim"), class_="rule-row")
    assert "Give at least one pattern" in text(aud_row)
    assert ("value", "aud") in find(aud_row, "input").attributes

    # With the rules fixed, the team that does not exist is named next to its field.
    data = definition_data(
        0, token_type="team", permissions=(), team_name="ghost", rules=MAIN_RULES
    )
    response = admin.post(url("add", policy), data)
    assert response.status_code == 400
    form = find(page(response), "form", action=url("add", policy))
    team = containing(form, "div", input_named("team_name"), class_="field")
    assert "has-error" in str(dict(team.attributes)["class"])
    assert "no team named 'ghost' in organization acme" in text(team)
    assert ("value", "ghost") in find(team, "input").attributes
    assert reloaded(policy).version == 1


def test_service_errors_reach_the_right_field(admin, policy) -> None:
    data = definition_data(0, permissions=(), rules=MAIN_RULES)
    root = page(admin.post(url("add", policy), data))
    form = find(root, "form", action=url("add", policy))
    permissions = containing(form, "fieldset", input_named("permissions"), class_="field")
    assert 'required when tokenType is "organization"' in text(permissions)
    assert reloaded(policy).version == 1


def test_raw_json_is_validated_like_the_forms(admin, policy) -> None:
    response = admin.post(url("replace", policy), {"revision": "0", "definitions": "[{"})
    assert response.status_code == 400
    assert "This is not valid JSON" in response.content.decode()
    bad = [{**ALLOW_MAIN, "colour": "red"}]
    response = admin.post(url("replace", policy), {"revision": "0", "definitions": json.dumps(bad)})
    assert response.status_code == 400
    field = containing(page(response), "div", input_named("definitions"), class_="field")
    assert "policies[0].colour: unknown field" in text(field)
    assert "colour" in text(find(field, "textarea"))  # the input is kept
    assert reloaded(policy).version == 1
    body = json.dumps({"policies": [DENY_PR, ALLOW_MAIN]})  # the API's body works too
    assert (
        admin.post(url("replace", policy), {"revision": "0", "definitions": body}).status_code
        == 302
    )
    assert staged(policy) == [DENY_PR, ALLOW_MAIN]


def test_a_stale_page_is_explained_and_nothing_is_overwritten(admin, policy) -> None:
    admin.get(url("editor", policy))  # the admin's page shows revision 0 (no draft)
    draft_stage(policy=policy, definitions=[DENY_PR], expected_revision=0, note="someone else")
    response = admin.post(url("add", policy), definition_data(0, rules=MAIN_RULES))
    assert response.status_code == 409
    root = page(response)
    conflict = text(find(root, "div", class_="conflict"))
    assert "Your change was not applied: someone else changed the draft" in conflict
    assert "Your page showed draft revision 0; it is now at revision 1" in conflict
    assert staged(policy) == [DENY_PR]
    # The draft now is shown, and the admin's input is kept, ready for revision 1.
    assert "Deny" in cards(root)[0]
    form = find(root, "form", action=url("add", policy))
    assert ("value", "1") in find(form, "input", name="revision").attributes
    assert text(find(form, "textarea", name="rule-0-patterns")) == MAIN_RULES[0][1]
    # Submitting again applies it to the draft as it is now.
    assert admin.post(url("add", policy), definition_data(1, rules=MAIN_RULES)).status_code == 302
    assert staged(policy) == [DENY_PR, ALLOW_MAIN]

    # An edit from a stale page shows the definition as it is now, next to the kept input.
    stale_edit = admin.post(
        url("edit", policy, index=1), definition_data(1, rules=(("sub", "repo:acme/x:*"),))
    )
    assert stale_edit.status_code == 409
    item = find(page(stale_edit), "li", id="definition-2")
    assert "as it is now, in the draft" in text(item) and "88310" in text(item)
    assert text(find(item, "textarea", name="rule-0-patterns")) == "repo:acme/x:*"
    assert staged(policy) == [DENY_PR, ALLOW_MAIN]

    stale_delete = admin.post(url("delete", policy, index=0), {"revision": "1"})
    assert stale_delete.status_code == 409
    assert "it is now at revision 2" in text(find(page(stale_delete), "div", class_="conflict"))
    assert staged(policy) == [DENY_PR, ALLOW_MAIN]
    stale_raw = admin.post(url("replace", policy), {"revision": "0", "definitions": "[]"})
    assert stale_raw.status_code == 409 and staged(policy) == [DENY_PR, ALLOW_MAIN]
    assert reloaded(policy).version == 1 and reloaded(policy).definitions == []


def test_lint_warning_is_shown_next_to_the_rule(admin, policy) -> None:
    admin.post(url("add", policy), definition_data(0, rules=(("sub", "*"),)))
    assert staged(policy)  # warnings never block staging
    root = page(admin.get(url("editor", policy)))
    card = find(root, "li", id="definition-1")
    row = find(card, "tr", class_="has-warning")
    assert "sub" in text(row)
    assert 'sub pattern "*" can match any repository or project' in text(row)
    assert "1 warning" in text(find(root, "section", class_="policy-summary"))
    added = text(find(root, "ul", class_="draft-warnings"))
    assert "can match any repository or project" in added


# --- simulator and replay -----------------------------------------------------------------------


def simulate_data(**overrides: Any) -> dict[str, Any]:
    data = {
        "source": "sample",
        "sample": "github-actions",
        "claims": "",
        "token": "",
        "token_type": "organization",
        "scope": "admin",
        "policy_source": "current",
        "draft": "",
    }
    data.update(overrides)
    return data


def test_simulator_with_sample_claim_sets(admin, policy) -> None:
    policy_update(policy=policy, definitions=[ALLOW_MAIN, DENY_PR])
    form = page(admin.get(url("simulate", policy)))
    options = [dict(o.attributes)["value"] for o in find_all(form, "option")]
    assert {"github-actions", "github-actions-pull-request", "gitlab-ci", "circleci"} <= set(
        options
    )

    response = admin.post(url("simulate", policy), simulate_data())
    assert response.status_code == 200
    result = find(page(response), "section", class_="sim-result")
    assert "Allowed" in text(find(result, "p", class_="verdict"))
    assert "definition 1" in text(find(result, "p", class_="why"))
    assert "admin" in text(result) and "7200 seconds" in text(result)
    deciding = find(result, "tbody", class_="deciding")
    sub_row = containing(deciding, "tr", lambda e: text(e) == "sub", class_="matched")
    assert "repo:acme/infra:ref:refs/heads/main" in text(sub_row)
    deny = find_all(result, "tbody", class_="trace-definition")[1]
    assert "does not apply: rules not matched" in text(deny)
    assert "failed" in text(find(deny, "tr", class_="failed"))

    pr = admin.post(url("simulate", policy), simulate_data(sample="github-actions-pull-request"))
    result = find(page(pr), "section", class_="sim-result")
    assert "Denied" in text(find(result, "p", class_="verdict"))
    assert "A deny applies, and a deny always wins: definition 2." in text(
        find(result, "p", class_="why")
    )
    assert "nothing: the exchange would be refused" in text(result)


def test_simulator_with_pasted_claims_and_a_draft(auditor, policy) -> None:
    claims = json.dumps(sample_claims("github-actions"))
    draft = json.dumps([DENY_PR, ALLOW_MAIN])
    response = auditor.post(
        url("simulate", policy),
        simulate_data(source="claims", claims=claims, policy_source="draft", draft=draft),
    )
    result = find(page(response), "section", class_="sim-result")
    assert "Allowed" in text(result) and "definition 2" in text(result)
    assert "the draft (not saved)" in text(result)
    bad = auditor.post(
        url("simulate", policy),
        simulate_data(source="claims", claims="[1]", policy_source="draft", draft="[{}]"),
    )
    assert bad.status_code == 400
    content = bad.content.decode()
    assert "The claims must be a JSON object" in content
    assert not find_all(page(bad), "section", class_="sim-result")


def test_simulator_with_a_pasted_token_checks_its_signature(admin, policy, local_issuer) -> None:
    policy_update(policy=policy, definitions=[ALLOW_MAIN])
    token = local_issuer.mint(audience=AUDIENCE)
    response = admin.post(
        url("simulate", policy), simulate_data(source="token", token=token, check_signature="on")
    )
    result = find(page(response), "section", class_="sim-result")
    assert "valid: checked with this issuer's keys" in text(result)
    assert "Allowed" in text(find(result, "p", class_="verdict"))
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    response = admin.post(
        url("simulate", policy),
        simulate_data(source="token", token=tampered, check_signature="on"),
    )
    assert "INVALID" in text(find(page(response), "section", class_="sim-result"))
    garbage = admin.post(url("simulate", policy), simulate_data(source="token", token="not-a-jwt"))
    assert garbage.status_code == 400 and "cannot be decoded" in garbage.content.decode()


def test_replay_shows_a_changed_outcome(
    admin, org, policy, local_issuer, allow_local_issuers
) -> None:
    policy_update(policy=policy, definitions=[ALLOW_MAIN, DENY_PR])
    exchanges = Client()
    main = local_issuer.mint(audience=AUDIENCE)
    pr = local_issuer.mint({"event_name": "pull_request"}, audience=AUDIENCE)
    assert (
        exchanges.post(
            "/api/oauth/token", exchange_body(main, scope="admin"), content_type="application/json"
        ).status_code
        == 200
    )
    assert (
        exchanges.post(
            "/api/oauth/token", exchange_body(pr, scope="admin"), content_type="application/json"
        ).status_code
        == 400
    )

    form = page(admin.get(url("replay", policy)))
    assert json.loads(text(find(form, "textarea", name="draft"))) == [ALLOW_MAIN, DENY_PR]

    unchanged = admin.post(url("replay", policy), {"draft": json.dumps([ALLOW_MAIN, DENY_PR])})
    assert "No outcome would change: all 2 replayed exchanges" in text(page(unchanged))

    response = admin.post(url("replay", policy), {"draft": json.dumps([DENY_PR])})
    root = page(response)
    assert "1 of 2 replayed exchanges would get a different decision" in text(root)
    rows = find_all(find(root, "table", class_="replay"), "tr")[1:]
    assert len(rows) == 1
    row = text(rows[0])
    assert "repo:acme/infra:ref:refs/heads/main" in row
    assert re.search(r"Allow .*allowed.*Deny .*no_matching_policy", row)
    assert reloaded(policy).definitions == [ALLOW_MAIN, DENY_PR]  # replay saves nothing

    invalid = admin.post(url("replay", policy), {"draft": json.dumps([{"decision": "maybe"}])})
    assert invalid.status_code == 400 and "policies[0].decision" in invalid.content.decode()


def test_replay_with_no_exchanges_says_so(admin, policy) -> None:
    response = admin.post(url("replay", policy), {"draft": "[]"})
    assert "no exchanges that reached policy evaluation yet" in text(page(response))


# --- version history ----------------------------------------------------------------------------


def test_history_shows_diffs_and_rollback_saves_a_new_version(admin, policy) -> None:
    admin.post(url("add", policy), definition_data(0, rules=MAIN_RULES))
    publish(admin, policy)
    admin.post(url("add", policy), definition_data(2, decision="deny", rules=PR_RULES))
    publish(admin, policy)
    root = page(admin.get(url("versions", policy)))
    v3 = find(root, "section", id="version-3")
    assert "current" in text(find(v3, "h2"))
    assert "by alice" in text(v3) and "added definition 2" in text(v3)
    added = [text(tr) for tr in find_all(v3, "tr", class_="diff-added")]
    assert any('"decision": "deny"' in line for line in added)
    assert not any('"decision": "allow"' in line for line in added)  # unchanged context
    assert not find_all(v3, "form")  # the current version has nothing to roll back to
    v2 = find(root, "section", id="version-2")
    assert find_all(v2, "tr", class_="diff-removed")  # "[]" became a list of one definition
    assert "Roll back to this version" in text(find(v2, "form"))
    assert "The first version" in text(find(root, "section", id="version-1"))

    response = admin.post(url("rollback", policy, version=2), {"version": "3"}, follow=True)
    assert "Rolled back to version 2: live as version 4." in response.content.decode()
    saved = reloaded(policy)
    assert saved.version == 4 and saved.definitions == [ALLOW_MAIN]
    assert AuthPolicyVersion.objects.get(policy=policy, version=4).note == "rollback to version 2"
    v4 = find(page(admin.get(url("versions", policy))), "section", id="version-4")
    assert any('"decision": "deny"' in text(tr) for tr in find_all(v4, "tr", class_="diff-removed"))

    # A rollback from a stale history page is refused and explained.
    stale = admin.post(url("rollback", policy, version=1), {"version": "3"}, follow=True)
    assert "Nothing was rolled back" in stale.content.decode()
    assert reloaded(policy).version == 4
    assert admin.post(url("rollback", policy, version=99), {"version": "4"}).status_code == 404


# --- roles, tenancy, CSP ------------------------------------------------------------------------


def test_auditor_sees_everything_read_only(auditor, policy) -> None:
    policy_update(policy=policy, definitions=[ALLOW_MAIN, DENY_PR])
    response = auditor.get(url("editor", policy))
    assert response.status_code == 200
    root = page(response)
    assert len(cards(root)) == 2
    assert "read-only access" in text(root)
    post_forms = [
        dict(f.attributes).get("action", "") for f in find_all(root, "form", method="post")
    ]
    assert post_forms == [reverse("logout"), url("simulate", policy) + "#result"]
    assert "Edit" not in " ".join(cards(root)) and "Add a definition" not in text(root)
    versions = page(auditor.get(url("versions", policy)))
    assert find_all(versions, "section", class_="version")
    assert "Roll back" not in text(versions)
    assert auditor.post(url("simulate", policy), simulate_data()).status_code == 200
    assert auditor.post(url("replay", policy), {"draft": "[]"}).status_code == 200

    for name, kwargs, data in [
        ("add", {}, definition_data(2, rules=MAIN_RULES)),
        ("edit", {"index": 0}, definition_data(2, rules=MAIN_RULES)),
        ("delete", {"index": 0}, {"version": "2"}),
        ("move", {"index": 0}, {"version": "2", "direction": "down"}),
        ("replace", {}, {"version": "2", "definitions": "[]"}),
        ("rollback", {"version": 1}, {"version": "2"}),
    ]:
        assert auditor.post(url(name, policy, **kwargs), data).status_code == 403, name
    assert auditor.get(url("edit", policy, index=0)).status_code == 403
    assert reloaded(policy).version == 2


def test_other_organizations_and_outsiders_get_404(org, policy) -> None:
    other = OrganizationFactory(login="other")
    outsider = member(other, "bob", Role.ADMIN)
    plain = member(org, "mallory", Role.MEMBER)
    for name in ("editor", "simulate", "replay", "versions"):
        assert outsider.get(url(name, policy)).status_code == 404, name
        # The other org's own URL with this org's issuer id is no way in either.
        path = reverse(f"policies:{name}", kwargs={"org": "other", "issuer_id": policy.issuer_id})
        assert outsider.get(path).status_code == 404, name
        assert plain.get(url(name, policy)).status_code == 403, name
    assert (
        outsider.post(url("add", policy), definition_data(1, rules=MAIN_RULES)).status_code == 404
    )
    base = reverse("policies:editor", kwargs={"org": "acme", "issuer_id": policy.issuer_id})
    admin = member(org, "alice", Role.ADMIN)
    assert admin.get(base.replace(str(policy.issuer_id), "not-a-uuid")).status_code == 404
    unknown = reverse(
        "policies:editor",
        kwargs={"org": "acme", "issuer_id": "00000000-0000-0000-0000-000000000000"},
    )
    assert admin.get(unknown).status_code == 404
    assert reloaded(policy).version == 1


def test_anonymous_visitors_are_sent_to_sign_in(policy) -> None:
    response = Client().get(url("editor", policy))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


LONE_SURROGATE = json.dumps([{**ALLOW_MAIN, "rules": {"sub": "\ud800"}}])


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("replace", {"version": "1", "definitions": LONE_SURROGATE}),
        ("replace", {"version": "1", "definitions": "[" * 100_000}),
        ("simulate", simulate_data(source="claims", claims='{"sub": "\\ud800"}')),
        ("simulate", simulate_data(policy_source="draft", draft=LONE_SURROGATE)),
        ("simulate", simulate_data(source="claims", claims="[" * 100_000)),
        ("replay", {"draft": LONE_SURROGATE}),
    ],
)
def test_unusable_json_is_refused_not_500(admin, policy, name, data) -> None:
    response = admin.post(url(name, policy), data)
    assert response.status_code == 400
    content = response.content.decode()
    assert "unpaired surrogate" in content or "nested too deeply" in content
    assert reloaded(policy).version == 1


def test_a_token_with_unprintable_claims_is_refused_not_500(admin, policy, local_issuer) -> None:
    token = local_issuer.mint({"sub": "\ud800"}, audience=AUDIENCE)
    response = admin.post(url("simulate", policy), simulate_data(source="token", token=token))
    assert response.status_code == 400
    assert "cannot be decoded" in response.content.decode()


def test_a_token_nested_too_deeply_is_refused_not_500(admin, policy) -> None:
    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    payload = b'{"sub":' + b"[" * 5000 + b"]" * 5000 + b"}"
    token = ".".join([b64(b'{"alg":"RS256"}'), b64(payload), "c2ln"])
    response = admin.post(url("simulate", policy), simulate_data(source="token", token=token))
    assert response.status_code == 400
    assert "cannot be decoded" in response.content.decode()


def test_unprintable_definitions_saved_through_the_api_do_not_break_the_pages(
    admin, policy
) -> None:
    bad = [{**ALLOW_MAIN, "rules": {"sub": "\ud800"}}]
    with pytest.raises(PolicyInvalid):
        policy_update(policy=policy, definitions=bad)
    if connection.vendor != "sqlite":
        return  # PostgreSQL's jsonb cannot hold such text at all: no old rows to render
    # Rows written before validation refused such text must still render.
    AuthPolicy.objects.filter(pk=policy.pk).update(definitions=bad, version=2)
    AuthPolicyVersion.objects.create(
        policy=policy, version=2, definitions=bad, created=timezone.now()
    )
    response = admin.get(url("editor", policy))
    assert response.status_code == 200
    assert "unpaired surrogate escape" in text(page(response))
    assert "can be shown only in the JSON form below" in text(page(response))
    assert "denies every exchange" not in text(page(response))
    assert "\\ud800" in text(find(page(response), "textarea", name="definitions"))
    assert admin.get(url("versions", policy)).status_code == 200


def test_the_static_files_the_pages_load_exist() -> None:
    from django.contrib.staticfiles import finders

    for name in ("trustportal/policies.css", "trustportal/policy-editor.js"):
        assert finders.find(name), name


def test_pages_obey_the_strict_content_security_policy(admin, policy) -> None:
    policy_update(policy=policy, definitions=[ALLOW_MAIN, {**ALLOW_MAIN, "rules": {"sub": "*"}}])
    responses = [
        admin.get(url("editor", policy)),
        admin.get(url("edit", policy, index=1)),
        admin.post(url("simulate", policy), simulate_data()),
        admin.post(url("replay", policy), {"draft": "[]"}),
        admin.get(url("versions", policy)),
        admin.post(url("add", policy), definition_data(2, rules=(("sub", "\\"),))),
    ]
    for response in responses:
        assert "script-src 'self'" in response["Content-Security-Policy"]
        content = response.content.decode()
        assert not re.search(r"<script(?![^>]*\bsrc=)", content)
        assert not re.search(r"\sstyle=", content)
        assert not re.search(r"\son[a-z]+=", content)


# --- examples, samples and paths (no database needed) -------------------------------------------


@pytest.mark.parametrize(
    ("issuer_url", "provider"),
    [
        (GITHUB, "GitHub Actions"),
        (GITHUB + "/acme-enterprise", "GitHub Actions"),
        ("https://gitlab.com", "GitLab CI/CD"),
        ("https://oidc.circleci.com/org/4b3e6c34-7d1a-4c0a-9a4e-2f3b5c6d7e8f", "CircleCI"),
        ("https://gitlab.example.com", None),
        ("https://oidc.circleci.com/org/", None),
        ("http://token.actions.githubusercontent.com", None),
    ],
)
def test_example_for(issuer_url: str, provider: str | None) -> None:
    example = example_for(issuer_url)
    assert (example.provider if example else None) == provider


def test_examples_are_valid_once_filled_in() -> None:
    from policies.validation import validate_definitions

    for issuer_url in (GITHUB, "https://gitlab.com", "https://oidc.circleci.com/org/abc-1"):
        example = example_for(issuer_url)
        assert example is not None
        assert validate_definitions(example.definitions) == []
        errors = placeholder_errors(example.definitions)
        assert errors and {e.path.split(".")[0] for e in errors} == {"policies[0]"}
        filled = json.loads(re.sub(r"<[A-Z_]+>", "x", json.dumps(example.definitions)))
        assert placeholder_errors(filled) == []
    circleci = example_for("https://oidc.circleci.com/org/abc-1")
    assert circleci is not None
    assert circleci.definitions[0]["rules"]["sub"].startswith("org/abc-1/project/")


def test_samples_are_packaged_with_the_app() -> None:
    names = [s.name for s in samples()]
    assert names[0] == "github-actions" and "kubernetes-eks" in names
    claims = sample_claims("circleci")
    assert claims is not None and claims["oidc.circleci.com/ssh-rerun"] is False
    claims["sub"] = "changed"
    assert (sample_claims("circleci") or {})["sub"] != "changed"  # callers get copies
    assert sample_claims("nope") is None


@pytest.mark.parametrize(
    ("path", "index", "name", "claim"),
    [
        ("policies", None, None, None),
        ("policies[2]", 2, None, None),
        ("policies[0].teamName", 0, "teamName", None),
        ("policies[1].authorizedPermissions[0]", 1, "authorizedPermissions", None),
        ('policies[3].rules["sub"]', 3, "rules", "sub"),
        (
            'policies[3].rules["\\"kubernetes.io\\".namespace"][1]',
            3,
            "rules",
            '"kubernetes.io".namespace',
        ),
    ],
)
def test_locate(path: str, index: int | None, name: str | None, claim: str | None) -> None:
    where = locate(path)
    assert (where.index, where.name, where.claim) == (index, name, claim)


def test_publish_asks_about_new_warnings_and_refuses_a_stale_draft(admin, policy) -> None:
    admin.post(url("add", policy), definition_data(0, rules=(("sub", "*"),)))
    asked = publish(admin, policy)
    assert asked.status_code == 409
    assert "Publishing adds" in text(find(page(asked), "section", class_="confirm-publish"))
    assert reloaded(policy).version == 1
    assert publish(admin, policy, confirm="on").status_code == 302
    assert reloaded(policy).version == 2

    admin.post(url("add", policy), definition_data(revision(policy), rules=MAIN_RULES))
    policy_update(policy=policy, definitions=[DENY_PR], note="API PATCH")  # live is now v3
    refused = admin.post(url("publish", policy), {"revision": str(revision(policy))}, follow=True)
    content = text(page(refused))
    assert "Not published: the draft was started from version 2" in content
    assert "Restart the draft from version 3" in content
    assert reloaded(policy).version == 3 and reloaded(policy).definitions == [DENY_PR]
    # The diff shown is against the live version the draft would replace.
    removed = [text(tr) for tr in find_all(page(refused), "tr", class_="diff-removed")]
    assert any("pull_request" in line for line in removed)

    assert (
        admin.post(url("discard", policy), {"revision": str(revision(policy))}).status_code == 302
    )
    assert not working_copy(reloaded(policy)).is_draft and reloaded(policy).version == 3
    assert publish(admin, policy).status_code == 302  # nothing to publish: said, not a 500
