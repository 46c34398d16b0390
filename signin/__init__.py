"""Sign-in: organizations' OpenID Connect providers, group-to-role mapping, second factors."""
