"""The token exchange: one use case on top of the domain apps (issuers, policies, tokens)."""
