"""Forms of the issuer pages: the register wizard's two steps and the settings editor.

The forms check shape and limits so that mistakes are reported next to the field; the services
validate again and stay the authority. `add_service_error` puts a service's refusal next to the
field it is about, so the operator never sees a bare error page.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from django import forms

from issuers import selectors, services
from issuers.errors import IssuerBusy, IssuerConflict, IssuerInvalid
from issuers.models import (
    DEFAULT_ALGORITHMS,
    DEFAULT_MAX_EXPIRATION,
    MAX_EXPIRATION_LIMIT,
    Issuer,
)
from outbound.policy import DEFAULT_MAX_BYTES, MAX_URL_LENGTH

_FAMILY_ORDER = ("RS", "PS", "ES", "Ed")
ALGORITHM_CHOICES = [
    (alg, alg)
    for alg in sorted(
        services.ALLOWED_ALGORITHMS,
        key=lambda alg: (_FAMILY_ORDER.index(alg[:2]) if alg[:2] in _FAMILY_ORDER else 9, alg),
    )
]
_SEPARATORS = re.compile(r"[\s,]+")
MAX_AUDIENCE_LENGTH = 512

# Which field a refusal is about: a few fetch reasons, then the services' message prefixes (their
# messages start with the name of the field they check).
_REASON_FIELDS = {
    "thumbprint_mismatch": "thumbprints",
    "bad_thumbprint": "thumbprints",
}
_MESSAGE_FIELDS = (
    ("url ", "url"),
    ("each thumbprint", "thumbprints"),
    ("thumbprints ", "thumbprints"),
    ("jwks", "jwks"),
    ("name ", "name"),
    ("an issuer named", "name"),
    ("maxExpiration", "max_expiration"),
    ("audiences", "audiences"),
    ("at most", "audiences"),
    ("algorithms", "algorithms"),
    ("unsupported algorithms", "algorithms"),
)


# What to do about a refusal, for the reasons an operator can act on.
_HINTS = {
    "address_not_allowed": (
        "Issuers must be reachable at a public address. For a self-hosted issuer on a private "
        "network, the portal's operator can allow that network "
        "(TRUSTPORTAL_ISSUER_ALLOWED_NETWORKS)."
    ),
    "scheme_not_allowed": "Issuers must be served over https.",
    "issuer_mismatch": (
        "Enter the URL exactly as the discovery document's issuer value: that is what the "
        "tokens carry in iss."
    ),
    "thumbprint_mismatch": (
        "Check the thumbprint, or leave the field empty to trust the host through the "
        "certificate authorities (its thumbprints are then recorded, not enforced)."
    ),
    "dns_failure": "Check the host name.",
    "redirect_refused": "Enter the final URL; redirects are never followed.",
    "bad_status": (
        "Check that <URL>/.well-known/openid-configuration exists. For an issuer without "
        "discovery, paste its key set under Advanced instead."
    ),
    "timeout": "The issuer did not answer in time; check the URL and try again.",
    "connection_failed": "Check the URL and that the issuer is up, then try again.",
}


def add_service_error(
    form: forms.Form,
    exc: IssuerInvalid | IssuerConflict | IssuerBusy,
    *,
    default: str | None = None,
) -> None:
    """Attach a service refusal to the form field it concerns, else to `default` or the form.

    A field the form does not show (a hidden one) never gets the message: it goes to the form
    as a whole instead, so it is always visible.
    """
    field = _REASON_FIELDS.get(exc.reason) or next(
        (name for prefix, name in _MESSAGE_FIELDS if exc.message.startswith(prefix)), default
    )
    if field is not None and (field not in form.fields or form.fields[field].widget.is_hidden):
        field = None
    hint = _HINTS.get(exc.reason)
    form.add_error(field, f"{exc.message}. {hint}" if hint else exc.message)


def split_lines(value: str) -> list[str]:
    """Non-empty stripped lines of a textarea, in order, each once."""
    return list(dict.fromkeys(line.strip() for line in value.splitlines() if line.strip()))


def default_name(url: str) -> str:
    """The name proposed for an issuer: its URL's host (as the service would default it)."""
    return urlsplit(url).hostname or url


