"""Login throttling for the portal and admin sign-in forms, shared by every process.

After `per_username` failed sign-ins for one username, or `per_address` from one client address,
within `window` seconds, every further attempt for that username or from that address is refused
for `window` seconds — even with the right password — before the password is checked at all.
Counts live in the Django cache (Redis in production) in fixed windows; the current and the
previous window are added up, so failures straddling a window boundary still count together.

It deliberately does not fail closed: when the cache is unreachable, sign-in is not throttled
(and a warning is logged), like the exchange's rate limits. Locking out one username is the
price of throttling by username; the address limit is higher so that one client cannot lock out
everyone behind the same proxy as quickly. Failed sign-ins are logged with the username and the
address, never the password. The sign-in forms that apply it are presentation
(`portal.signin.forms.ThrottledAuthenticationForm`).
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache

from kernel.clientaddr import client_ip

logger = logging.getLogger(__name__)

THROTTLED_MESSAGE = "Too many failed sign-in attempts. Try again in %(minutes)d minutes."


@dataclass(frozen=True)
class LoginThrottle:
    """Failure counts per username and per client address, in the shared cache."""

    per_username: int = 5
    per_address: int = 20
    window: int = 15 * 60

    def _subjects(self, username: str, address: str | None) -> list[tuple[str, str, int]]:
        subjects = [("user", username.strip().casefold(), self.per_username)]
        if address:
            subjects.append(("addr", address, self.per_address))
        return subjects

    @staticmethod
    def _key(*parts: object) -> str:
        digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).hexdigest()[:32]
        return f"login-throttle:{digest}"

    def refused_for(self, *, username: str, address: str | None, now: float | None = None) -> int:
        """Seconds until this username and address may try again; 0 when they may now."""
        now = time.time() if now is None else now
        subjects = self._subjects(username, address)
        try:
            keys = [self._key("lock", kind, value) for kind, value, _ in subjects]
            until = [u for u in cache.get_many(keys).values() if isinstance(u, int | float)]
        except Exception:  # the shared store is down: not throttling (see the module docstring)
            logger.warning("login throttle store unavailable; not throttling")
            return 0
        # The end of the lock is stored, not left to the cache expiry, so it holds on any clock.
        return max([math.ceil(u - now) for u in until if u > now], default=0)

    def record_failure(
        self, *, username: str, address: str | None, now: float | None = None
    ) -> None:
        """Count one failed sign-in; lock the username or address out once over its limit."""
        now = time.time() if now is None else now
        window = int(now // self.window)
        try:
            for kind, value, limit in self._subjects(username, address):
                current = self._key("count", kind, value, window)
                if cache.add(current, 1, timeout=2 * self.window + 5):
                    count = 1
                else:
                    count = cache.incr(current)
                count += int(cache.get(self._key("count", kind, value, window - 1)) or 0)
                if count >= limit:
                    cache.set(self._key("lock", kind, value), now + self.window, self.window + 5)
        except Exception:  # the shared store is down: not throttling (see the module docstring)
            logger.warning("login throttle store unavailable; failure not counted")


DEFAULT_THROTTLE = LoginThrottle()


def client_address(request: Any) -> str | None:
    """The client address of a sign-in request (`trustportal.clientaddr`), if there is one."""
    if request is None:
        return None
    return client_ip(request)

