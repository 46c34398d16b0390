"""The audit log's pages and API."""