class IssuerSourceForm(forms.Form):
    """Step 1 of the wizard: where the issuer is and, optionally, how to trust its host."""

    url = forms.CharField(
        label="Issuer URL",
        max_length=MAX_URL_LENGTH,
        help_text=(
            "The issuer's base URL, exactly as it appears in the tokens' iss claim, e.g. "
            "https://token.actions.githubusercontent.com. Its discovery document is read from "
            "<URL>/.well-known/openid-configuration."
        ),
        widget=forms.TextInput(
            attrs={
                "inputmode": "url",
                "autocomplete": "off",
                "spellcheck": "false",
                "placeholder": "https://token.actions.githubusercontent.com",
            }
        ),
    )
    thumbprints = forms.CharField(
        label="Certificate thumbprints (optional)",
        required=False,
        help_text=(
            "SHA-256 thumbprints of the TLS certificate the issuer's hosts serve, one per line "
            "(colons allowed); every fetch must then present one of them. Leave empty to trust "
            "the hosts through the certificate authorities: the thumbprints served are recorded "
            "and a change is reported as a warning, so a routine renewal breaks nothing."
        ),
        widget=forms.Textarea(attrs={"rows": 2, "spellcheck": "false"}),
    )
    jwks = forms.CharField(
        label="Static JWKS (optional)",
        required=False,
        max_length=DEFAULT_MAX_BYTES,
        help_text=(
            "Only for issuers that publish no discovery document: paste their key set, "
            '{"keys": [...]}. Static keys are never fetched: when the issuer rotates them, '
            "update the issuer's jwks through the API."
        ),
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
    )

    def clean_url(self) -> str:
        value: str = self.cleaned_data["url"]
        try:
            urlsplit(value)
        except ValueError as exc:
            # Python's parser refuses unbalanced IPv6 brackets; the guard would raise, not explain.
            raise forms.ValidationError(f"This URL cannot be parsed: {exc}.") from exc
        return value

    def clean_thumbprints(self) -> list[str]:
        raw: str = self.cleaned_data.get("thumbprints") or ""
        values = [v for v in _SEPARATORS.split(raw) if v]
        try:
            return services.clean_thumbprints(values)
        except IssuerInvalid as exc:
            raise forms.ValidationError(exc.message) from exc

    def clean_jwks(self) -> dict[str, Any] | None:
        raw: str = self.cleaned_data.get("jwks") or ""
        if not raw.strip():
            return None
        try:
            document = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise forms.ValidationError(f"This is not valid JSON: {exc}") from exc
        try:
            cleaned = services.clean_static_jwks(document)
        except IssuerInvalid as exc:
            raise forms.ValidationError(exc.message) from exc
        assert cleaned is not None
        return cleaned[0]

    def clean(self) -> dict[str, Any] | None:
        cleaned = super().clean()
        if self.cleaned_data.get("jwks") and self.cleaned_data.get("thumbprints"):
            self.add_error(
                "thumbprints",
                "Thumbprints apply only to issuers whose keys are fetched; leave them empty "
                "when you paste a static JWKS.",
            )
        return cleaned


def name_field() -> forms.CharField:
    return forms.CharField(
        max_length=200,
        help_text="How this issuer is shown in policies and history; unique in the organization.",
    )


def max_expiration_field() -> forms.IntegerField:
    return forms.IntegerField(
        label="Maximum access-token lifetime (seconds)",
        min_value=60,
        max_value=MAX_EXPIRATION_LIMIT,
        initial=DEFAULT_MAX_EXPIRATION,
        help_text=(
            f"Tokens exchanged through this issuer last at most this long; longer requests are "
            f"shortened. 60 to {MAX_EXPIRATION_LIMIT} seconds (default {DEFAULT_MAX_EXPIRATION})."
        ),
    )


def audiences_field() -> forms.CharField:
    return forms.CharField(
        label="Other accepted audiences (optional)",
        required=False,
        help_text=(
            "Values the ID token's aud claim may name instead of the organization's own audience "
            f"(e.g. sts.amazonaws.com for EKS tokens), one per line, at most "
            f"{services.MAX_AUDIENCES}. Leave empty to require the organization's audience."
        ),
        widget=forms.Textarea(attrs={"rows": 2, "spellcheck": "false"}),
    )


def algorithms_field() -> forms.MultipleChoiceField:
    return forms.MultipleChoiceField(
        label="Allowed signing algorithms",
        choices=ALGORITHM_CHOICES,
        initial=DEFAULT_ALGORITHMS,
        widget=forms.CheckboxSelectMultiple,
        help_text="Tokens signed with any other algorithm are refused.",
    )


def single_use_field() -> forms.BooleanField:
    return forms.BooleanField(
        label="Single use: refuse a token whose jti was already exchanged", required=False
    )


