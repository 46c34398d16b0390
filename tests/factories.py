"""factory_boy factories for the domain model."""

from __future__ import annotations

import uuid
from typing import Any

import factory
from django.utils import timezone
from factory.django import DjangoModelFactory

from tokens.models import ExchangeEvent
from tokens.services import token_create
from trustportal.models import Membership, Organization, Role, Runner, Team, User

PASSWORD = "correct horse battery staple"


class UserFactory(DjangoModelFactory[User]):
    class Meta:
        model = User
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.test")
    password = factory.django.Password(PASSWORD)


class OrganizationFactory(DjangoModelFactory[Organization]):
    class Meta:
        model = Organization
        django_get_or_create = ("login",)

    login = factory.Sequence(lambda n: f"org{n}")
    name = factory.LazyAttribute(lambda o: f"{o.login.title()} Inc.")


class MembershipFactory(DjangoModelFactory[Membership]):
    class Meta:
        model = Membership

    organization = factory.SubFactory(OrganizationFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.MEMBER


class TeamFactory(DjangoModelFactory[Team]):
    class Meta:
        model = Team

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"team{n}")


class RunnerFactory(DjangoModelFactory[Runner]):
    class Meta:
        model = Runner

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"runner{n}")


def make_token(token_type: str = "organization", **kwargs: Any) -> str:
    """Create a token through the service (as production does) and return its plaintext."""
    if token_type in ("organization",) and "organization" not in kwargs:
        kwargs["organization"] = OrganizationFactory()
    return token_create(token_type=token_type, **kwargs)[1]


def make_event(organization: Organization | None, **fields: Any) -> ExchangeEvent:
    """Insert one exchange event as the exchange records it (defaults: a denied attempt)."""
    defaults: dict[str, Any] = {
        "created": timezone.now(),
        "request_id": uuid.uuid4().hex[:24],
        "organization": organization,
        "organization_login": organization.login if organization is not None else "",
        "decision": "deny",
        "reason": "denied_by_policy",
        "error": "invalid_request",
        "sub": "repo:acme/app:ref:refs/heads/main",
        "requested_token_type": "organization",
        "claims": {},
    }
    defaults.update(fields)
    claims = defaults["claims"]
    if "sub" not in claims and defaults["sub"]:
        defaults["claims"] = {"sub": defaults["sub"], **claims}
    event = ExchangeEvent(**defaults)
    event.save(force_insert=True)
    return event


def pass_second_factor(client: Any, username: str) -> Any:
    """Give a signed-in test client's session the second factor its user may owe
    (portal.signin.mfa): a confirmed TOTP device, as if its code had just been entered."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    user = User.objects.get(username=username)
    device = TOTPDevice.objects.create(user=user, name="test", confirmed=True)
    session = client.session
    session["otp_device_id"] = device.persistent_id
    session.save()
    return client
