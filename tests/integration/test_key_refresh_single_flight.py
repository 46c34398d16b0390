"""Unknown kids from two processes at once cause at most one key fetch per issuer per 60 s."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from policies.registration import issuer_register
from tests.factories import OrganizationFactory
from tests.integration.conftest import process_env

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]

WORKER = textwrap.dedent(
    """
    import sys, uuid, django
    django.setup()
    from issuers import services
    from issuers.errors import KeyLookupError
    from issuers.keys import get_verification_key
    from issuers.models import Issuer

    issuer = Issuer.objects.get(pk=sys.argv[1])
    outbound = services.default_outbound()
    def refresh(i):
        services.issuer_refresh_keys(issuer=i, trigger="on_demand", outbound=outbound)
    refused = 0
    for _ in range(100):
        try:
            get_verification_key(issuer, "kid-" + uuid.uuid4().hex, "RS256", refresh=refresh)
        except KeyLookupError:
            refused += 1
    print(refused)
    """
)


def test_two_processes_with_random_kids_fetch_once(local_issuer, outbound) -> None:
    org = OrganizationFactory(login="acme")
    issuer = issuer_register(organization=org, url=local_issuer.url, outbound=outbound)
    local_issuer.clear_log()
    env = process_env(
        DJANGO_SETTINGS_MODULE="trustportal.settings",
        TRUSTPORTAL_ALLOW_HTTP_ISSUERS="true",
        TRUSTPORTAL_ISSUER_ALLOWED_NETWORKS="127.0.0.0/8",
    )
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(issuer.pk)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [w.communicate(timeout=120)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0]
    assert [int(o.strip()) for o in outputs] == [100, 100]  # 200 unknown kids, all refused
    assert len(local_issuer.requests_to("/.well-known/jwks")) == 1
