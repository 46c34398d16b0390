"""Every admin registration, found by the admin's autodiscovery of `portal.admin`.

The admin modules live by area; importing them registers their models on the one site.
"""

from portal.environments import admin as environments_admin
from portal.issuers import admin as issuers_admin
from portal.orgs import admin as orgs_admin
from portal.signin import admin as signin_admin
from portal.tokens import admin as tokens_admin

__all__ = ["environments_admin", "issuers_admin", "orgs_admin", "signin_admin", "tokens_admin"]
