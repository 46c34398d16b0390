"""The exchange's issuer lookup: the issuer an ID token names, with its policy's id and version.

Part of the exchange store (`exchange/store.py`); it joins issuers and policies, so it lives
above both.
"""

from __future__ import annotations

from typing import Any

from issuers.models import Issuer
from policies.models import AuthPolicy

# Only what the exchange reads; everything else stays deferred (loaded on access, e.g. by an
# on-demand key refresh). Plain SQL because building this query with the ORM costs more than
# the database's answer does, on every exchange.
_EXCHANGE_FIELDS = (
    "id",
    "organization_id",
    "issuer",
    "audiences",
    "algorithms",
    "single_use",
    "enabled",
    "max_expiration",
    "keys_version",
    "last_success_at",
    "static_jwks",
    "last_used",
)


def _exchange_issuer_sql() -> str:
    issuer_fields = {f.attname: f.column for f in Issuer._meta.concrete_fields}
    policy = AuthPolicy._meta
    columns = ", ".join(f'i."{issuer_fields[name]}"' for name in _EXCHANGE_FIELDS)
    # Names come from the models' metadata, values are parameters: nothing from outside.
    return (
        f'SELECT {columns}, p."{policy.pk.column}" AS exchange_policy_id, '  # noqa: S608
        f'p."{policy.get_field("version").column}" AS exchange_policy_version '
        f'FROM "{Issuer._meta.db_table}" i '
        f'JOIN "{policy.db_table}" p ON p."{policy.get_field("issuer").column}" = i."id" '
        f'WHERE i."{issuer_fields["organization_id"]}" = %s '
        f'AND i."{issuer_fields["issuer"]}" = %s'
    )


_exchange_sql: str | None = None


def exchange_issuer(*, organization_id: Any, iss: str) -> tuple[Issuer, AuthPolicy] | None:
    """The organization's issuer whose `issuer` is exactly `iss`, with its policy's id and version.

    One indexed lookup (the unique (organization, issuer) constraint). The policy comes back
    with only its id and version: the compiled definitions are cached by (id, version).
    """
    global _exchange_sql
    if _exchange_sql is None:
        _exchange_sql = _exchange_issuer_sql()
    for issuer in Issuer.objects.raw(_exchange_sql, [organization_id, iss]):
        policy = AuthPolicy.from_db(
            issuer._state.db,
            ["id", "issuer_id", "organization_id", "version"],
            [
                issuer.exchange_policy_id,  # type: ignore[attr-defined]
                issuer.pk,
                issuer.organization_id,
                issuer.exchange_policy_version,  # type: ignore[attr-defined]
            ],
        )
        return issuer, policy
    return None
