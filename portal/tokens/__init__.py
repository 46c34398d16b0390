"""Access tokens and the exchange history: dashboard, pages, exports, API, admin and the API's
token authentication."""
