"""Development tools, not part of the product: the local OIDC issuer and `make run`'s stack.

A Django app listed in INSTALLED_APPS only when `TRUSTPORTAL_ENV` is development or test, so
a production process never loads it and has neither the `devissuer` nor the `devstack`
command.
"""
