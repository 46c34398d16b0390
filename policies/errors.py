"""Errors of policy changes."""

from __future__ import annotations

from typing import Any

from kernel.errors import BadRequest, Conflict
from policies.validation import FieldError, LintWarning


class PolicyInvalid(BadRequest):
    """The definitions cannot be saved; every problem is listed with where it is."""

    reason = "policy_invalid"

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{e.path}: {e.message}" for e in errors[:20]))

    def body(self, request_id: str) -> dict[str, Any]:
        return {
            "code": self.status,
            "message": self.message,
            "errors": [{"path": e.path, "message": e.message} for e in self.errors],
        }


class DraftChanged(Conflict):
    """The draft moved on (another admin's edit, a publish or a discard) since the page loaded."""

    reason = "draft_changed"

    def __init__(self, *, yours: int, current: int) -> None:
        self.yours = yours
        self.current = current
        super().__init__(
            "The draft was changed by someone else since this page was loaded; "
            "nothing was applied. Review it and try again."
        )


class DraftStale(Conflict):
    """The live policy changed after the draft was started: publishing would undo that change."""

    reason = "draft_stale"

    def __init__(self, *, base_version: int, live_version: int) -> None:
        self.base_version = base_version
        self.live_version = live_version
        super().__init__(
            f"Not published: the draft was started from version {base_version}, but the live "
            f"policy is now at version {live_version}. Publishing would silently undo that "
            "change. Review the differences, then restart the draft from the live version or "
            "discard it."
        )


class NoDraft(Conflict):
    reason = "no_draft"
    default_message = "There is no draft to publish or discard: it was published or discarded."


class ConfirmationRequired(Conflict):
    """Publishing would add lint warnings; the admin must confirm having read them."""

    reason = "confirmation_required"

    def __init__(self, warnings: list[LintWarning]) -> None:
        self.warnings = warnings
        count = len(warnings)
        super().__init__(
            f"Publishing adds {count} warning{'s' if count != 1 else ''}; "
            "confirm to publish anyway."
        )
