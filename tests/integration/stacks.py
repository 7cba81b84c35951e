"""What the stack fixtures (conftest.py) hand a test: the API over a worker in-process, or the whole stack as
real processes; and the trigger through which PostgreSQL refuses one value as data."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from temporalio.testing import WorkflowEnvironment

from continuum.episodes import EpisodeCommands
from continuum.eventlog.store import PostgresEventStore

MILD = {"ratings": [1, 1, 1, 1, 1, 1], "assessed_by": "clin-1"}


def confirmed_positive(*substances: str, lab_reference: str = "L-1") -> dict[str, Any]:
    """A lab's body for a laboratory-confirmed positive naming `substances`, collected now."""
    return {
        "result": "positive",
        "method": "confirmed",
        "collected_at": datetime.now(UTC).isoformat(),
        "lab_reference": lab_reference,
        "substances": list(substances),
    }


# PostgreSQL refuses this note with a data error (SQLSTATE 22023), as it would an untranslatable character.
POISON_NOTE = "poison-pill"
POISON = f"""
CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.payload->>'note' = '{POISON_NOTE}' THEN
    RAISE EXCEPTION 'invalid parameter value' USING ERRCODE = '22023';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER refuse_poison BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse_poison();
"""


@dataclass
class Stack:
    """The API over a worker; episode ids are this test's own (the Temporal server is shared by all tests)."""

    http: httpx.AsyncClient
    keys: dict[str, str]  # role (or "lab-2") -> secret
    episodes: EpisodeCommands
    env: WorkflowEnvironment
    store: PostgresEventStore
    e1: str = ""
    e2: str = ""
    e3: str = ""

    def episode(self, episode_id: str | None = None, **changes: Any) -> dict[str, Any]:
        return {"episode_id": episode_id or self.e1, "client_id": "client-1", "assessment": MILD, **changes}

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}

    async def post(self, path: str, body: Any = None, role: str = "clinician", **headers: str) -> httpx.Response:
        return await self.http.post(path, json=body, headers={**self.auth(role), **headers})

    async def get(self, path: str, role: str = "director", **params: Any) -> httpx.Response:
        return await self.http.get(path, params=params, headers=self.auth(role))

    async def sign_in(self, role: str = "director") -> DashboardSignIn:
        """Sign in to the dashboard as a browser does: the form (its nonce cookie and CSRF token), then the key."""
        form = await self.http.get("/dashboard/sign-in")
        nonce = set_cookies(form)["continuum_sign_in"]
        answer = await self.http.post(
            "/dashboard/sign-in",
            data={"api_key": self.keys[role], "csrf_token": form_csrf(form.text)},
            headers={"Cookie": f"continuum_sign_in={nonce}"},
        )
        assert answer.status_code == 303, answer.text
        token = set_cookies(answer)["continuum_session"]
        page = await self.http.get(answer.headers["location"], headers={"Cookie": f"continuum_session={token}"})
        return DashboardSignIn(token, form_csrf(page.text))


@dataclass(frozen=True)
class DashboardSignIn:
    """A signed-in browser: its session cookie's token, and the CSRF token its pages' forms carry."""

    token: str
    csrf: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Cookie": f"continuum_session={self.token}"}


def set_cookies(response: httpx.Response) -> dict[str, str]:
    """The cookies a response sets, by name (the last value of each; an emptied one is "")."""
    found = {}
    for header in response.headers.get_list("set-cookie"):
        name, _, rest = header.partition("=")
        found[name.strip()] = rest.split(";")[0].strip('"')
    return found


def form_csrf(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]*)"', page)
    assert match, "the page has no form with a CSRF token"
    return match[1]


@dataclass
class RunningStack:
    """`continuum up` as a real process on the test servers: its URL, its environment and API keys."""

    url: str
    env: dict[str, str]
    keys: dict[str, str]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "continuum.cli", *args], env=self.env, capture_output=True, text=True, timeout=120
        )

    def key(self, role: str, name: str, subject: str | None = None) -> str:
        """A new key for `role` (a lab's or a partner's speaking for `subject`), made with the CLI: its secret."""
        made = self.cli(
            "keys", "create", "--role", role, "--name", name, "--json", *(["--subject", subject] * bool(subject))
        )
        assert made.returncode == 0, made.stderr
        return str(json.loads(made.stdout)["secret"])
