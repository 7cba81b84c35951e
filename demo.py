"""The cohort demo: synthetic clients driven through the public API as other services would drive them.

Everything it creates is real: commands go through HTTP with API keys, become workflow updates, and land in
the hash-chained log. Randomness (assessments, results, therapists' outcomes) is seeded. A second run on the
same data finds the cohort in the record and picks it up instead of opening another; after the summary the
simulated clinic keeps working (one bounded pass over what is due every care day) until it is stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import uuid
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import structlog
import typer

log = structlog.get_logger(__name__)

EPISODE_ID = re.compile(r"^DEMO-([0-9a-f]{4})-(\d{4})$")  # DEMO-<cohort>-<number>
PAGE_SIZE = 200  # the API's largest page of episodes
REQUEST_TIMEOUT = 60.0
CONCURRENT_REQUESTS = 32  # the old demo had one request in flight per episode; the worker is the bottleneck
REQUESTS_PER_PASS = 400  # reads and commands in one pass (or two per episode, if more); the rest waits
PASS_EVERY_DAYS = 1.0  # after the summary, a pass every care day: results and reviews are due within 3
MIN_PASS_SECONDS = 0.5  # and never more often than this
MAX_PASS_DAYS = 3.0  # one pass never draws for more care days than this (a resume after a long stop)
LAB_RESENDS = 3  # a result refused this many times is not sent again
MAX_REST_DOUBLINGS = 4  # an episode whose commands fail rests 2, 4, 8, then 16 passes
TOP = 5  # the summary lists this many step-up causes, and says so when there are more

# How soon the clinic acts, as a chance per care day, so the pace does not depend on how often it looks.
REVIEW_PER_DAY = 0.8  # therapists: most reviews are in before their due date
PLAN_PER_DAY = 0.9  # clinicians (a chance per care day): most plans are in within the day, some late
CONSENT_PER_DAY = 0.5  # a client signs the partner's form
REFERRAL_ANSWER_PER_DAY = 0.35  # partners accept or decline, later complete
FOLLOW_UP_PER_DAY = 0.75  # the outreach team reaches the client
DISCHARGE_PER_DAY = 0.004  # against medical advice, transferred, administrative
TRANSFER_PER_DAY = 0.01  # a client at intensive outpatient or outpatient moves to another center offering it
TRANSFERRED_LEVELS = ("intensive_outpatient", "outpatient")
PAYERS = ("payer-bcbs", "payer-aetna", "payer-medicaid")
AUTHORIZED_DAYS = 14  # what the utilization reviewer asks a payer for, per level and per extension
PAYER_ANSWER_PER_DAY = 0.7  # payers answer requests within a day or two
DENIED, PARTIAL = 0.12, 0.18  # of the payers' answers: denials, partial approvals (7 days); the rest approve
DENIAL_REASONS = ("not_medically_necessary", "insufficient_information", "level_not_covered", "out_of_network")
CONCURRENT_REVIEW_PER_DAY = 0.8  # the reviewer's concurrent review before an authorization ends
# Treatment services: a session's minutes and every how many care days one is held, by level (IOP in 4-hour
# blocks every other day, PHP 5 hours daily, outpatient an hour every third day); the 24-hour levels have none.
SESSIONS = {"intensive_outpatient": (240, 2), "partial_hospitalization": (300, 1), "outpatient": (60, 3)}
SESSIONS_PER_PASS = 3  # session days booked at most in one pass for one client (the rest are skipped)
SESSION_OUTCOMES = {"in_person": 62, "telehealth": 20, "excused": 8, "unexcused": 10}  # of 100 sessions


@dataclass
class DemoConfig:
    clients: int = 200
    days: float = 120.0  # simulated care days of the cohort before the summary
    day_seconds: float = 1.0
    positive_rate: float = 0.1
    seed: int = 7
    exit: bool = False


@dataclass
class Tally:
    """What this run of the demo did (the summary's other counts come from the record)."""

    opened: int = 0
    transfers: int = 0
    reviews: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    errors: Counter[int] = field(default_factory=Counter)
    unanswered: int = 0  # requests the API did not answer (they are tried again at a later pass)


class CohortSimulation:
    """Plays the EHR (opens and assesses), the labs (results), the therapists (review outcomes), clients
    signing consents, referral partners (answers) and the outreach team (follow-up outcomes)."""

    def __init__(
        self,
        api: httpx.AsyncClient,
        keys: dict[str, str],
        config: DemoConfig,
        facilities: dict[str, tuple[str, ...]] | None = None,
    ) -> None:
        self.api, self.keys, self.config = api, keys, config
        self.facilities = facilities or {}  # each facility the operator runs, with the levels it offers
        self.rng = random.Random(config.seed)
        self.cohort = uuid.uuid4().hex[:4]  # replaced by the record's when there is a cohort to resume
        self.episodes: list[str] = []  # every demo episode in the record, and those this run opens
        self.to_open: list[str] = []
        self.resumed = 0  # episodes already in the record when this run started
        self.started_at: datetime | None = None  # when the cohort was complete (its last episode opened)
        self.tally = Tally()
        self.refusals: Counter[str] = Counter()  # idempotency key -> times the command was refused (409, ...)
        self.seen: dict[str, int] = {}  # episode -> version last looked at with nothing left to do
        self.limit = asyncio.Semaphore(CONCURRENT_REQUESTS)  # the clinic's passes
        self.reads_limit = asyncio.Semaphore(CONCURRENT_REQUESTS)  # opening, listing, the summary: never behind a pass
        self.serving = False  # after the summary: a pass every PASS_EVERY_DAYS care days
        self.budget = REQUESTS_PER_PASS
        self.last_pass: float | None = None
        self.passes = 0
        self.failures: dict[str, int] = {}  # episode -> commands in a row that failed
        self.resting: dict[str, int] = {}  # episode -> the pass before which the clinic leaves it alone
        self.consents_until = (datetime.now(UTC) + timedelta(days=365)).isoformat()  # one body per retried key

    # -- requests ------------------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        role: str = "clinician",
        key: str | None = None,
        body: Any = None,
        params: dict[str, Any] | None = None,
        in_pass: bool = True,
    ) -> httpx.Response | None:
        """The API's answer, or None when it did not answer."""
        headers = {"Authorization": f"Bearer {self.keys[role]}"} | ({"Idempotency-Key": key} if key else {})
        async with self.limit if in_pass else self.reads_limit:
            try:
                response = await self.api.request(
                    method, path, json=body, params=params, headers=headers, timeout=REQUEST_TIMEOUT
                )
            except httpx.TransportError:
                self.tally.unanswered += 1
                return None
        self.tally.requests += 1
        if response.status_code >= 400:
            self.tally.errors[response.status_code] += 1
        return response

    async def _command(
        self, episode: str, what: str, body: Any, role: str = "clinician", key: str | None = None
    ) -> int | None:
        """POST /episodes/<episode>/<what>. A failure (no answer, or a server error) rests the episode for a while;
        a refusal (the command raced the clock: the record had the item before the workflow did) is sent again,
        when it is, under a fresh Idempotency-Key, since the API answers a repeated key with its first answer."""
        if self._resting(episode) or not self._spend():
            return None
        refused = self.refusals[key] if key else 0
        sent_key = f"{key}.{refused}" if key and refused else key
        response = await self._request("POST", f"/api/v1/episodes/{episode}/{what}", role=role, key=sent_key, body=body)
        if response is None or response.status_code >= 500:
            self._rest(episode)
            return None if response is None else response.status_code
        self.failures.pop(episode, None)
        if response.status_code >= 400 and key:
            self.refusals[key] += 1
        return response.status_code

    def _spend(self) -> bool:
        """One request of the pass's budget; False once it is spent (what is left waits for the next pass)."""
        if self.budget <= 0:
            return False
        self.budget -= 1
        return True

    def _resting(self, episode: str) -> bool:
        return self.resting.get(episode, 0) > self.passes

    def _rest(self, episode: str) -> None:
        """Leave a workflow that does not answer alone for 2, 4, 8, 16 passes, rather than add to its backlog."""
        failures = self.failures[episode] = self.failures.get(episode, 0) + 1
        self.resting[episode] = self.passes + 2 ** min(failures, MAX_REST_DOUBLINGS)

    async def _demo_episodes(self) -> dict[str, dict[str, Any]]:
        """Every demo episode in the record (the projection's summary of each), read page by page."""
        found: dict[str, dict[str, Any]] = {}
        page = 1
        while True:
            listing = await self._read("/api/v1/episodes", {"page": page, "page_size": PAGE_SIZE})
            found |= {e["episode_id"]: e for e in listing["items"] if EPISODE_ID.match(e["episode_id"])}
            if page * PAGE_SIZE >= listing["total"]:
                return found
            page += 1

    # -- the cohort ----------------------------------------------------------------------------------

    async def find_cohort(self) -> None:
        """Take up the demo episodes already in the record; open only the members of the cohort still missing."""
        existing = await self._demo_episodes()
        if existing:
            newest = max(existing.values(), key=lambda e: _instant(e["opened_at"]))
            self.cohort = EPISODE_ID.match(newest["episode_id"]).group(1)  # type: ignore[union-attr]
        self.resumed = len(existing)
        wanted = [f"DEMO-{self.cohort}-{n:04d}" for n in range(self.config.clients)]
        self.to_open = [e for e in wanted if e not in existing]
        self.episodes = sorted(set(existing) | set(wanted))
        self._note_start(existing)

    def _note_start(self, episodes: dict[str, dict[str, Any]]) -> None:
        opened = [_instant(e["opened_at"]) for i, e in episodes.items() if i.startswith(f"DEMO-{self.cohort}-")]
        self.started_at = max(opened, default=None)

    def age_in_days(self) -> float:
        """Care days since the cohort was complete (time stopped counts too: the episodes' clocks ran on)."""
        if self.started_at is None:
            return 0.0
        return (datetime.now(UTC) - self.started_at).total_seconds() / self.config.day_seconds

    async def open_cohort(self) -> None:
        async def open_one(episode: str) -> None:
            ratings = [self.rng.choices([0, 1, 2, 3, 4], weights=[3, 4, 3, 2, 1])[0] for _ in range(6)]
            body = {
                "episode_id": episode,
                "client_id": f"client-{episode.lower()}",
                "assessment": {"ratings": ratings, "assessed_by": "clin-demo"},
            }
            if len(self.facilities) > 1:  # each client opens at one of the operator's centers
                body["facility_id"] = self.rng.choice(sorted(self.facilities))
            response = await self._request("POST", "/api/v1/episodes", body=body, key=f"open-{episode}", in_pass=False)
            if response is not None and response.status_code == 201:
                self.tally.opened += 1

        await asyncio.gather(*(open_one(e) for e in self.to_open))
        self.to_open = []
        self._note_start(await self._demo_episodes())

    # -- the clinic's work ---------------------------------------------------------------------------

    def _chance(self, per_day: float, days: float) -> bool:
        chance: float = 1 - (1 - per_day) ** days
        return self.rng.random() < chance

    async def tend(self) -> None:
        """One pass over what is due, at most REQUESTS_PER_PASS requests: discharge now and then, and look into
        the episodes that changed since the last look or still had something waiting; results, review outcomes,
        consents, referral answers and follow-up outcomes go in as the chances per care day say."""
        now = asyncio.get_running_loop().time()
        since = MAX_PASS_DAYS if self.last_pass is None else (now - self.last_pass) / self.config.day_seconds
        days = min(since, MAX_PASS_DAYS)
        self.last_pass, self.budget = now, max(REQUESTS_PER_PASS, 2 * len(self.episodes))
        self.passes += 1
        listed = [e for e in (await self._demo_episodes()).values() if e["status"] != "closed"]
        self.episodes = sorted(set(self.episodes) | {e["episode_id"] for e in listed})
        await asyncio.gather(*(self._visit(e, days) for e in listed))

    async def _visit(self, summary: dict[str, Any], days: float) -> None:
        episode = summary["episode_id"]
        if self._resting(episode):
            return
        if summary["status"] == "active" and self._chance(DISCHARGE_PER_DAY, days):
            reason = self.rng.choice(["against_medical_advice", "transferred", "administrative"])
            if await self._command(episode, "discharge", {"reason": reason}) == 200:
                return
        if self.seen.get(episode) != summary["version"]:
            await self._tend(episode, days)

    async def _tend(self, episode: str, days: float) -> None:
        if not self._spend():
            return
        response = await self._request("GET", f"/api/v1/episodes/{episode}", role="director")
        if response is None or response.status_code != 200:
            return
        view = response.json()
        state = view["state"]
        waiting = False  # something the clinic may still act on: look again at the next pass
        if state["status"] != "closed":
            for test in view["open_tests"]:
                if self.refusals[f"result-{test['test_id']}"] < LAB_RESENDS:
                    waiting = True
                    await self._report(episode, test)
            waiting |= await self._aftercare(episode, state, days)
            waiting |= await self._review(episode, view["pending_review"], days)
            waiting |= await self._plan(episode, state, days)
            waiting |= await self._sessions(episode, state)
            await self._transfer(episode, state, days)
            waiting |= await self._utilization(episode, state, days)
        if not waiting:
            self.seen[episode] = state["version"]

    async def _transfer(self, episode: str, state: dict[str, Any], days: float) -> None:
        """Now and then a client in intensive outpatient or outpatient moves to another center offering the level
        (closer to home); from then on that center's policy decides."""
        level, at = state.get("level"), state.get("facility_id")
        if level not in TRANSFERRED_LEVELS or not self._chance(TRANSFER_PER_DAY, days):
            return
        elsewhere = sorted(f for f, levels in self.facilities.items() if f != at and level in levels)
        if elsewhere:
            body = {"facility_id": self.rng.choice(elsewhere), "reason": "closer to home", "clinician": "clin-demo"}
            if await self._command(episode, "transfer", body, key=f"transfer-{episode}-{state['version']}") == 200:
                self.tally.transfers += 1

    async def _utilization(self, episode: str, state: dict[str, Any], days: float) -> bool:
        """The utilization reviewer asks a payer to authorize the client's level (again, once, after a denial),
        records the payer's answer (most approve; some approve 7 days only; a few deny, with a coded reason), and
        before an approval ends, records a concurrent review and the payer's extension."""
        level = state.get("level")
        if state["status"] != "active" or level in (None, "aftercare"):
            return False
        asked = [a for a in state.get("authorizations", []) if a["level"] == level]
        latest = asked[-1] if asked else None
        if latest is None or (latest["status"] == "denied" and len(asked) < 2):
            payer = self.rng.choice(PAYERS)
            body = {"payer": payer, "level": level, "requested_units": AUTHORIZED_DAYS, "requested_by": "ur-demo"}
            key = f"authorize-{episode}-{level}-{len(asked)}"
            await self._command(episode, "authorizations", body, role="utilization_reviewer", key=key)
            return True
        authorization = latest["authorization_id"]
        if latest["status"] == "requested":
            if self._chance(PAYER_ANSWER_PER_DAY, days):
                await self._command(
                    episode,
                    f"authorizations/{authorization}/decisions",
                    self._payer_answer(authorization),
                    role="utilization_reviewer",
                    key=f"decide-{authorization}",
                )
            return True
        pending = latest.get("concurrent_review")
        if pending is None or not self._chance(CONCURRENT_REVIEW_PER_DAY, days):
            return pending is not None
        review = {"outcome": "extension_requested", "reviewed_by": "ur-demo"}
        round_ = latest["extensions"]
        path = f"authorizations/{authorization}"
        await self._command(
            episode,
            f"{path}/concurrent-reviews",
            review,
            role="utilization_reviewer",
            key=f"cr-{authorization}-{round_}",
        )
        end = _instant(latest["end"]) + timedelta(seconds=AUTHORIZED_DAYS * self.config.day_seconds)
        extension = {"decision": "extended", "decided_by": "ur-demo", "end": end.isoformat(), "units": AUTHORIZED_DAYS}
        await self._command(
            episode, f"{path}/decisions", extension, role="utilization_reviewer", key=f"extend-{authorization}-{round_}"
        )
        return True

    def _payer_answer(self, authorization: str) -> dict[str, Any]:
        roll = self.rng.random()
        if roll < DENIED:
            return {"decision": "denied", "decided_by": "ur-demo", "denial_reason": self.rng.choice(DENIAL_REASONS)}
        approved = AUTHORIZED_DAYS // 2 if roll < DENIED + PARTIAL else AUTHORIZED_DAYS
        start = datetime.now(UTC)
        return {
            "decision": "partially_approved" if approved < AUTHORIZED_DAYS else "approved",
            "decided_by": "ur-demo",
            "authorization_number": f"PA-{authorization}",
            "start": start.isoformat(),
            "end": (start + timedelta(seconds=approved * self.config.day_seconds)).isoformat(),
            "units": approved,
        }

    async def _review(self, episode: str, review: dict[str, Any] | None, days: float) -> bool:
        if not review:
            return False
        if self._chance(REVIEW_PER_DAY, days):
            outcome = self.rng.choices(["goals_met", "extend", "step_up"], weights=[80, 15, 5])[0]
            body: dict[str, Any] = {"outcome": outcome, "therapist": "ther-demo"}
            if outcome == "extend":
                body["next_review_in_days"] = 7
            what = f"reviews/{review['review_id']}/outcome"
            if await self._command(episode, what, body, key=f"{episode}-{review['review_id']}-{outcome}") == 200:
                self.tally.reviews[outcome] += 1
        return True

    async def _plan(self, episode: str, state: dict[str, Any], days: float) -> bool:
        """The initial treatment plan once it is due, and its review once that falls due (often after the clock
        escalated it: the dashboard lists the overdue ones meanwhile)."""
        plan, due = state.get("plan"), state.get("plan_due_at")
        if due is None or (plan is not None and _instant(due) > datetime.now(UTC)):
            return False
        if self._chance(PLAN_PER_DAY, days):
            body: dict[str, Any] = {
                "problems": [{"dimension": 5, "description": "relapse potential"}],
                "goals": [{"goal_id": "g1", "dimension": 5, "description": "a relapse-prevention plan in use"}],
                "signed_by": "clin-demo",
                "client_signed": self.rng.random() < 0.9,
            }
            if plan is None:
                await self._command(episode, "treatment-plan", body, key=f"{episode}-plan")
            else:
                body["review_id"] = review_id = f"pr-{plan['reviews'] + 1}"
                await self._command(episode, "treatment-plan/reviews", body, key=f"{episode}-{review_id}")
        return True

    async def _aftercare(self, episode: str, state: dict[str, Any], days: float) -> bool:
        waiting = False
        for referral in state.get("referrals", []):
            rid, status, recipient = referral["referral_id"], referral["status"], referral["recipient"]
            if status == "awaiting_consent":  # the client signs the partner's form
                waiting = True
                if self._chance(CONSENT_PER_DAY, days):
                    body = {
                        "consent_id": f"consent-{rid}",
                        "recipient": recipient,
                        "purpose": "aftercare_referral",
                        "expires_at": self.consents_until,
                        "recorded_by": "clin-demo",
                    }
                    await self._command(episode, "consents", body, key=f"consent-{rid}")
            elif status in ("issued", "accepted"):
                role = f"partner:{recipient}" if recipient else "clinician"
                if role not in self.keys:
                    continue
                waiting = True
                if self._chance(REFERRAL_ANSWER_PER_DAY, days):
                    answer = self.rng.choices(["accepted", "declined"], weights=[75, 25])[0]
                    answer = "completed" if status == "accepted" else answer
                    body = {"status": answer} if recipient else {"status": answer, "changed_by": "clin-demo"}
                    await self._command(episode, f"referrals/{rid}/status", body, role=role, key=f"{rid}-{answer}")
        for follow_up in state.get("follow_ups", []):
            if follow_up["requested_at"] and not follow_up["outcome"]:
                waiting = True
                if self._chance(FOLLOW_UP_PER_DAY, days):
                    outcome = self.rng.choices(["abstinent", "using", "not_reached"], weights=[75, 10, 15])[0]
                    what = f"follow-ups/{follow_up['follow_up_id']}/outcome"
                    body = {"outcome": outcome, "recorded_by": "outreach-demo"}
                    await self._command(episode, what, body, key=f"{follow_up['follow_up_id']}-outcome")
        return waiting

    async def _sessions(self, episode: str, state: dict[str, Any]) -> bool:
        """The scheduler books the level's session on its care days; the clinic records, for each session that
        has begun, whether the client came (in person or by telehealth) or missed it (excused or not)."""
        if state["status"] != "active" or state.get("level") not in SESSIONS:
            return False
        for session in state.get("sessions", []):
            if session["status"] == "scheduled" and _instant(session["starts_at"]) <= datetime.now(UTC):
                await self._session_outcome(episode, session)
        minutes, every = SESSIONS[state["level"]]
        opened, now = _instant(state["opened_at"]), datetime.now(UTC)
        care_day = int((now - opened).total_seconds() / self.config.day_seconds)
        sessions = [s["session_id"] for s in state.get("sessions", [])]
        booked = [int(sid.rsplit(".s", 1)[1]) for sid in sessions if sid.startswith(f"{episode}.s")]
        # The scheduler sends the session days since the last one booked (a pass may come later than a care day).
        due = range(max(booked, default=care_day - every) + every, care_day + 1, every)
        for day in list(due)[-SESSIONS_PER_PASS:]:
            session_id = f"{episode}.s{day}"
            body = {
                "session_id": session_id,
                "kind": "group" if day % 4 else "individual",
                "starts_at": (opened + timedelta(seconds=self.config.day_seconds * day)).isoformat(),
                "minutes": minutes,
                "scheduled_by": "sched-demo",
            }
            await self._command(episode, "sessions", body, key=f"book-{session_id}")
        return True  # a client at these levels always has a session coming

    async def _session_outcome(self, episode: str, session: dict[str, Any]) -> None:
        draw = random.Random(f"{self.config.seed}:{session['session_id']}")  # a resend says the same
        outcome = draw.choices(list(SESSION_OUTCOMES), weights=list(SESSION_OUTCOMES.values()))[0]
        sid = session["session_id"]
        if outcome in ("in_person", "telehealth"):
            minutes = session["minutes"] if draw.random() < 0.85 else session["minutes"] * 3 // 4  # some leave early
            body: dict[str, Any] = {"minutes": minutes, "modality": outcome, "recorded_by": "clin-demo"}
            await self._command(episode, f"sessions/{sid}/attendance", body, key=f"attended-{sid}")
        else:
            excused = outcome == "excused"
            reason = draw.choice(["illness", "transportation", "childcare", "work"]) if excused else "no_show"
            body = {"excused": excused, "reason": reason, "recorded_by": "clin-demo"}
            await self._command(episode, f"sessions/{sid}/missed", body, key=f"missed-{sid}")

    async def _report(self, episode: str, test: dict[str, Any]) -> None:
        """The lab's result: one per test (drawn from the test's own seed, so a resend says the same)."""
        draw = random.Random(f"{self.config.seed}:{test['test_id']}")
        roll = draw.random()
        if roll < self.config.positive_rate:
            result, substances = "positive", [draw.choice(["fentanyl", "cocaine", "alcohol", "methamphetamine"])]
        elif roll < self.config.positive_rate + 0.03:
            result, substances = draw.choice(["dilute", "refused", "no_show"]), []
        else:
            result, substances = "negative", []
        body = {
            "result": result,
            "method": "confirmed",
            "collected_at": test["ordered_at"],
            "lab_reference": f"L-{test['test_id']}",
            "substances": substances,
        }
        own_lab = f"lab:{test.get('lab_id')}"  # the key of the lab the test was sent to (a center's own lab)
        lab = own_lab if own_lab in self.keys else "lab"
        await self._command(
            episode, f"tests/{test['test_id']}/results", body, role=lab, key=f"result-{test['test_id']}"
        )

    def pass_interval(self) -> float:
        """Real seconds between passes: twice a care day (at most 1 s) before the summary, then once a care day
        (at least 0.5 s apart)."""
        if self.serving:
            return max(PASS_EVERY_DAYS * self.config.day_seconds, MIN_PASS_SECONDS)
        return min(self.config.day_seconds / 2, 1.0)

    async def keep_working(self, stop: asyncio.Event, settle: asyncio.Event) -> None:
        """Pass after pass until the demo stops (which cancels the pass under way) or `settle` is set (which lets
        it finish, so that no request is left in flight)."""
        while not (stop.is_set() or settle.is_set()):
            await self.tend_unless_stopped(stop)
            await _until_set((stop, settle), self.pass_interval())

    async def tend_unless_stopped(self, stop: asyncio.Event) -> None:
        """One pass, cancelled when the demo is stopped; a pass that fails is logged and the next one tries again."""
        try:
            await _unless_stopped(self.tend(), stop)
        except Exception as error:  # noqa: BLE001 (the API is serving a person: the demo must not take it down)
            log.warning("demo.pass_failed", error=f"{type(error).__name__}: {error}"[:300])

    # -- the summary ---------------------------------------------------------------------------------

    async def _read(self, path: str, params: dict[str, Any] | None = None) -> Any:
        response = await self._request("GET", path, role="director", params=params, in_pass=False)
        if response is None or response.status_code != 200:
            raise RuntimeError(f"the API did not answer {path} ({response.status_code if response else 'no answer'})")
        return response.json()

    async def summary(self) -> dict[str, Any]:
        """The cohort as the record has it now, with what this run did."""

        async def state_of(episode: str) -> dict[str, Any] | None:
            response = await self._request("GET", f"/api/v1/episodes/{episode}", role="director", in_pass=False)
            return response.json()["state"] if response is not None and response.status_code == 200 else None

        states = [s for s in await asyncio.gather(*(state_of(e) for e in self.episodes)) if s is not None]
        census = await self._read("/api/v1/census")
        alerts = await self._read("/api/v1/alerts", {"days": 365})
        causes = Counter(s["cause"].split(";")[0].split(": ", 1)[-1][:60] for s in alerts["step_ups"])
        answered = [t["confirmed"] or t["presumptive"] for s in states for t in s["tests"]]
        results = Counter(a["result"] for a in answered if a)
        return {
            "episodes": len(states),
            "opened": self.tally.opened,
            "resumed": self.resumed,
            "census": census,
            "transfers": self.tally.transfers,
            "step_ups": len(alerts["step_ups"]),
            "step_up_causes": causes.most_common(TOP),
            "step_up_cause_kinds": len(causes),
            "results": dict(results),
            "reviews_completed": sum(s["reviews_completed"] for s in states),
            "reviews": dict(self.tally.reviews),
            "discharges": dict(Counter(s["discharge_reason"] for s in states if s["status"] == "closed")),
            "referrals": dict(Counter(r["status"] for s in states for r in s["referrals"])),
            "follow_ups": dict(Counter(f["outcome"] for s in states for f in s["follow_ups"] if f["outcome"])),
            "consents": sum(len(s["consents"]) for s in states),
            "authorizations": dict(Counter(a["status"] for s in states for a in s.get("authorizations", []))),
            "extensions": sum(a["extensions"] for s in states for a in s.get("authorizations", [])),
            "sessions": dict(Counter(_what_became_of(x) for s in states for x in s.get("sessions", []))),
            "below_minimum_weeks": sum(1 for s in states for f in s["flags"] if f.startswith("below_minimum_hours:")),
            "unanswered_referrals": len(alerts["unanswered_referrals"]),
            "overdue_reviews": len(alerts["overdue_reviews"]),
            "overdue_plans": len(alerts["overdue_plans"]),
            "plans": sum(1 for s in states if s.get("plan")),
            "missing_results": len(alerts["missing_results"]),
            "requests": self.tally.requests,
            "errors": dict(self.tally.errors),
            "unanswered": self.tally.unanswered,
            "resting": sum(1 for e in self.resting if self._resting(e)),
        }


