"""Temporal histories hold no health data in clear: every payload is AES-GCM encrypted by the codec.

An episode is run by the real worker on the real dev server with the encrypted converter; its history, read
by a client without the key (as `temporal workflow show` or the UI would), carries no client id, rating or
medication. The same episode run without the codec shows them, so the check can fail.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from continuum.access import Role
from continuum.api.app import create_app
from continuum.api.services import Services
from continuum.domain.commands import ChangeMedications, Discharge, OpenEpisode, RecordAssessment
from continuum.domain.episode import DischargeReason
from continuum.domain.errors import CommandRejected
from continuum.domain.policy import default_policy_text
from continuum.episodes import EpisodeCommands
from continuum.eventlog.store import PostgresEventStore
from continuum.runtime.codec import ENCODING, EncryptionCodec, KeyRing, PayloadKeyError, encrypted_converter
from continuum.workflows.episode import EPISODE_WORKFLOWS, workflow_id
from tests.integration.episodes import episode_worker, meta

pytestmark = pytest.mark.integration
RATINGS = (3, 2, 1, 0, 4, 2)
MEDICATION = "buprenorphine-naloxone-marker"
# The program's policy names the marker in its medication catalogue (a medication outside it is refused).
POLICY_TEXT = default_policy_text().replace(
    "\n[medications]\n", f'\n[medications]\n{MEDICATION} = {{ shows = ["buprenorphine"], must_show = [] }}\n'
)


async def _env(env: WorkflowEnvironment, converter: DataConverter) -> WorkflowEnvironment:
    """A client of the same server with a converter of this test's own."""
    target, namespace = env.client.service_client.config.target_host, env.client.namespace
    return WorkflowEnvironment.from_client(await Client.connect(target, namespace=namespace, data_converter=converter))


async def _episode(episodes: EpisodeCommands, client_id: str) -> str:
    episode = f"EP-ENC-{uuid.uuid4().hex[:8]}"
    assessment = RecordAssessment(RATINGS, "clin-7")
    await episodes.open(meta(), OpenEpisode(episode, client_id, assessment=assessment))
    await episodes.send(episode, meta(), ChangeMedications((MEDICATION,), "clin-7"))
    return episode


async def _raw_history(client: Client, episode: str) -> bytes:
    history = await client.get_workflow_handle(workflow_id(episode)).fetch_history()
    return b"".join(event.SerializeToString() for event in history.events)


@pytest.fixture
def ring() -> KeyRing:
    return KeyRing.parse(KeyRing.new_line("test-1"), "test")


@pytest.fixture
async def encrypted(skipping_env: WorkflowEnvironment, ring: KeyRing) -> AsyncIterator[WorkflowEnvironment]:
    yield await _env(skipping_env, encrypted_converter(ring))


async def test_a_history_read_without_the_key_shows_no_client_id_rating_or_medication(
    skipping_env: WorkflowEnvironment, encrypted: WorkflowEnvironment, store: PostgresEventStore, ring: KeyRing
) -> None:
    client_id = f"client-{uuid.uuid4().hex[:10]}"
    async with episode_worker(encrypted, store, policy_text=POLICY_TEXT) as episodes:
        episode = await _episode(episodes, client_id)
        state = await episodes.state(episode)  # the keyed client reads it back
    assert state is not None and state["client_id"] == client_id and MEDICATION in str(state["medications"])

    raw = await _raw_history(skipping_env.client, episode)  # no key: what the CLI and UI would print
    assert client_id.encode() not in raw and MEDICATION.encode() not in raw and b"clin-7" not in raw
    assert b"[3, 2, 1, 0, 4, 2]" not in raw and b"[3,2,1,0,4,2]" not in raw
    assert ENCODING in raw and b"test-1" in raw  # the key id travels with each payload

    history = await encrypted.client.get_workflow_handle(workflow_id(episode)).fetch_history()
    replayed = await Replayer(
        workflows=list(EPISODE_WORKFLOWS), data_converter=encrypted.client.data_converter
    ).replay_workflow(history, raise_on_replay_failure=False)
    assert replayed.replay_failure is None


