from tests.signin.openid_provider import provider_jwk, start_provider  # noqa: F401
