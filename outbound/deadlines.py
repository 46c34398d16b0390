"""One deadline per request: every lookup, connect, send and receive gets only the time left.

Per-call socket timeouts alone cannot stop a server that drips one byte per second, so the
socket handed to http.client is wrapped to bound each call by the whole request's deadline.
"""

from __future__ import annotations

import io
import socket
import time
from typing import TYPE_CHECKING

from outbound.errors import refuse

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = ["DeadlineSocket", "remaining"]


def remaining(deadline: float, what: str) -> float:
    """Seconds left before the deadline; raises a timeout FetchError instead of returning <=0."""
    left = deadline - time.monotonic()
    if left <= 0:
        refuse("timeout", f"the fetch took longer than allowed ({what})")
    return left


class _DeadlineReader(io.RawIOBase):
    """Raw reader that gives each recv only the time left; it does no buffering itself.

    Per-recv socket timeouts alone cannot stop a server that drips one byte per second,
    so every read is bounded by the time remaining for the whole fetch.
    """

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self._sock = sock
        self._deadline = deadline

    def readable(self) -> bool:
        """Report that this stream can be read; it cannot be written or sought."""
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        """Receive into buffer within the remaining time; raises TimeoutError past it."""
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the fetch deadline passed while reading")
        self._sock.settimeout(left)
        return self._sock.recv_into(buffer)


class DeadlineSocket:
    """The minimal socket surface http.client uses, bounded by the deadline; no connect.

    ``close`` is a no-op because http.client closes its socket before the body is read
    when the server says "Connection: close"; the client closes the real socket itself.
    """

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline

    def sendall(self, data: bytes) -> None:
        """Send everything within the remaining time; does not retry on failure."""
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the fetch deadline passed while sending")
        self._sock.settimeout(left)
        self._sock.sendall(data)

    def makefile(self, mode: str, *args: object, **kwargs: object) -> io.BufferedReader:
        """Return a buffered reader over the deadline-bounded socket; read-only."""
        if "r" not in mode or "w" in mode:
            raise ValueError("only reading is supported")
        return io.BufferedReader(_DeadlineReader(self._sock, self._deadline))

    def close(self) -> None:
        """Do nothing; the owner of the real socket closes it (see class docstring)."""