def _what_became_of(session: dict[str, Any]) -> str:
    if session["status"] == "attended":
        return f"attended {session['modality']}"
    if session["status"] == "missed":
        return "missed excused" if session["excused"] else "missed unexcused"
    return str(session["status"])


def _days(days: float) -> str:
    return "care day" if days == 1 else f"{days:g} care days"


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def _until_set(events: tuple[asyncio.Event, ...], seconds: float) -> None:
    """Wait until one of `events` is set, or `seconds` have passed."""
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


async def _unless_stopped(work: Coroutine[Any, Any, None], stop: asyncio.Event) -> bool:
    """Run `work` until it ends or the demo is stopped, which cancels it; True if it ended by itself."""
    task = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not task.done():
            task.cancel()
            await asyncio.wait({task})  # it closes its connections; its CancelledError stays inside
    if task.cancelled():
        return False
    task.result()  # its error, if it had one
    return True


# -- the demo as `continuum demo` runs it ------------------------------------------------------------


def create_keys(
    store: Any, lab_id: str, directory_text: str, run: str, other_labs: tuple[str, ...] = ()
) -> dict[str, str]:
    """This run's API keys, as each service would hold its own (secrets are kept hashed, so a run makes new ones)."""
    from continuum.access import ApiKeyStore, Role
    from continuum.domain.directory import load_directory

    keys_store = ApiKeyStore(store.engine)
    keys = {
        "clinician": keys_store.create(f"demo-ehr-{run}", Role.CLINICIAN)[1],
        "lab": keys_store.create(f"demo-lab-{run}", Role.LAB, lab_id)[1],
        "director": keys_store.create(f"demo-director-{run}", Role.DIRECTOR)[1],
        "utilization_reviewer": keys_store.create(f"demo-ur-{run}", Role.UTILIZATION_REVIEWER)[1],
    }
    for lab in sorted(set(other_labs) - {lab_id}):  # a center's own lab answers for its tests
        keys[f"lab:{lab}"] = keys_store.create(f"demo-{lab}-{run}", Role.LAB, lab)[1]
    partners = sorted({r.partner for r in load_directory(directory_text).resources if r.partner})
    for partner in partners:  # each referral partner answers with a key of its own
        keys[f"partner:{partner}"] = keys_store.create(f"demo-{partner}-{run}", Role.PARTNER, partner)[1]
    return keys


