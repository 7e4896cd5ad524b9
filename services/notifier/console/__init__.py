"""The operators' console: people, teams and roles, sign-in sessions, and the pages."""