def audiences_from_text(text: str) -> list[str]:
    """The audiences typed one per line, checked against the service's limits."""
    values = split_lines(text)
    if len(values) > services.MAX_AUDIENCES:
        raise forms.ValidationError(
            f"At most {services.MAX_AUDIENCES} audiences; you entered {len(values)}."
        )
    if any(len(v) > MAX_AUDIENCE_LENGTH for v in values):
        raise forms.ValidationError(
            f"Each audience may be at most {MAX_AUDIENCE_LENGTH} characters long."
        )
    return values


def settings_data(cleaned: dict[str, Any]) -> dict[str, Any]:
    """Cleaned settings fields in the API's camelCase shape (what issuer_update takes)."""
    return {
        "name": cleaned["name"],
        "maxExpiration": cleaned["max_expiration"],
        "audiences": cleaned["audiences"],
        "algorithms": list(cleaned["algorithms"]),
        "singleUse": bool(cleaned["single_use"]),
    }


class IssuerSettingsFields(forms.Form):
    """The settings an admin chooses for an issuer (registration and later edits)."""

    name = name_field()
    max_expiration = max_expiration_field()
    audiences = audiences_field()
    algorithms = algorithms_field()
    single_use = single_use_field()

    def clean_audiences(self) -> list[str]:
        return audiences_from_text(self.cleaned_data.get("audiences") or "")

    def service_data(self) -> dict[str, Any]:
        """The cleaned settings in the API's camelCase shape (what issuer_update takes)."""
        return settings_data(self.cleaned_data)


class IssuerRegisterForm(IssuerSettingsFields, IssuerSourceForm):
    """Step 2 of the wizard: step 1's answers carried as hidden fields, plus the settings."""

    url = forms.CharField(max_length=MAX_URL_LENGTH, widget=forms.HiddenInput)
    thumbprints = forms.CharField(required=False, widget=forms.HiddenInput)
    jwks = forms.CharField(required=False, max_length=DEFAULT_MAX_BYTES, widget=forms.HiddenInput)

    field_order = ["url", "thumbprints", "jwks", "name", "max_expiration"]

    @classmethod
    def carrying(cls, source: IssuerSourceForm, thumbprints: Sequence[str]) -> IssuerRegisterForm:
        """An unbound step-2 form carrying step 1's answers and the thumbprints to pin.

        Only the thumbprints the admin entered are carried (and pinned): the ones merely served
        are recorded as observed at registration, never pinned behind the admin's back.
        """
        data = source.cleaned_data
        jwks = data.get("jwks")
        return cls(
            initial={
                "url": data["url"],
                "thumbprints": " ".join(thumbprints),
                "jwks": json.dumps(jwks, separators=(",", ":")) if jwks is not None else "",
                "name": default_name(data["url"]),
            }
        )


class IssuerEditForm(IssuerSettingsFields):
    """The settings editor on the issuer page."""

    @classmethod
    def for_issuer(cls, issuer: Issuer) -> IssuerEditForm:
        """An unbound form showing the issuer's current settings."""
        return cls(
            initial={
                "name": issuer.name,
                "max_expiration": issuer.max_expiration,
                "audiences": "\n".join(issuer.audiences),
                "algorithms": list(issuer.algorithms),
                "single_use": issuer.single_use,
            }
        )


class IssuerAdminForm(forms.ModelForm[Issuer]):
    """The Django admin's issuer form: the same fields and checks as the issuer page."""

    name = name_field()
    max_expiration = max_expiration_field()
    audiences = audiences_field()
    algorithms = algorithms_field()
    single_use = single_use_field()

    class Meta:
        model = Issuer
        fields = ("name", "enabled", "max_expiration", "audiences", "algorithms", "single_use")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.initial["audiences"] = "\n".join(self.instance.audiences)
            self.initial["algorithms"] = list(self.instance.algorithms)

    def clean_audiences(self) -> list[str]:
        return audiences_from_text(self.cleaned_data.get("audiences") or "")

    def clean_name(self) -> str:
        # The organization is read-only in the admin, so Django skips the unique constraint.
        name: str = self.cleaned_data["name"]
        clash = selectors.issuers_of(self.instance.organization).filter(name=name)
        if clash.exclude(pk=self.instance.pk).exists():
            raise forms.ValidationError(f"An issuer named {name!r} already exists.")
        return name

    def service_data(self) -> dict[str, Any]:
        """The cleaned settings in the API's camelCase shape, with the enabled flag."""
        return {**settings_data(self.cleaned_data), "enabled": bool(self.cleaned_data["enabled"])}
