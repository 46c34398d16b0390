"""Organizations, people and teams: their pages, API and admin."""
