"""Sending commands to episodes: the one client-side path the API, the CLI and the demo share."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any, TypeVar

from temporalio.client import (
    Client,
    RPCTimeoutOrCancelledError,
    WithStartWorkflowOperation,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from continuum.activities.eventlog import UNRECORDABLE
from continuum.domain.commands import AFTER_CLOSING, COMMAND_NAMES, Command, OpenEpisode, TransferEpisode, command_name
from continuum.domain.errors import CommandInvalid, CommandRejected, CommandUnrecordable, UnknownEpisode
from continuum.domain.facilities import DEFAULT_FACILITY, ONE_FACILITY, Facilities, FacilityProgram
from continuum.domain.ids import episode_id as valid_episode_id
from continuum.domain.ids import pseudonymous_client_id
from continuum.domain.policy import default_policy_text, load_policy
from continuum.runtime.servers import ServerTimedOut, ServerUnavailable
from continuum.workflows.episode import (
    HISTORY_EVENTS_BOUND,
    CareEpisodeWorkflow,
    CommandMeta,
    CommandResult,
    EpisodeInput,
    EpisodeWorkflow,
    workflow_id,
)

T = TypeVar("T")
NOT_READY_TRIES = 16  # about 12 s in all
TAKE_UP_TRIES = 4  # a run that took up a closed episode may complete between our look and our command


class _RunCompleted(CommandRejected):
    """The episode's workflow has completed: the episode is closed."""


class EpisodeCommands:
    """Opens episodes (update-with-start: create or attach) and sends them commands as updates."""

    def __init__(
        self,
        client: Client,
        task_queue: str,
        *,
        policy_text: str | None = None,
        day: timedelta = timedelta(days=1),
        continue_as_new_after: int | None = None,
        lab_id: str | None = None,
        directory_text: str | None = None,
        history_events_bound: int = HISTORY_EVENTS_BOUND,
        facilities: Mapping[str, FacilityProgram] | None = None,
        default_facility: str | None = None,
    ) -> None:
        self.client = client
        self.task_queue = task_queue
        self.policy_text = policy_text if policy_text is not None else default_policy_text()
        self.directory_text = directory_text
        load_policy(
            self.policy_text, directory_text
        )  # a malformed policy fails here, naming the key, not in a workflow
        self.day = day
        self.continue_as_new_after = continue_as_new_after
        self.lab_id = lab_id
        self.history_events_bound = history_events_bound
        self._programs = facilities  # each facility's policy, directory and lab (None: the program's, at `main`)
        self.default_facility = default_facility or (next(iter(facilities)) if facilities else DEFAULT_FACILITY)

    @property
    def programs(self) -> Mapping[str, FacilityProgram]:
        """Each facility's program; without facilities, one (`main`) running this client's own policy and lab."""
        if self._programs:
            return self._programs
        main = ONE_FACILITY.by_id[DEFAULT_FACILITY]
        return {DEFAULT_FACILITY: FacilityProgram(main, self.policy_text, self.directory_text, self.lab_id)}

    @property
    def facilities(self) -> Facilities:
        return Facilities({fid: p.facility for fid, p in self.programs.items()}, self.default_facility)

    def _input(self, episode_id: str, *, take_up_closed: bool = False, facility_id: str | None = None) -> EpisodeInput:
        program = self.programs.get(facility_id or self.default_facility)
        return EpisodeInput(
            episode_id,
            program.policy_text if program else self.policy_text,
            self.day.total_seconds(),
            self.continue_as_new_after,
            program.lab_id if program else self.lab_id,
            program.directory_text if program else self.directory_text,
            history_events_bound=self.history_events_bound,
            take_up_closed=take_up_closed,
        )

    def with_program(self, command: TransferEpisode) -> TransferEpisode:
        """A transfer carrying its facility's program, which decides the episode from then on."""
        program = self.programs.get(command.facility_id)
        if program is None:
            raise CommandInvalid(f"facility_id: no facility {command.facility_id}")
        return dataclasses.replace(
            command, policy_text=program.policy_text, directory_text=program.directory_text, lab_id=program.lab_id
        )

    def _starting(
        self, episode_input: EpisodeInput, reuse: WorkflowIDReusePolicy
    ) -> Callable[[], WithStartWorkflowOperation[Any, Any]]:
        """The start of the episode's workflow (attaching to a run under way), made afresh for each attempt: the
        SDK uses one start operation once."""
        return lambda: WithStartWorkflowOperation(
            CareEpisodeWorkflow.run,
            episode_input,
            id=workflow_id(episode_input.episode_id),
            task_queue=self.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=reuse,
        )

    async def open(self, meta: CommandMeta, command: OpenEpisode) -> CommandResult:
        """Open the episode, or attach to it if it exists; a retried open returns the first outcome. A client id
        shaped like an SSN, e-mail address or phone number is refused here, before it reaches Temporal."""
        eid = valid_episode_id(command.episode_id)
        pseudonymous_client_id(command.client_id)
        if command.facility_id is not None and command.facility_id not in self.programs:
            raise CommandInvalid(f"facility_id: no facility {command.facility_id}")
        # A closed episode's id is never reused: a readmission is a new episode that links to it.
        start = self._starting(
            self._input(eid, facility_id=command.facility_id), WorkflowIDReusePolicy.REJECT_DUPLICATE
        )
        try:
            return await _when_ready(
                lambda: self.client.execute_update_with_start_workflow(
                    COMMAND_NAMES[OpenEpisode],
                    args=[meta, command],
                    start_workflow_operation=start(),
                    id=meta.command_id,
                    result_type=CommandResult,
                ),
                eid,
            )
        except WorkflowAlreadyStartedError:
            raise CommandRejected(
                f"episode {eid} is closed; a readmission is a new episode with previous_episode_id={eid}"
            ) from None

    async def send(self, episode_id: str, meta: CommandMeta, command: Command) -> CommandResult:
        """Send any command of the catalogue (`domain.commands.COMMANDS`) but the open, as the update of its name."""
        name = command_name(command)
        if name is None or isinstance(command, OpenEpisode):
            raise CommandRejected(f"{type(command).__name__} is not sent to an episode by other services")
        eid = valid_episode_id(episode_id)
        if isinstance(command, TransferEpisode):
            command = self.with_program(command)
        handle = self.client.get_workflow_handle(workflow_id(eid))
        try:
            return await _when_ready(
                lambda: handle.execute_update(
                    name, args=[meta, command], id=meta.command_id, result_type=CommandResult
                ),
                eid,
            )
        except _RunCompleted:
            if not isinstance(command, AFTER_CLOSING):
                raise
        return await self._to_closed(eid, name, meta, command)

    async def _to_closed(self, eid: str, name: str, meta: CommandMeta, command: Command) -> CommandResult:
        """A command a closed episode still accepts: a new run of the episode's workflow takes it up (folding
        its state from the log), decides and records it, and completes again. One run at a time holds the id,
        so the episode's stream keeps one writer; a run still under way is attached to instead."""
        for _ in range(TAKE_UP_TRIES - 1):
            try:
                return await self._take_up(eid, name, meta, command)
            except _RunCompleted:  # attached to a run that completed before the command reached it
                continue
        return await self._take_up(eid, name, meta, command)

    async def _take_up(self, eid: str, name: str, meta: CommandMeta, command: Command) -> CommandResult:
        start = self._starting(self._input(eid, take_up_closed=True), WorkflowIDReusePolicy.ALLOW_DUPLICATE)
        return await _when_ready(
            lambda: self.client.execute_update_with_start_workflow(
                name,
                args=[meta, command],
                start_workflow_operation=start(),
                id=meta.command_id,
                result_type=CommandResult,
            ),
            eid,
        )

    async def state(self, episode_id: str) -> dict[str, Any] | None:
        """The workflow's working state (see domain.retention; the projection has the whole record)."""
        eid = valid_episode_id(episode_id)
        handle = self.client.get_workflow_handle(workflow_id(eid))
        return await _when_ready(lambda: handle.query(EpisodeWorkflow.state), eid)


