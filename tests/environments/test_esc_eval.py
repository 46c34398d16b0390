"""Pulumi ESC's own evaluator suite (`shared/vectors/esc-eval/`) through the portal's evaluator.

Each case folder holds `env.yaml`, the environments it imports and what Pulumi's evaluator
produced (`expected.json`). With the README's test providers and rotators (defined here, in the
test suite only), every case is opened and:

- without diagnostics in `expected.json`, the opened values (secrets revealed) must equal
  `evalJSONRevealed`;
- with `loadDiags`/`checkDiags`/`evalDiags`, the evaluation must fail, every path of the first
  of those lists must be among the portal's diagnostics, and every portal diagnostic must be at
  a path Pulumi reports too (or at the import, where the portal adds "the imported environment
  … has errors").

The vectors are read in place, from the nearest `shared/vectors/esc-eval` beside or above the
clone (CI has `../shared`); the test is skipped, saying so, when there is none.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from environments.evaluator import Evaluation, OpenCall, OpenFailed, Source, evaluate
from environments.rotation import Rotation
from environments.rotators.base import RotateContext, RotatorError
from environments.syntax import DEFAULT_PROJECT
from kernel.secretbox import DecryptFailed
from tests.environments.esc_rotators import PROVIDERS, ROTATORS

ROOT = Path(__file__).resolve().parents[2]
VECTORS = next(
    (
        parent / "shared" / "vectors" / "esc-eval"
        for parent in ROOT.parents
        if (parent / "shared" / "vectors" / "esc-eval" / "README.md").is_file()
    ),
    None,
)

# Cases that cannot apply, with the reason. Everything else must pass.
NOT_APPLICABLE: dict[str, str] = {
    "bench": "a benchmark (Pulumi's own suite skips it too)",
    "omnibus": "Pulumi's fn::toString of a map merged from an import leaves the imported keys "
    "out (its fn::toJSON of the same value keeps them); the portal renders the merged map in both",
    "inline-reference-rotateOnly": "its diagnostics are those of a check (rotate-only inputs "
    "are evaluated when checking and rotating, not when opening, which is what this suite "
    "does): tests/environments/test_rotation.py checks that case's rule",
}

CONTEXT = {"pulumi": {"user": {"id": "USER_123"}}}


def rot128_decrypt(ciphertext: str) -> str:
    """The toy cipher of Pulumi's suite: `escx`, a 4-byte version, bytes + 128, a 4-byte tail."""
    try:
        raw = base64.b64decode(ciphertext, validate=True)
    except ValueError as exc:
        raise DecryptFailed("invalid ciphertext: not base64") from exc
    if len(raw) < 12 or raw[:4] != b"escx":
        raise DecryptFailed("invalid ciphertext: EOF")
    return bytes((b - 128) % 256 for b in raw[8:-4]).decode()


def test_open(call: OpenCall) -> Any:
    """The suite's providers (`test`, `secret-wrapper`, `error`, `schema`)."""
    if call.provider == "error":
        why = call.arguments.get("why") if isinstance(call.arguments, Mapping) else None
        raise OpenFailed(str(why))
    return call.arguments  # test, secret-wrapper, schema: the inputs back


test_open.__test__ = False  # type: ignore[attr-defined]  # not a test function


def test_rotate(call: OpenCall) -> Any:
    """The suite's rotators (`swap`, `echo`): the new state."""
    context = RotateContext("org", "default", call.environment, "USER_123", datetime.now)
    try:
        return ROTATORS[call.provider].rotate(
            context, call.arguments["inputs"] or {}, call.arguments["state"]
        )
    except RotatorError as exc:
        raise OpenFailed(exc.message) from exc


test_rotate.__test__ = False  # type: ignore[attr-defined]  # not a test function
ROTATOR_SCHEMAS = {name: rotator.schema for name, rotator in ROTATORS.items()}


def case_names() -> list[str]:
    if VECTORS is None:
        return []
    return sorted(p.name for p in VECTORS.iterdir() if (p / "env.yaml").is_file())


def load_case(folder: Path) -> tuple[Source, Any, dict[str, Any]]:
    overrides: dict[str, Any] = {}
    if (folder / "overrides.json").is_file():
        overrides = json.loads((folder / "overrides.json").read_text())
    sources: dict[str, str] = {}
    for path in folder.rglob("*.yaml"):
        relative = path.relative_to(folder).with_suffix("")
        parts = relative.parts
        name = "/".join(parts) if len(parts) == 2 else f"{DEFAULT_PROJECT}/{parts[-1]}"
        sources[name] = path.read_text()

    def load(wanted: str) -> Source | str:
        if wanted not in sources:
            return "environment not found"
        return Source(wanted, sources[wanted], rot128_decrypt, test_open, CONTEXT)

    name = overrides.get("rootEnvironment") or folder.name
    root = Source(name, (folder / "env.yaml").read_text(), rot128_decrypt, test_open, CONTEXT)
    expected = json.loads((folder / "expected.json").read_text())
    return root, load, expected


