"""The configuration audit log: recorded in the change's transaction, append-only, who and from
where, Pulumi's API shape with continuation, CSV and CEF exports, scoped to the organization."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from django.db import connection, transaction
from django.test import Client
from rest_framework.test import APIClient

from audit.context import Actor, acting_as
from audit.diff import SECRET, diff
from audit.formats import cef_line
from audit.models import AuditEvent
from audit.services import audit_record
from kernel.appendonly import AppendOnlyError
from tests.conftest import auth
from tests.factories import PASSWORD, MembershipFactory, OrganizationFactory, make_token
from trustportal.models import Organization, Role, User

pytestmark = pytest.mark.django_db


def record(org: Organization | None, event: str = "issuer-updated", **kwargs: Any) -> AuditEvent:
    return audit_record(event=event, description=f"{event} happened", organization=org, **kwargs)


def test_diff_keeps_changed_fields_and_never_secret_values() -> None:
    changes = diff(
        {"name": "a", "max": 3600, "secret": "s3cr3t", "client_secret": "x", "same": 1},
        {"name": "b", "max": 3600, "secret": "n3w", "client_secret": "y", "same": 1},
        secret_fields=frozenset({"secret"}),
    )
    assert changes == {
        "client_secret": [SECRET, SECRET],
        "name": ["a", "b"],
        "secret": [SECRET, SECRET],
    }


def test_a_failed_change_leaves_no_record(org: Organization) -> None:
    def change_that_fails() -> None:
        with transaction.atomic():
            record(org)
            raise RuntimeError("the change failed after recording")

    with pytest.raises(RuntimeError):
        change_that_fails()
    assert not AuditEvent.objects.exists()


def test_records_are_append_only(org: Organization) -> None:
    row = record(org)
    with pytest.raises(AppendOnlyError):
        row.save()
    with pytest.raises(AppendOnlyError):
        row.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=row.pk).update(event="x")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().delete()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the trigger is PostgreSQL's")
def test_postgresql_refuses_raw_updates_and_deletes(org: Organization) -> None:
    from django.db import DatabaseError

    row = record(org)
    for statement in (
        "UPDATE audit_auditevent SET event = 'x' WHERE id = %s",
        "DELETE FROM audit_auditevent WHERE id = %s",
    ):
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(statement, [row.pk])
    assert AuditEvent.objects.get(pk=row.pk).event == "issuer-updated"


def test_a_deleted_organization_keeps_its_records(org: Organization) -> None:
    row = record(org)
    Organization.objects.filter(pk=org.pk).delete()
    kept = AuditEvent.objects.get(pk=row.pk)
    assert kept.organization_login == "acme" and kept.organization_id == org.pk


def test_the_api_records_the_token_client_and_request(org: Organization, admin_token: str) -> None:
    client = auth(APIClient(), admin_token)
    created = client.post(
        "/api/orgs/acme/hooks",
        {"displayName": "x", "email": "ops@acme.example"},
        format="json",
        HTTP_USER_AGENT="ci-runner/1.0",
        HTTP_X_REQUEST_ID="req-audit-00001",
        REMOTE_ADDR="198.51.100.9",
    )
    assert created.status_code == 201
    row = AuditEvent.objects.get(event="webhook-created")
    assert row.actor_kind == "token"
    assert row.actor_token_name == "ci" and row.actor_token_id is not None
    assert row.actor_token_lineage == [row.actor_token_id]
    assert (row.client_ip, row.user_agent, row.request_id) == (
        "198.51.100.9",
        "ci-runner/1.0",
        "req-audit-00001",
    )
    assert row.changes["email"] == [None, "ops@acme.example"]


def test_a_page_records_the_signed_in_user(org: Organization) -> None:
    MembershipFactory(organization=org, role=Role.ADMIN, user__username="pat")
    browser = Client()
    assert browser.login(username="pat", password=PASSWORD)
    browser.post("/orgs/acme/notifications/threshold", {"denial_threshold": "9"})
    row = AuditEvent.objects.get(event="notification-settings-updated")
    assert (row.actor_kind, row.actor_username) == ("user", "pat")
    assert row.changes == {"denial_threshold": [50, 9]}


def test_tasks_act_as_the_system(org: Organization) -> None:
    row = record(org)
    assert row.actor_kind == "system" and row.actor_username == ""
    with acting_as(Actor(kind="user", user_id=7, username="ops")):
        assert record(org).actor_username == "ops"


def test_api_pages_newest_first_with_a_continuation_token(
    org: Organization, admin_token: str
) -> None:
    for i in range(5):
        record(org, event=f"e{i}")
    client = auth(APIClient(), admin_token)
    first = client.get("/api/orgs/acme/auditlogs?pageSize=2").json()
    assert [e["event"] for e in first["auditLogEvents"]] == ["e4", "e3"]
    assert set(first["auditLogEvents"][0]) >= {
        "timestamp",
        "sourceIP",
        "event",
        "description",
        "user",
        "tokenID",
        "tokenName",
    }
    second = client.get(
        f"/api/orgs/acme/auditlogs?pageSize=2&continuationToken={first['continuationToken']}"
    ).json()
    assert [e["event"] for e in second["auditLogEvents"]] == ["e2", "e1"]
    last = client.get(
        f"/api/orgs/acme/auditlogs?pageSize=2&continuationToken={second['continuationToken']}"
    ).json()
    # The oldest record is the creation of the admin token the client uses.
    assert [e["event"] for e in last["auditLogEvents"]] == ["e0", "admin-token-created"]
    assert last["continuationToken"] is None
    assert [
        e["event"]
        for e in client.get("/api/orgs/acme/auditlogs?eventFilter=e3").json()["auditLogEvents"]
    ] == ["e3"]
    assert client.get("/api/orgs/acme/auditlogs?startTime=1").json()["auditLogEvents"] == []
    for bad in (
        "pageSize=0",
        "pageSize=x",
        "startTime=-1",
        "continuationToken=%00",
        "userFilter=%00",
    ):
        assert client.get(f"/api/orgs/acme/auditlogs?{bad}").status_code == 400


def test_only_admins_and_auditors_read_it_and_other_orgs_never(org: Organization) -> None:
    record(org)
    other = OrganizationFactory(login="globex")
    record(other, event="globex-secret-change")
    auditor = make_token("organization", organization=org, permission="admin", name="a")
    standard = make_token("organization", organization=org, permission="standard", name="s")
    outsider = make_token("organization", organization=other, permission="admin", name="o")
    assert auth(APIClient(), auditor).get("/api/orgs/acme/auditlogs").status_code == 200
    assert auth(APIClient(), standard).get("/api/orgs/acme/auditlogs").status_code == 403
    assert auth(APIClient(), outsider).get("/api/orgs/acme/auditlogs").status_code == 404
    assert auth(APIClient(), outsider).get("/api/orgs/acme/auditlogs/export").status_code == 404
    events = auth(APIClient(), auditor).get("/api/orgs/acme/auditlogs").json()["auditLogEvents"]
    assert "globex-secret-change" not in [e["event"] for e in events]


def test_csv_export_streams_safe_cells(org: Organization, admin_token: str) -> None:
    record(org, event="issuer-updated", before={"name": "old"}, after={"name": "=HYPERLINK(1)"})
    response = auth(APIClient(), admin_token).get("/api/orgs/acme/auditlogs/export?format=csv")
    assert response.status_code == 200 and response.streaming
    text = b"".join(response.streaming_content).decode()  # type: ignore[attr-defined]
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows[0]["event"] == "issuer-updated"
    assert "=HYPERLINK" not in rows[0]["changes"].split('"')[0]  # JSON cell, not a formula
    assert not any(cell.startswith("=") for row in rows for cell in row.values())


def test_cef_lines_escape_what_cef_reserves(org: Organization) -> None:
    row = record(
        org,
        event="issuer-updated",
        before={"name": "a|b"},
        after={"name": "c=d\\e\nf"},
        actor=Actor(kind="user", username="eve|x", client_ip="203.0.113.5"),
    )
    line = cef_line(row)
    assert line.startswith(
        "CEF:0|TrustPortal|TrustPortal|1|issuer-updated|issuer-updated happened|6|"
    )
    assert line.count("\n") == 1 and line.endswith("\n")
    extension = line.split("|", 7)[7]
    assert "src=203.0.113.5" in extension and "suser=eve|x" in extension
    assert "\\=" in extension and "\\\\" in extension and "\\n" in extension


def test_cef_export(org: Organization, admin_token: str) -> None:
    record(org)
    response = auth(APIClient(), admin_token).get("/api/orgs/acme/auditlogs/export?format=cef")
    assert response.status_code == 200
    lines = b"".join(response.streaming_content).decode().splitlines()  # type: ignore[attr-defined]
    # The record, and the creation of the admin token the client uses.
    assert len(lines) == 2 and all(line.startswith("CEF:0|") for line in lines)
    assert (
        auth(APIClient(), admin_token).get("/api/orgs/acme/auditlogs/export?format=xml").status_code
        == 400
    )


def test_the_page_shows_changes_to_auditors(org: Organization) -> None:
    record(org, event="issuer-updated", before={"name": "old"}, after={"name": "new"})
    MembershipFactory(organization=org, role=Role.AUDITOR, user__username="aud")
    MembershipFactory(organization=org, role=Role.MEMBER, user__username="mem")
    browser = Client()
    assert browser.login(username="aud", password=PASSWORD)
    page = browser.get("/orgs/acme/audit/")
    assert page.status_code == 200
    assert "issuer-updated" in page.content.decode() and "new" in page.content.decode()
    assert (
        browser.get("/orgs/acme/audit/?event=nothing")
        .content.decode()
        .count("issuer-updated happened")
        == 0
    )
    browser.logout()
    assert browser.login(username="mem", password=PASSWORD)
    assert browser.get("/orgs/acme/audit/").status_code == 403


def test_people_changes_are_recorded(org: Organization) -> None:
    from trustportal import services as people

    created = people.member_create(organization=org, username="newbie", email="n@acme.example")
    people.member_role_change(membership=created.membership, role="auditor")
    team = people.team_create(organization=org, name="ops")
    people.team_member_add(team=team, user=created.membership.user)
    people.team_member_add(team=team, user=created.membership.user)  # no change, no record
    people.team_member_remove(team=team, user=created.membership.user)
    people.team_delete(team=team)
    events = list(
        AuditEvent.objects.filter(organization_id=org.pk)
        .order_by("pk")
        .values_list("event", flat=True)
    )
    assert events == [
        "member-created",
        "member-role-changed",
        "team-created",
        "team-member-added",
        "team-member-removed",
        "team-deleted",
    ]
    assert created.password not in str(list(AuditEvent.objects.values()))


def test_admin_form_changes_are_recorded_for_the_users_organizations(org: Organization) -> None:
    MembershipFactory(organization=org, role=Role.ADMIN, user__username="pat")
    MembershipFactory(organization=org, role=Role.MEMBER, user__username="sam")
    target = User.objects.get(username="sam")
    browser = Client()
    assert browser.login(username="pat", password=PASSWORD)
    url = f"/admin/trustportal/user/{target.pk}/change/"
    form = {"username": "sam", "email": "sam@acme.example", "is_active": "on"}
    response = browser.post(url, form)
    assert response.status_code == 302, response.content[:500]
    row = AuditEvent.objects.get(event="user-changed-in-admin")
    assert row.organization_id == org.pk and row.actor_username == "pat"
    assert row.changes == {"changed_fields": [None, ["Email address"]]}


def test_a_token_created_with_tokens_is_recorded_with_its_whole_lineage(
    org: Organization, admin_token: str
) -> None:
    from tokens.format import hash_token
    from tokens.models import AccessToken

    root = AccessToken.objects.get(token_hash=hash_token(admin_token))
    child = auth(APIClient(), admin_token).post(
        "/api/orgs/acme/tokens", {"name": "child", "admin": True, "expires": 0}, format="json"
    )
    assert child.status_code in (200, 201), child.content
    child_id = AccessToken.objects.get(name="child").pk
    grandchild = auth(APIClient(), child.json()["tokenValue"]).post(
        "/api/orgs/acme/hooks", {"displayName": "x", "email": "ops@acme.example"}, format="json"
    )
    assert grandchild.status_code == 201, grandchild.content
    row = AuditEvent.objects.get(event="webhook-created")
    assert row.actor_token_id == child_id
    assert row.actor_token_lineage == [child_id, root.pk]
