"""Two admins demoting each other at the same moment leave the organization one admin.

The check "another admin remains" and the change must be one step: the organization row is
locked (`trustportal.services._lock_organization`), so the second request waits for the first
to commit and then sees that it is the last admin.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, transaction

from trustportal import services
from trustportal.models import Membership, Organization, Role, User

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_two_admins_demoting_each_other_at_once_leave_one_admin() -> None:
    organization = Organization.objects.create(login="acme")
    alice, ann = (
        Membership.objects.create(
            organization=organization, user=User.objects.create(username=name), role=Role.ADMIN
        )
        for name in ("alice", "ann")
    )
    first_done = threading.Event()
    errors: list[BaseException] = []

    def demote_alice_and_commit_late() -> None:
        try:
            with transaction.atomic():
                services.member_role_change(membership=alice, role=Role.MEMBER)
                first_done.set()
                time.sleep(1.0)  # the other request runs while this one is not committed
        except BaseException as exc:  # reported below
            errors.append(exc)
            first_done.set()
        finally:
            connection.close()

    thread = threading.Thread(target=demote_alice_and_commit_late)
    thread.start()
    assert first_done.wait(10)
    try:
        with pytest.raises(services.PeopleError, match="last admin"):
            services.member_role_change(membership=ann, role=Role.MEMBER)
    finally:
        thread.join(10)
    assert not errors
    roles = dict(Membership.objects.values_list("user__username", "role"))
    assert roles == {"alice": Role.MEMBER, "ann": Role.ADMIN}
