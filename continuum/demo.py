"""The cohort simulation: synthetic clients driven through the public API as other services would drive them.

Everything it creates is real: commands go through HTTP with API keys, become workflow updates, and land in
the hash-chained log. Randomness (assessments, results, therapists' outcomes) is seeded, so a run can be
repeated.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx


@dataclass
class DemoConfig:
    clients: int = 200
    days: float = 120.0  # simulated care days to run before the summary
    day_seconds: float = 1.0
    positive_rate: float = 0.1
    seed: int = 7
    exit: bool = False


@dataclass
class Tally:
    opened: int = 0
    results: Counter[str] = field(default_factory=Counter)
    reviews: Counter[str] = field(default_factory=Counter)
    discharges: Counter[str] = field(default_factory=Counter)
    referrals: Counter[str] = field(default_factory=Counter)
    follow_ups: Counter[str] = field(default_factory=Counter)
    consents: int = 0
    errors: Counter[int] = field(default_factory=Counter)


class CohortSimulation:
    """Plays the EHR (opens and assesses), the labs (results), the therapists (review outcomes), clients
    signing consents, referral partners (answers) and the outreach team (follow-up outcomes)."""

    def __init__(self, api: httpx.AsyncClient, keys: dict[str, str], config: DemoConfig, run: str) -> None:
        self.api, self.keys, self.config = api, keys, config
        self.rng = random.Random(config.seed)
        self.run = run
        self.episodes = [f"DEMO-{run}-{n:04d}" for n in range(config.clients)]
        self.tally = Tally()
        self.reported: set[str] = set()
        self.consents_until = (datetime.now(UTC) + timedelta(days=365)).isoformat()  # one body per retried key

    def _auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}

    async def _post(self, path: str, body: Any, role: str = "clinician", key: str | None = None) -> httpx.Response:
        headers = self._auth(role) | ({"Idempotency-Key": key} if key else {})
        response = await self.api.post(path, json=body, headers=headers, timeout=60)
        if response.status_code >= 400:
            self.tally.errors[response.status_code] += 1
        return response

    async def open_cohort(self) -> None:
        async def open_one(episode: str) -> None:
            ratings = [self.rng.choices([0, 1, 2, 3, 4], weights=[3, 4, 3, 2, 1])[0] for _ in range(6)]
            body = {"episode_id": episode, "client_id": f"client-{episode.lower()}",
                    "assessment": {"ratings": ratings, "assessed_by": "clin-demo"}}  # fmt: skip
            if (await self._post("/api/v1/episodes", body, key=f"open-{episode}")).status_code == 201:
                self.tally.opened += 1

        await asyncio.gather(*(open_one(e) for e in self.episodes))

    async def step(self) -> None:
        """One look at every episode: answer pending reviews, report results of open tests, now and then discharge."""
        await asyncio.gather(*(self._tend(e) for e in self.episodes))

    async def _tend(self, episode: str) -> None:
        response = await self.api.get(f"/api/v1/episodes/{episode}", headers=self._auth("director"), timeout=60)
        if response.status_code != 200:
            return
        view = response.json()
        state = view["state"]
        if state["status"] == "closed":
            return
        for test in view["open_tests"]:
            if test["test_id"] not in self.reported:
                await self._report(episode, test)
        await self._aftercare(episode, state)
        review = view["pending_review"]
        if review and self.rng.random() < 0.6:
            outcome = self.rng.choices(["goals_met", "extend", "step_up"], weights=[80, 15, 5])[0]
            body: dict[str, Any] = {"outcome": outcome, "therapist": "ther-demo"}
            if outcome == "extend":
                body["next_review_in_days"] = 7
            path = f"/api/v1/episodes/{episode}/reviews/{review['review_id']}/outcome"
            if (await self._post(path, body, key=f"{episode}-{review['review_id']}-{outcome}")).status_code == 200:
                self.tally.reviews[outcome] += 1
        elif state["status"] == "active" and self.rng.random() < 0.002:
            reason = self.rng.choice(["against_medical_advice", "transferred", "administrative"])
            if (await self._post(f"/api/v1/episodes/{episode}/discharge", {"reason": reason})).status_code == 200:
                self.tally.discharges[reason] += 1

    async def _aftercare(self, episode: str, state: dict[str, Any]) -> None:
        for referral in state.get("referrals", []):
            rid, status = referral["referral_id"], referral["status"]
            if status == "awaiting_consent" and self.rng.random() < 0.3:  # the client signs the partner's form
                body = {"consent_id": f"consent-{rid}", "recipient": referral["recipient"], "purpose": "aftercare_referral",
                        "expires_at": self.consents_until, "recorded_by": "clin-demo"}  # fmt: skip
                if (await self._post(f"/api/v1/episodes/{episode}/consents", body, key=f"consent-{rid}")).status_code == 200:
                    self.tally.consents += 1
            elif status in ("issued", "accepted") and self.rng.random() < 0.2:
                answer = "completed" if status == "accepted" else self.rng.choices(["accepted", "declined"], weights=[75, 25])[0]
                role = f"partner:{referral['recipient']}" if referral["recipient"] else "clinician"
                body = {"status": answer} if referral["recipient"] else {"status": answer, "changed_by": "clin-demo"}
                path = f"/api/v1/episodes/{episode}/referrals/{rid}/status"
                if role in self.keys and (await self._post(path, body, role=role, key=f"{rid}-{answer}")).status_code == 200:
                    self.tally.referrals[answer] += 1
        for follow_up in state.get("follow_ups", []):
            if follow_up["requested_at"] and not follow_up["outcome"] and self.rng.random() < 0.5:
                outcome = self.rng.choices(["abstinent", "using", "not_reached"], weights=[75, 10, 15])[0]
                path = f"/api/v1/episodes/{episode}/follow-ups/{follow_up['follow_up_id']}/outcome"
                body = {"outcome": outcome, "recorded_by": "outreach-demo"}
                if (await self._post(path, body, key=f"{follow_up['follow_up_id']}-outcome")).status_code == 200:
                    self.tally.follow_ups[outcome] += 1

    async def _report(self, episode: str, test: dict[str, Any]) -> None:
        self.reported.add(test["test_id"])
        roll = self.rng.random()
        if roll < self.config.positive_rate:
            result, substances = "positive", [self.rng.choice(["fentanyl", "cocaine", "alcohol", "methamphetamine"])]
        elif roll < self.config.positive_rate + 0.03:
            result, substances = self.rng.choice(["dilute", "refused", "no_show"]), []
        else:
            result, substances = "negative", []
        body = {"result": result, "method": "confirmed", "collected_at": datetime.now(UTC).isoformat(),
                "lab_reference": f"L-{test['test_id']}", "substances": substances}  # fmt: skip
        path = f"/api/v1/episodes/{episode}/tests/{test['test_id']}/results"
        if (await self._post(path, body, role="lab", key=f"result-{test['test_id']}")).status_code == 200:
            self.tally.results[result] += 1

    async def summary(self) -> dict[str, Any]:
        census = (await self.api.get("/api/v1/census", headers=self._auth("director"), timeout=60)).json()
        alerts = (await self.api.get("/api/v1/alerts", params={"days": 365}, headers=self._auth("director"), timeout=60)).json()
        causes = Counter(s["cause"].split(";")[0].split(": ", 1)[-1][:60] for s in alerts["step_ups"])
        return {
            "opened": self.tally.opened,
            "census": census,
            "step_ups": len(alerts["step_ups"]),
            "step_up_causes": causes.most_common(5),
            "results": dict(self.tally.results),
            "reviews": dict(self.tally.reviews),
            "discharges": dict(self.tally.discharges),
            "referrals": dict(self.tally.referrals),
            "follow_ups": dict(self.tally.follow_ups),
            "consents": self.tally.consents,
            "unanswered_referrals": len(alerts["unanswered_referrals"]),
            "overdue_reviews": len(alerts["overdue_reviews"]),
            "missing_results": len(alerts["missing_results"]),
            "errors": dict(self.tally.errors),
        }