async def run_demo(
    store: Any,
    base: str,
    config: DemoConfig,
    stop: asyncio.Event,
    *,
    lab_id: str,
    directory_text: str,
    temporal_ui_url: str | None,
    facilities: dict[str, tuple[str, ...]] | None = None,
    labs: tuple[str, ...] = (),
) -> None:
    """Open the cohort (or take it up from the record), play its care days with a progress bar, print the
    summary, then keep the clinic working until `stop` is set (or set it, with --exit)."""
    from rich.progress import Progress

    from continuum.eventlog.verify import verify_log
    from continuum.runtime.logs import log_file

    keys = await asyncio.to_thread(create_keys, store, lab_id, directory_text, uuid.uuid4().hex[:4], labs)
    async with httpx.AsyncClient(base_url=base) as api:
        if not await _api_ready(api, stop):
            return
        simulation = CohortSimulation(api, keys, config, facilities)
        await simulation.find_cohort()
        if simulation.to_open:
            with Progress(transient=True) as progress:
                progress.add_task(f"opening {len(simulation.to_open)} episodes", total=None)
                if not await _unless_stopped(simulation.open_cohort(), stop):
                    return
        settle = asyncio.Event()  # with --exit: the pass under way finishes and no other starts
        clinic = asyncio.create_task(simulation.keep_working(stop, settle))  # the summary never waits for a pass
        try:
            if simulation.age_in_days() < config.days:
                with Progress(transient=True) as progress:
                    days = progress.add_task("simulated care days", total=config.days)
                    while (age := simulation.age_in_days()) < config.days and not stop.is_set():
                        progress.update(days, completed=age)
                        await _until_set((stop,), min(config.day_seconds / 2, 0.5))
            if stop.is_set():
                return
            summary = await simulation.summary()
            report = await asyncio.to_thread(verify_log, store.engine)
            print_summary(summary, report, base, temporal_ui_url, log_file())
            simulation.serving = True
            if config.exit:
                settle.set()
                await clinic
                stop.set()
                return
            typer.echo(
                f"Still serving; the clinic works on (a look every {_days(PASS_EVERY_DAYS)}). Press Ctrl-C to stop."
            )
            await clinic
        finally:
            clinic.cancel()
            await asyncio.wait({clinic})


