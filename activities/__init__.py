"""Temporal activities: the side effects (event-store appends, notifications, partner calls)."""
