"""Issuers: the registration wizard and pages, the API, forms and admin."""
