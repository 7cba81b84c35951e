"""Defence in depth: a value that passes every check and still cannot be stored fails its command at once
(CommandUnrecordable, never retried for ever), records nothing, and the episode stays usable.

PostgreSQL is made to refuse one note with a data error (SQLSTATE 22023), as it would an untranslatable
character, through a trigger that the `poisoned_note` fixture installs as the database owner.
"""

from __future__ import annotations

import pytest
from temporalio.testing import WorkflowEnvironment

from continuum.domain.commands import Discharge, OpenEpisode, PutOnHold, RecordAssessment, Resume
from continuum.domain.episode import DischargeReason, HoldReason
from continuum.domain.errors import CommandUnrecordable
from continuum.eventlog.store import PostgresEventStore
from continuum.eventlog.verify import verify_log
from tests.integration.episodes import WITHOUT_TESTING, episode_worker, meta

MILD = (1, 1, 1, 1, 1, 1)


async def test_a_value_the_log_cannot_store_fails_its_command_and_the_episode_goes_on(
    skipping_env: WorkflowEnvironment, store: PostgresEventStore, poisoned_note: str
) -> None:
    episode = "ep-unrecordable"
    async with episode_worker(skipping_env, store, policy_text=WITHOUT_TESTING) as episodes:
        await episodes.open(meta(), OpenEpisode(episode, "client-u", assessment=RecordAssessment(MILD, "clin-1")))
        with pytest.raises(CommandUnrecordable):
            await episodes.send(episode, meta(), Discharge(DischargeReason.COMPLETED, poisoned_note))
        held = await episodes.send(episode, meta(), PutOnHold(HoldReason.LEAVE))
        await episodes.send(episode, meta(), Resume())
        closed = await episodes.send(episode, meta(), Discharge(DischargeReason.COMPLETED, "goals met"))

    assert [e.type for e in held.events] == ["EpisodePutOnHold"]
    assert [e.type for e in closed.events] == ["EpisodeClosed"]
    types = [e.event_type for e in store.read_stream(episode)]
    assert types.count("EpisodeClosed") == 1 and types[-1] == "EpisodeClosed"
    assert all(e.payload.get("note") != poisoned_note for e in store.read_stream(episode))
    assert verify_log(store.engine).ok