def expected_paths(expected: dict[str, Any]) -> tuple[set[str], set[str]]:
    """The paths of the first non-empty diagnostics list, and of all of them."""
    lists = [expected.get(k) or [] for k in ("loadDiags", "checkDiags", "evalDiags")]
    first = next((items for items in lists if items), [])
    return {d.get("Path", "") for d in first}, {d.get("Path", "") for ds in lists for d in ds}


def run_case(name: str, rotation: Rotation | None = None) -> tuple[Evaluation, dict[str, Any]]:
    assert VECTORS is not None
    root, load, expected = load_case(VECTORS / name)
    result = evaluate(root, load, providers=PROVIDERS, rotators=ROTATOR_SCHEMAS, rotation=rotation)
    return result, expected


def check_case(name: str) -> None:
    result, expected = run_case(name)
    first, every = expected_paths(expected)
    if every:
        assert result.diagnostics, f"{name}: Pulumi reports diagnostics at {sorted(every)}"
        ours = {d.path for d in result.diagnostics}
        assert first <= ours, f"{name}: missing {sorted(first - ours)}; ours {result.diagnostics}"
        extra = {p for p in ours - every if not p.startswith("imports")}
        assert not extra, f"{name}: unexpected diagnostics at {sorted(extra)}"
        return
    assert result.diagnostics == (), f"{name}: {result.diagnostics}"
    assert result.value is not None
    want = expected.get("evalJSONRevealed")
    assert result.value.plain(reveal=True) == (want if want is not None else {})


@pytest.mark.skipif(VECTORS is None, reason="shared/vectors/esc-eval is not beside the clone")
@pytest.mark.parametrize("name", case_names())
def test_pulumi_eval_case(name: str) -> None:
    if name in NOT_APPLICABLE:
        pytest.skip(f"not applicable: {NOT_APPLICABLE[name]}")
    check_case(name)


@pytest.mark.skipif(VECTORS is None, reason="shared/vectors/esc-eval is not beside the clone")
def test_pulumi_eval_suite_summary(capsys: pytest.CaptureFixture[str]) -> None:
    """Every case passes or is listed as not applicable; prints how many pass."""
    names = case_names()
    passed, failed = [], []
    for name in names:
        if name in NOT_APPLICABLE:
            continue
        try:
            check_case(name)
        except AssertionError as exc:
            failed.append(f"{name}: {str(exc).splitlines()[0]}")
        else:
            passed.append(name)
    with capsys.disabled():
        print(
            f"\nPulumi ESC evaluator suite: {len(passed)} of {len(names)} cases pass, "
            f"{len(NOT_APPLICABLE)} not applicable, {len(failed)} failing"
        )
    assert not failed, failed
    assert set(NOT_APPLICABLE) <= set(names)


def rotate_case_names() -> list[str]:
    names = []
    for name in case_names():
        assert VECTORS is not None
        overrides = VECTORS / name / "overrides.json"
        if overrides.is_file() and json.loads(overrides.read_text()).get("rotate"):
            names.append(name)
    return names


@pytest.mark.skipif(VECTORS is None, reason="shared/vectors/esc-eval is not beside the clone")
@pytest.mark.parametrize("name", rotate_case_names())
def test_pulumi_rotate_case(name: str) -> None:
    """Rotating the case (all calls, or `rotatePaths`): Pulumi's `rotateJson` and patches."""
    assert VECTORS is not None
    overrides = json.loads((VECTORS / name / "overrides.json").read_text())
    rotation = Rotation.of(test_rotate, overrides.get("rotatePaths"))
    result, expected = run_case(name, rotation)
    listed = [expected.get(k) or [] for k in ("loadDiags", "checkDiags", "rotateDiags")]
    if any(listed):
        every = {d.get("Path", "") for ds in listed for d in ds}
        assert result.diagnostics
        assert {d.path for d in result.diagnostics} <= every, result.diagnostics
        return
    assert result.diagnostics == (), result.diagnostics
    assert result.value is not None
    assert result.value.plain(reveal=True) == expected["rotateJson"]
    patched = sorted(f"{r.call_path}.state" for r in rotation.rotated)
    assert patched == sorted(p["DocPath"] for p in expected["rotatePatches"])
