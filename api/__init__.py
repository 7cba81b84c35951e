"""The HTTP API and (later) the dashboard: HTTP in, updates and reads out; no business rules here."""