async def _when_ready(call: Callable[[], Awaitable[T]], episode_id: str) -> T:
    """The call, sent again while the episode is not ready for it: a run that just continued as new has not run
    its first task, or a task failed because an update raced the continue-as-new (FAILED_PRECONDITION). The
    update never ran then, and its id is the command id, so sending it again is safe."""
    for attempt in range(NOT_READY_TRIES):
        try:
            return await _rejections_as_domain_errors(call(), episode_id)
        except RPCError as error:
            if error.status != RPCStatusCode.FAILED_PRECONDITION:
                raise
            await asyncio.sleep(min(0.05 * 2**attempt, 1.0))
    raise ServerTimedOut(f"episode {episode_id} was not ready for the command; retry it")


async def _rejections_as_domain_errors(call: Awaitable[T], episode_id: str | None = None) -> T:
    """Temporal's answers, in the domain's words: a refusal, an unrecordable value, a closed episode, an
    unknown one, or a server that is unavailable or did not answer in time."""
    try:
        return await call
    except WorkflowUpdateFailedError as error:
        cause: BaseException | None = error.cause
        if isinstance(cause, ApplicationError) and cause.type == "CommandRejected":
            raise CommandRejected(cause.message) from None
        if isinstance(cause, ApplicationError) and cause.type == "CommandInvalid":
            raise CommandInvalid(cause.message) from None
        while cause is not None:  # the update's own failure, or an activity's beneath it
            if isinstance(cause, ApplicationError) and cause.type == UNRECORDABLE:
                raise CommandUnrecordable("the command's values cannot be recorded") from None  # never the values
            cause = cause.__cause__
        raise
    except RPCTimeoutOrCancelledError:  # the SDK's words for a deadline exceeded or a cancelled call
        raise ServerTimedOut("Temporal did not answer in time") from None
    except RuntimeError as error:  # the SDK's words when it cannot (re)connect to the frontend
        if str(error).startswith("Failed client connect"):
            raise ServerUnavailable("Temporal cannot be reached") from None
        raise
    except RPCError as error:
        if error.status == RPCStatusCode.UNAVAILABLE:
            raise ServerUnavailable("Temporal is unavailable") from None
        if error.status in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED):
            raise ServerTimedOut("Temporal did not answer in time") from None
        if error.status == RPCStatusCode.NOT_FOUND and "already completed" not in error.message:
            raise UnknownEpisode(f"no episode {episode_id}") from None
        if "already completed" in error.message:
            raise _RunCompleted("the episode is closed; nothing more can be recorded") from None
        raise
