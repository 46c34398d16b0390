"""`trustportal-login`: exchange this CI job's OIDC ID token for a Trust Portal access token.

Standard library only, and no import of the portal's packages: a CI job needs nothing but Python
to run it, as the `trustportal-login` console script, as `python3 -m trustportal_login`, or as one
file built by `python3 -m trustportal_login.bundle PATH` (a zip application). It finds the
job's ID token (GitHub Actions, GitLab CI, CircleCI, Buildkite, a file such as a Kubernetes
projected service account token, or stdin), posts it to `<url>/api/oauth/token` (RFC 8693, the
same body `pulumi/auth-actions` sends) and prints or exports the access token.

It deliberately does not verify the ID token — the portal does. It decodes the token's payload,
unverified, only to explain a refusal (which audience the token carries), and says so. It never
prints the ID token or the access token in a message, never follows redirects (a redirect would
carry the token somewhere the operator did not name) and refuses plain http except to loopback.

Exit codes: 0 granted, 1 the exchange failed or was refused, 2 usage or configuration error.
"""
