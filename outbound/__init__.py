"""The guarded outbound client: the only code that opens sockets to hosts outside the portal.

OIDC issuers (discovery, JWKS), the token services of `fn::open` login providers, webhook
receivers and sign-in providers are all reached through `outbound.client`. Every URL goes
through the same pipeline, at registration time and on every later request:

1. strict syntax checks on the URL string (`urls.py`: scheme, userinfo, fragment, length,
   host form);
2. one DNS resolution through an injectable resolver, bounded by the deadline, and every
   resolved address globally routable or inside a caller-allowed network (`addresses.py`);
3. the TCP socket opened to the *checked* address (no second lookup, so no DNS rebinding),
   TLS verified against the original host name, optional SHA-256 pins of the leaf
   certificate compared before any request byte is sent, every send and receive bounded by
   the one deadline, bodies read up to a cap (`transport.py`, `deadlines.py`);
4. one request (a GET by `fetch_json`, a POST by `post`), no redirects, strict JSON decoding
   (`client.py`); `cachecontrol.py` reads the freshness lifetime of an answer.

The package imports nothing from Django or from the portal's apps (only `kernel`), so that it
can be reasoned about and tested in isolation.
"""