async def test_without_the_codec_the_same_history_is_readable(
    skipping_env: WorkflowEnvironment, store: PostgresEventStore
) -> None:
    """The control: the check above can fail."""
    client_id = f"client-{uuid.uuid4().hex[:10]}"
    async with episode_worker(
        await _env(skipping_env, DataConverter.default), store, policy_text=POLICY_TEXT
    ) as episodes:
        episode = await _episode(episodes, client_id)
    raw = await _raw_history(skipping_env.client, episode)
    assert client_id.encode() in raw and MEDICATION.encode() in raw


async def test_a_refusal_reads_the_same_through_encrypted_failures(
    encrypted: WorkflowEnvironment, store: PostgresEventStore, skipping_env: WorkflowEnvironment
) -> None:
    async with episode_worker(encrypted, store, policy_text=POLICY_TEXT) as episodes:
        episode = await _episode(episodes, f"client-{uuid.uuid4().hex[:10]}")
        await episodes.send(episode, meta(), Discharge(DischargeReason.COMPLETED))
        with pytest.raises(CommandRejected, match="closed"):
            await episodes.send(episode, meta(), ChangeMedications(("naltrexone",), "clin-7"))
    raw = await _raw_history(skipping_env.client, episode)
    assert b"naltrexone" not in raw


async def test_keys_rotate_old_payloads_still_decode_and_unknown_keys_are_named() -> None:
    old = KeyRing.parse(KeyRing.new_line("old"), "test")
    new_line = KeyRing.new_line("new")
    old_line = f"old:{base64.b64encode(old.keys['old']).decode()}"
    rotated = KeyRing.parse(f"{new_line}\n{old_line}\n", "test")
    sealed = (await EncryptionCodec(old).encode([Payload(data=b"client-1")]))[0]

    assert rotated.current == "new"
    assert (await EncryptionCodec(rotated).decode([sealed]))[0].data == b"client-1"
    assert (await EncryptionCodec(rotated).encode([Payload(data=b"x")]))[0].metadata["encryption-key-id"] == b"new"
    with pytest.raises(PayloadKeyError, match="'old'"):
        await EncryptionCodec(KeyRing.parse(new_line, "test")).decode([sealed])
    plain = Payload(metadata={"encoding": b"json/plain"}, data=b'"recorded before encryption"')
    assert (await EncryptionCodec(rotated).decode([plain]))[0] == plain


async def test_the_codec_endpoint_decodes_for_directors_and_auditors_only(
    encrypted: WorkflowEnvironment, store: PostgresEventStore, ring: KeyRing
) -> None:
    sealed = (await EncryptionCodec(ring).encode([Payload(metadata={"encoding": b"json/plain"}, data=b'"c-9"')]))[0]
    body = {
        "payloads": [
            {
                "metadata": {k: base64.b64encode(v).decode() for k, v in sealed.metadata.items()},
                "data": base64.b64encode(sealed.data).decode(),
            }
        ]
    }
    async with episode_worker(encrypted, store, policy_text=POLICY_TEXT) as episodes:
        services = Services.build(episodes, store)
        secrets = {role: services.keys.create(f"{role.value}-c", role, None)[1] for role in Role}
        transport = httpx.ASGITransport(app=create_app(services))
        async with httpx.AsyncClient(transport=transport, base_url="http://continuum.test") as http:

            async def decode(role: Role | None, json: object = body) -> httpx.Response:
                headers = {"Authorization": f"Bearer {secrets[role]}"} if role else {}
                return await http.post("/api/v1/codec/decode", json=json, headers=headers)

            for role in (Role.DIRECTOR, Role.AUDITOR):
                answered = await decode(role)
                assert answered.status_code == 200, answered.text
                assert base64.b64decode(answered.json()["payloads"][0]["data"]) == b'"c-9"'
            for role in (Role.CLINICIAN, Role.LAB, Role.PARTNER, Role.ADMIN):
                assert (await decode(role)).status_code == 403
            assert (await decode(None)).status_code == 401
            bad = await decode(Role.DIRECTOR, {"payloads": "no"})
            assert bad.status_code == 422 and "payloads" in bad.text
            short = {"payloads": [{"metadata": body["payloads"][0]["metadata"], "data": "c2hvcnQ="}]}  # no nonce
            cut = await decode(Role.DIRECTOR, short)
            assert cut.status_code == 422 and "too short" in cut.text, cut.text
