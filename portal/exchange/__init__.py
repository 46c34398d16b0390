"""The token endpoint's HTTP edge (`POST /api/oauth/token`)."""
