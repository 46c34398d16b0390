"""The `fn::open::<name>` providers: the registry from a name to a `Provider` (see `base`).

`oidc` is built in. The cloud logins live in their own modules and are imported by name when
first used, so a module that is missing (or fails to import) takes out only its own name: the
registry, `oidc` and every other provider keep working, and opening a definition that uses the
missing one is a clear diagnostic, never a crash.

Each provider module declares `INPUTS`, the JSON Schema of its arguments (types and the keys
it knows; `environments.inputschema`), checked with diagnostics at each argument's path when a
definition is checked or saved and again on open, before the provider runs. The provider's own
checks (formats, ranges, required keys) still run when it is called.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping

from environments.inputschema import CallSchema
from environments.providers.base import Provider

logger = logging.getLogger(__name__)

# name → (module, function); modules are imported on first use.
PROVIDERS: Mapping[str, tuple[str, str]] = {
    "oidc": ("environments.providers.oidc", "oidc"),
    "aws-login": ("environments.providers.aws", "aws_login"),
    "gcp-login": ("environments.providers.gcp", "gcp_login"),
    "azure-login": ("environments.providers.azure", "azure_login"),
    "vault-login": ("environments.providers.vault", "vault_login"),
}


def names() -> frozenset[str]:
    """Every provider name a definition may use in `fn::open::<name>`."""
    return frozenset(PROVIDERS)


def provider_named(name: str) -> Provider | None:
    """The provider for a name, or None when unknown or its module cannot be loaded."""
    where = PROVIDERS.get(name)
    if where is None:
        return None
    module_name, function = where
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        logger.warning("fn::open provider %s is unavailable: cannot import %s", name, module_name)
        return None
    found = getattr(module, function, None)
    return found if callable(found) else None


def schemas() -> dict[str, CallSchema]:
    """Every provider name with the schema of its inputs (`True` when its module is missing)."""
    found: dict[str, CallSchema] = {}
    for name, (module_name, _function) in PROVIDERS.items():
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            found[name] = CallSchema()
            continue
        found[name] = CallSchema(inputs=getattr(module, "INPUTS", True))
    return found
