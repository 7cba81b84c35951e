"""Answers that are true: a command sent the moment the clock makes it valid is judged on a state that holds
everything already on record (or due by now), so it is never refused while the reads say it is allowed.

Real Temporal dev server and PostgreSQL, a compressed care day, several episodes at once. Two races, each
tried a few hundred times in all:
- *seen*: the read model shows a review pending (the clock's ReviewRequested is committed), and the outcome
  is sent at once, while the workflow may not have folded that event yet;
- *due*: the outcome is sent at the instant the review falls due by the stay clock, before the workflow's
  timer has necessarily fired; the review id is the one the clock gives it (`review-<version + 1>`).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from temporalio.testing import WorkflowEnvironment

from continuum.domain.commands import OpenEpisode, RecordAssessment, RecordReviewOutcome
from continuum.domain.episode import ReviewOutcome
from continuum.domain.errors import CommandRejected
from continuum.episodes import EpisodeCommands
from continuum.eventlog.store import PostgresEventStore
from tests.integration.episodes import WITHOUT_TESTING, episode_worker, meta, projected_state

MILD = (1, 1, 1, 1, 1, 1)  # intensive outpatient
DAY = timedelta(seconds=0.05)
EPISODES = 6
REVIEWS_EACH = 40  # 240 tries in all, half of each race
POLICY = WITHOUT_TESTING.replace("intensive_outpatient = 30", "intensive_outpatient = 1", 1)


async def _drive(episodes: EpisodeCommands, store: PostgresEventStore, episode: str) -> tuple[int, list[str]]:
    """Answer REVIEWS_EACH reviews of one episode, alternating the two races; returns (answered, false refusals)."""
    await episodes.open(meta(), OpenEpisode(episode, f"client-{episode}", assessment=RecordAssessment(MILD, "clin-1")))
    answered, refusals = 0, []
    for attempt in range(REVIEWS_EACH * 4):  # a bound: a refusal of the *due* kind may need a second try
        if answered == REVIEWS_EACH:
            break
        state = await asyncio.to_thread(projected_state, store, episode)
        pending = state["pending_review"]
        if attempt % 2 == 0 and pending is None:  # *due*: send at the instant the stay clock says
            due = datetime.fromisoformat(state["level_since"]) + DAY * state["review_after_days"]
            due += timedelta(seconds=state["stay_held_seconds"])
            wait = (due - datetime.now(UTC)).total_seconds()
            if wait > 0:
                await asyncio.sleep(wait)
            review_id = f"review-{state['version'] + 1}"
            race = "due"
        else:  # *seen*: wait until the read model shows it, then send at once
            while pending is None:
                await asyncio.sleep(0.002)
                pending = (await asyncio.to_thread(projected_state, store, episode))["pending_review"]
            review_id, race = pending["review_id"], "seen"
        outcome = RecordReviewOutcome(review_id, ReviewOutcome.EXTEND, "ther-1", next_review_in_days=1)
        try:
            await episodes.send(episode, meta(), outcome)
            answered += 1
        except CommandRejected as error:
            if race == "seen" or "not the pending review" not in str(error):
                refusals.append(f"{episode} {race} {review_id}: {error}")
    return answered, refusals


async def test_commands_sent_when_the_clock_makes_them_valid_are_never_refused(
    temporal_env: WorkflowEnvironment, store: PostgresEventStore
) -> None:
    async with episode_worker(temporal_env, store, policy_text=POLICY, day=DAY) as episodes:
        outcomes = await asyncio.gather(*(_drive(episodes, store, f"ep-race-{n}") for n in range(EPISODES)))

    answered = sum(a for a, _ in outcomes)
    refusals = [r for _, found in outcomes for r in found]
    assert refusals == []
    assert answered == EPISODES * REVIEWS_EACH
