"""Which organization tab a page belongs to, for the one tab bar every org page shows."""

from __future__ import annotations

from django.http import HttpRequest

# URL namespace (or tokens page name) → tab.
_TABS_BY_NAMESPACE = {
    "issuers": "issuers",
    "policies": "issuers",
    "environments": "environments",
    "audit": "audit",
    "notifications": "notifications",
}
_TOKENS_TABS = {
    "dashboard": "dashboard",
    "history": "history",
    "event": "history",
    "credentials": "credentials",
}


def org_tab(request: HttpRequest) -> dict[str, str]:
    """Context processor: `org_tab`, the organization tab of the page being rendered."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        return {"org_tab": ""}
    if (match.url_name or "").startswith("people") and not match.namespace:
        return {"org_tab": "people"}
    if match.namespace in _TABS_BY_NAMESPACE:
        return {"org_tab": _TABS_BY_NAMESPACE[match.namespace]}
    if match.namespace == "tokens":
        return {"org_tab": _TOKENS_TABS.get(match.url_name or "", "tokens")}
    return {"org_tab": ""}