async def _api_ready(api: httpx.AsyncClient, stop: asyncio.Event) -> bool:
    for _ in range(300):  # the API starts alongside us
        with contextlib.suppress(httpx.TransportError):
            if (await api.get("/healthz", timeout=2)).status_code == 200:
                return True
        await _until_set((stop,), 0.1)
        if stop.is_set():
            return False
    raise RuntimeError(f"the API at {api.base_url} did not answer /healthz")


def print_summary(
    summary: dict[str, Any], report: Any, base: str, temporal_ui_url: str | None, log_path: Path | None = None
) -> None:
    """The summary as a report: counts in words, lists cut at TOP saying so, then where to look next."""
    if summary["resumed"]:
        typer.echo(
            f"\nCohort: {summary['episodes']} episodes, resumed from the record ({summary['opened']} opened now)"
        )
    else:
        typer.echo(f"\nCohort: {summary['opened']} episodes opened")
    typer.echo(_table(summary["census"]["by_level_and_status"], ["level", "status", "episodes"]))
    by_facility = summary["census"].get("by_facility", [])
    if len(by_facility) > 1:
        rows = [
            {"facility": f["facility"], **level}
            for f in by_facility
            for level in f["levels"]
            if level["occupancy"] or level["waitlisted"]
        ]
        typer.echo(f"\nBy facility ({len(by_facility)} centers; transfers this run: {summary['transfers']}):")
        typer.echo(_table(rows, ["facility", "level", "occupancy", "capacity", "waitlisted"]))
    causes, kinds = summary["step_up_causes"], summary["step_up_cause_kinds"]
    shown = f"; top {len(causes)} of {kinds} causes" if kinds > len(causes) else (": by cause" if causes else "")
    typer.echo(f"\nstep-ups:         {summary['step_ups']}{shown}")
    for cause, count in causes:
        typer.echo(f"  {count:5d}  {cause}")
    typer.echo(f"results reported: {_counts(summary['results'], 'none yet')}")
    this_run = _counts(summary["reviews"], "none")
    typer.echo(f"review outcomes:  {summary['reviews_completed']} recorded (this run: {this_run})")
    typer.echo(f"discharges:       {_counts(summary['discharges'], 'none')}")
    typer.echo(f"referrals:        {_counts(summary['referrals'], 'none')}; consents recorded: {summary['consents']}")
    typer.echo(f"follow-ups:       {_counts(summary['follow_ups'], 'none yet')}")
    authorizations = _counts(summary["authorizations"], "none yet")
    typer.echo(f"authorizations:   {authorizations}; extensions: {summary['extensions']}")
    typer.echo(f"treatment plans:  {summary['plans']} on record")
    typer.echo(f"sessions:         {_counts(summary['sessions'], 'none yet')}")
    typer.echo(f"attendance:       {summary['below_minimum_weeks']} care weeks below their level's minimum (flagged)")
    typer.echo(
        f"open alerts:      {summary['overdue_reviews']} overdue reviews, {summary['missing_results']} missing results,"
        f" {summary['unanswered_referrals']} unanswered referrals, {summary['overdue_plans']} overdue plans"
    )
    unanswered = f", {summary['unanswered']} unanswered" if summary["unanswered"] else ""
    resting = f"; {summary['resting']} episodes not answering, left alone a while" if summary["resting"] else ""
    typer.echo(f"this run:         {summary['requests']} requests{unanswered}{resting}")
    refused = {status: n for status, n in summary["errors"].items() if status < 500}
    failed = {status: n for status, n in summary["errors"].items() if status >= 500}
    if refused:
        typer.echo(f"refused requests: {_statuses(refused)} (commands that raced the clock are refused with a reason)")
    if failed:
        typer.echo(f"failed requests:  {_statuses(failed)} (the clinic tries them again at a later pass)")
    typer.echo(f"event log:        {report.events_checked} events, chain {'intact' if report.ok else 'BROKEN'}")
    typer.echo(f"\nAPI               {base}/api/v1   (docs {base}/docs)")
    typer.echo(
        f"Dashboard         {base}/dashboard   (director key: continuum keys create --role director --name NAME)"
    )
    if temporal_ui_url:
        typer.echo(f"Temporal UI       {temporal_ui_url}")
    if log_path is not None:
        typer.echo(f"Full log          {log_path}")


def _counts(counts: dict[str, int], empty: str) -> str:
    """`{'negative': 3, 'positive': 1}` as "4: 3 negative, 1 positive", the largest first."""
    if not counts:
        return empty
    parts = ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    return f"{sum(counts.values())}: {parts}"


def _statuses(counts: dict[int, int]) -> str:
    return ", ".join(f"{n} answered {status}" for status, n in sorted(counts.items()))


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    cells = [["-" if row.get(c) is None else str(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)
