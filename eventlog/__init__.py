"""The event store in PostgreSQL: append-only, hash-chained, with projections kept in step."""
