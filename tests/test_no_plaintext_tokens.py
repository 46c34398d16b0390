"""No plaintext access token is stored anywhere in the database."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from rest_framework.test import APIClient

from tests.factories import RunnerFactory, TeamFactory, UserFactory
from tokens.services import token_create
from trustportal.models import Organization


def database_text() -> str:
    """Every value of every row of every table, as text."""
    chunks: list[str] = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                chunks.extend(str(value) for value in row)
    return "\n".join(chunks)


@pytest.mark.django_db
def test_tokens_never_reach_the_database_in_plaintext() -> None:
    out = StringIO()
    call_command("bootstrap", "--org", "acme", "--admin", "alice", "--print-token", stdout=out)
    printed = out.getvalue().strip()
    org = Organization.objects.get(login="acme")
    plaintexts = [printed]
    plaintexts.append(token_create(token_type="organization", organization=org)[1])
    plaintexts.append(token_create(token_type="team", team=TeamFactory(organization=org))[1])
    plaintexts.append(token_create(token_type="runner", runner=RunnerFactory(organization=org))[1])
    plaintexts.append(token_create(token_type="personal", user=UserFactory())[1])
    client = APIClient()
    for token in plaintexts:  # use them too, so last_used and anything else gets written
        client.credentials(HTTP_AUTHORIZATION=f"token {token}")
        assert client.get("/api/user").status_code == 200
    dump = database_text()
    assert "acme" in dump  # the dump really contains the rows
    for token in plaintexts:
        assert token not in dump
        assert token[4:30] not in dump  # not even a large part of the secret
