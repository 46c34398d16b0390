"""Why a single sign-on was refused: a stable reason code and words for the person."""

from __future__ import annotations

MESSAGES = {
    "state_mismatch": (
        "This sign-in answer does not belong to a sign-in started in this browser (its state "
        "does not match). Start the sign-in again."
    ),
    "provider_error": "The identity provider refused the sign-in.",
    "provider_unavailable": "The identity provider could not be reached or answered wrongly.",
    "token_exchange_failed": "The identity provider did not exchange the sign-in code.",
    "nonce_mismatch": (
        "The identity provider's ID token was not issued for this sign-in (its nonce does not "
        "match)."
    ),
    "issuer_mismatch": "The ID token was issued by another identity provider than this one.",
    "audience_mismatch": "The ID token was issued for another application than this portal.",
    "subject_mismatch": "The identity provider's user information is about someone else.",
    "missing_subject": "The ID token names nobody (no sub claim).",
    "account_disabled": "This account is disabled.",
    "provider_misconfigured": (
        "This identity provider's settings cannot be used (its client secret cannot be read); "
        "ask an admin to enter it again."
    ),
}
GENERIC = "The identity provider's ID token could not be verified."


class SignInRefused(Exception):
    """A refused single sign-on; `reason` is stored in the security log, `message` is shown."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail[:500]

    @property
    def message(self) -> str:
        return MESSAGES.get(self.reason, GENERIC)
