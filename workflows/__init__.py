"""Temporal workflows: orchestration of the care pathway. Deterministic; decisions come from domain/."""
