"""Sample claim sets for the simulator: what common CI platforms put in their ID tokens.

The JSON files next to this module are copies of realistic claim sets (values are examples);
they ship with the package so the simulator never reads anything outside it at run time.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Final

SAMPLES_DIR: Final = Path(__file__).resolve().parent

# Display names, in the order the simulator lists them; files not named here follow, by name.
LABELS: Final = {
    "github-actions": "GitHub Actions: push to main",
    "github-actions-pull-request": "GitHub Actions: pull request",
    "github-actions-environment": "GitHub Actions: deployment environment",
    "gitlab-ci": "GitLab CI/CD: push to main",
    "circleci": "CircleCI",
    "buildkite": "Buildkite",
    "terraform-cloud": "Terraform Cloud: apply",
    "kubernetes-eks": "Kubernetes (EKS) service account",
}


@dataclass(frozen=True)
class Sample:
    """One sample claim set: its file name (without `.json`), a label, and the claims."""

    name: str
    label: str
    claims: dict[str, Any]


@cache
def _load_all() -> tuple[Sample, ...]:
    found = {path.stem: path for path in SAMPLES_DIR.glob("*.json")}
    order = [name for name in LABELS if name in found] + sorted(set(found) - set(LABELS))
    return tuple(
        Sample(name, LABELS.get(name, name), json.loads(found[name].read_text(encoding="utf-8")))
        for name in order
    )


def samples() -> tuple[Sample, ...]:
    """Every sample, in display order (shared objects: use `sample_claims` for a copy to change)."""
    return _load_all()


def sample_claims(name: str) -> dict[str, Any] | None:
    """A fresh copy of the named sample's claims, or None when there is no such sample."""
    for sample in _load_all():
        if sample.name == name:
            return copy.deepcopy(sample.claims)
    return None
