"""Trust policies: the editor and its drafts, the simulator page, the API and forms."""
