"""The presentation layer: pages, APIs, the admin, forms, URLs and the HTTP edges' middleware.

One subpackage per area (`orgs`, `audit`, `issuers`, `policies`, `tokens`, `exchange`,
`notifications`, `signin`); the project-wide pieces (root URLs, error pages and renderer,
navigation, content negotiation, operations routes, the admin site) at the top. Imports every
domain app; no domain app imports it.
"""
