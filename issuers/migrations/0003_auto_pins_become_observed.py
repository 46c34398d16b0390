"""Thumbprints pinned automatically at registration become observed thumbprints.

Until now, registering an issuer without thumbprints pinned whatever its hosts served, so the
issuer's next routine certificate renewal broke every key fetch. Those thumbprints were never
chosen by an admin: they are moved to `observed_thumbprints` (shown, not enforced; the host is
still verified against the trusted certificate authorities on every fetch).

No column says who chose a pin, so the rule is what auto-pinning could have produced: at most
one thumbprint per host fetched from (the discovery host and the JWKS host). A longer list (a
spare or next certificate pinned ahead) can only come from an admin and stays pinned. Reversing
the migration keeps the thumbprints observed: re-pinning them would bring the outage back.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.db import migrations


def _hosts(*urls: str) -> set[str]:
    hosts = set()
    for url in urls:
        try:
            host = urlsplit(url).hostname
        except ValueError:
            host = None
        if host:
            hosts.add(host)
    return hosts


def auto_pins_become_observed(apps: Any, schema_editor: Any) -> None:
    Issuer = apps.get_model("issuers", "Issuer")
    for issuer in Issuer.objects.filter(static_jwks__isnull=True).iterator():
        pins = [t for t in issuer.thumbprints or [] if isinstance(t, str)]
        if not pins or len(pins) > max(1, len(_hosts(issuer.url, issuer.jwks_uri))):
            continue  # more pins than auto-pinning could produce: an admin chose them
        issuer.observed_thumbprints = list(dict.fromkeys([*pins, *issuer.observed_thumbprints]))
        issuer.thumbprints = []
        issuer.save(update_fields=["thumbprints", "observed_thumbprints"])


class Migration(migrations.Migration):
    dependencies = [
        ("issuers", "0002_observed_certificate_thumbprints"),
    ]

    operations = [
        migrations.RunPython(auto_pins_become_observed, migrations.RunPython.noop),
    ]
