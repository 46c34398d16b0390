"""The sign-in form of the portal (and the base of the admin's): throttled before the password
is checked (`trustportal.login_throttle`)."""

from __future__ import annotations

import logging
import math
from typing import Any

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import NON_FIELD_ERRORS

from trustportal.login_throttle import DEFAULT_THROTTLE, THROTTLED_MESSAGE, client_address

# The throttle's log, where sign-in refusals and failures have always been written.
logger = logging.getLogger("trustportal.login_throttle")


class ThrottledAuthenticationForm(AuthenticationForm):
    """The sign-in form, refusing throttled usernames and addresses before checking passwords.

    Also the base of the admin site's sign-in form, which keeps its own messages.
    """

    throttle = DEFAULT_THROTTLE

    @property
    def throttled(self) -> bool:
        """Whether this attempt was refused by the throttle (the page says so)."""
        return self.has_error(NON_FIELD_ERRORS, "throttled")

    def clean(self) -> dict[str, Any]:
        username = str(self.cleaned_data.get("username") or "")
        address = client_address(self.request)
        wait = self.throttle.refused_for(username=username, address=address)
        if wait:
            logger.warning(
                "sign-in refused: throttled username=%r address=%s retry_in=%ds",
                username[:150],
                address,
                wait,
            )
            raise forms.ValidationError(
                THROTTLED_MESSAGE,
                code="throttled",
                params={"minutes": max(1, math.ceil(wait / 60))},
            )
        try:
            return super().clean()
        except forms.ValidationError as error:
            if error.code == "invalid_login":
                self.throttle.record_failure(username=username, address=address)
                logger.warning("sign-in failed username=%r address=%s", username[:150], address)
            raise
