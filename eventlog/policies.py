"""The policy texts decisions were made under, by version (the `policy_version` decision events carry)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, text

from continuum.domain.policy import load_policy

_REGISTER = text(
    "INSERT INTO policies (version, policy_text) VALUES (:version, :text) ON CONFLICT (version) DO NOTHING"
)
_ONE = text("SELECT version, policy_text, registered_at FROM policies WHERE version = :version")
_ALL = text("SELECT version, registered_at FROM policies ORDER BY registered_at, version")


@dataclass(frozen=True)
class RegisteredPolicy:
    version: str
    text: str
    registered_at: datetime


class PolicyRegistry:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def register(self, policy_text: str) -> str:
        """Keep `policy_text` under its version (validated first: PolicyError names the key); the version."""
        version = load_policy(policy_text).version
        with self.engine.begin() as connection:
            connection.execute(_REGISTER, {"version": version, "text": policy_text})
        return version

    def get(self, version: str) -> RegisteredPolicy | None:
        with self.engine.connect() as connection:
            row = connection.execute(_ONE, {"version": version}).first()
        return RegisteredPolicy(row.version, row.policy_text, row.registered_at) if row else None

    def versions(self) -> list[tuple[str, datetime]]:
        with self.engine.connect() as connection:
            return [(row.version, row.registered_at) for row in connection.execute(_ALL)]
