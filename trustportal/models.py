"""Organizations, their members, teams and runners."""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.core.validators import RegexValidator
from django.db import models

slug_validator = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$",
    "Use letters, digits, '.', '_' or '-', starting with a letter or digit.",
)


class User(AbstractUser):
    """A person who signs in to the portal (also what personal tokens act as)."""

    class Meta:
        db_table = "trustportal_user"


class Organization(models.Model):
    login = models.CharField(max_length=100, unique=True, validators=[slug_validator])
    name = models.CharField(max_length=200, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["login"]

    def __str__(self) -> str:
        return self.login

    @property
    def display_name(self) -> str:
        return self.name or self.login

    @property
    def bot_login(self) -> str:
        """The machine identity organization and runner tokens act as."""
        return f"{self.login}-bot"


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    MEMBER = "member", "Member"
    AUDITOR = "auditor", "Auditor"


class Membership(models.Model):
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="memberships"
    )
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "user"], name="membership_unique"),
        ]
        ordering = ["organization__login", "user__username"]

    def __str__(self) -> str:
        return f"{self.user} in {self.organization} ({self.role})"


class Team(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="teams")
    name = models.CharField(max_length=100, validators=[slug_validator])
    display_name = models.CharField(max_length=200, blank=True)
    members = models.ManyToManyField(User, related_name="teams", blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="team_unique_name"),
        ]
        ordering = ["organization__login", "name"]

    def __str__(self) -> str:
        return f"{self.organization}/{self.name}"


class Runner(models.Model):
    """A named machine identity of an organization (e.g. a self-hosted deployment agent)."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="runners")
    name = models.CharField(max_length=100, validators=[slug_validator])
    description = models.CharField(max_length=500, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="runner_unique_name"),
        ]
        ordering = ["organization__login", "name"]

    def __str__(self) -> str:
        return f"{self.organization}/{self.name}"
