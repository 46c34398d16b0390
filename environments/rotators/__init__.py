"""The `fn::rotate::<name>` rotators: the registry from a name to a `Rotator` (see `base`).

Like the `fn::open` providers' registry, each name points at a module attribute imported on
first use, so a module that cannot be imported takes out only its own name. The portal ships no
rotator yet: every `fn::rotate` is a diagnostic (`unknown rotator`) until one is registered
here. The test suite registers Pulumi's test rotators (`swap`, `echo`) by patching `ROTATORS`.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping

from environments.inputschema import CallSchema
from environments.rotators.base import Rotator

logger = logging.getLogger(__name__)

# name → (module, attribute); modules are imported on first use.
ROTATORS: Mapping[str, tuple[str, str]] = {}


def rotator_named(name: str) -> Rotator | None:
    """The rotator for a name, or None when unknown or its module cannot be loaded."""
    where = ROTATORS.get(name)
    if where is None:
        return None
    module_name, attribute = where
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        logger.warning("fn::rotate rotator %s is unavailable: cannot import %s", name, module_name)
        return None
    found = getattr(module, attribute, None)
    return found if isinstance(found, Rotator) else None


def schemas() -> dict[str, CallSchema]:
    """Every rotator name with its schemas (a rotator that cannot be loaded checks nothing)."""
    found = {name: rotator_named(name) for name in ROTATORS}
    return {name: r.schema if r is not None else CallSchema() for name, r in found.items()}
