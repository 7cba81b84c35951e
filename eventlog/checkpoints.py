"""Signed checkpoints of the log, kept outside the database, in the way Certificate Transparency signs its
tree heads.

A checkpoint is the log's head (position and hash) at an instant, the head (version and hash) of every
stream that moved since the checkpoint before it, and the digest of that previous checkpoint, signed with
an Ed25519 key the database never holds. Checkpoints are appended, one JSON object a line, to a file
outside the log (`checkpoints.ndjson` in the data directory, or CONTINUUM_CHECKPOINT_FILE).

What a checkpoint proves, against someone who can rewrite the tables but not read the key:
- the log up to its position is the log that was signed (each hash commits to every event before it), so
  an edited, inserted or deleted event at or before it, or the head moved back below it, contradicts it;
- the checkpoint is taken holding the log lock, so every event after its position was recorded after its
  instant: an event slipped in after the last checkpoint but dated before it contradicts it too;
- each stream's head at that position: a stream's deleted tail or an event appended to it before the
  checkpoint is caught by verifying that stream alone.
An event appended after the last checkpoint and dated after it is, until the next checkpoint, no more
than what the chain alone shows: checkpoint often (`continuum audit anchor` from cron).
A checkpoint line removed from the file breaks the digest chain of the lines after it; the file's last
lines cut off are not seen from the file alone, so keep a copy elsewhere too (or the last digest).
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Engine, text

from continuum.eventlog.hashing import canonical_json
from continuum.eventlog.verify import Anchor, BrokenLink, VerificationReport

CHECKPOINT_CONTEXT = b"continuum checkpoint v1\n"
TRAILER_CONTEXT = b"continuum export trailer v1\n"
KEY_FILE_NAME = "checkpoint-key.pem"
CHECKPOINT_FILE_NAME = "checkpoints.ndjson"


class CheckpointKeyError(ValueError):
    """A checkpoint key that cannot be read or made."""


def key_id(public_key: Ed25519PublicKey) -> str:
    """A short name for a public key: the first 16 hex digits of the SHA-256 of its raw 32 bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_signing_key(path: Path | None, data_dir: Path) -> Ed25519PrivateKey:
    """The signing key from `path` (which must exist), or from the data directory's key file, made once
    (0600) if there is none yet."""
    if path is None:
        path = data_dir / KEY_FILE_NAME
        if not path.exists():
            _create_key_file(path)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as error:
        raise CheckpointKeyError(f"checkpoint key {path}: {error.strerror}") from None
    except ValueError:
        raise CheckpointKeyError(f"checkpoint key {path}: not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise CheckpointKeyError(f"checkpoint key {path}: not an Ed25519 key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """A public key (PEM) to verify with, or the public half of a private key file."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CheckpointKeyError(f"public key {path}: {error.strerror}") from None
    try:
        public = serialization.load_pem_public_key(data)
    except ValueError:
        try:
            private = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError):
            raise CheckpointKeyError(f"public key {path}: not a PEM Ed25519 key") from None
        public = private.public_key()
    if not isinstance(public, Ed25519PublicKey):
        raise CheckpointKeyError(f"public key {path}: not an Ed25519 key")
    return public


def public_key_pem(key: Ed25519PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )


def _create_key_file(path: Path) -> None:
    """Written whole to a draft, then linked into place: a process starting beside us reads it whole, and
    of two starting at once one key wins."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    draft = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(pem)
    try:
        os.link(draft, path)
    except FileExistsError:
        pass
    finally:
        draft.unlink()


def _sign(key: Ed25519PrivateKey, context: bytes, body: dict[str, Any]) -> str:
    return base64.b64encode(key.sign(context + canonical_json(body).encode("utf-8"))).decode("ascii")


def _signature_holds(public_key: Ed25519PublicKey, context: bytes, body: dict[str, Any], signature: Any) -> bool:
    if not isinstance(signature, str):
        return False
    try:
        public_key.verify(base64.b64decode(signature, validate=True), context + canonical_json(body).encode("utf-8"))
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(frozen=True)
class Checkpoint:
    """One signed head of the log; see the module's docstring."""

    sequence: int  # 1, 2, ... in the file
    position: int
    hash: str  # hex
    taken_at: datetime
    streams: dict[str, tuple[int, str]]  # stream id -> (version, hash hex), for the streams moved since the last
    previous: str | None  # the digest of the checkpoint before (None for the first)
    key_id: str
    signature: str = field(default="", compare=False)

    def body(self) -> dict[str, Any]:
        return {
            "sequence": self.sequence,
            "position": self.position,
            "hash": self.hash,
            "taken_at": self.taken_at.isoformat(),
            "streams": {sid: [version, hash_] for sid, (version, hash_) in sorted(self.streams.items())},
            "previous": self.previous,
            "key_id": self.key_id,
        }

    def line(self) -> str:
        return canonical_json({"checkpoint": self.body(), "signature": self.signature})

    def digest(self) -> str:
        return hashlib.sha256(canonical_json(self.body()).encode("utf-8")).hexdigest()

    def name(self) -> str:
        return f"checkpoint #{self.sequence} (position {self.position}, taken at {self.taken_at.isoformat()})"

    def anchor(self) -> Anchor:
        return Anchor(self.position, self.hash, self.taken_at, name=self.name())


@dataclass(frozen=True)
class CheckpointFile:
    """The checkpoints a file holds whose signatures hold, and what is wrong with the file."""

    checkpoints: tuple[Checkpoint, ...]
    problems: tuple[BrokenLink, ...]


def checkpoint_path(path: Path | None, data_dir: Path) -> Path:
    return path if path is not None else data_dir / CHECKPOINT_FILE_NAME


def read_checkpoints(path: Path, public_key: Ed25519PublicKey) -> CheckpointFile:
    """Every checkpoint in the file, each signature checked against `public_key`, and the digest chain and
    order of the lines (a missing file is no checkpoint at all)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return CheckpointFile((), ())
    except OSError as error:
        raise CheckpointKeyError(f"checkpoints {path}: {error.strerror}") from None
    return parse_checkpoints(lines, public_key)


def parse_checkpoints(lines: Iterable[str], public_key: Ed25519PublicKey) -> CheckpointFile:
    checkpoints: list[Checkpoint] = []
    problems: list[BrokenLink] = []
    previous: Checkpoint | None = None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"checkpoint file line {number}"
        try:
            data = json.loads(line)
            body, signature = data["checkpoint"], data["signature"]
            checkpoint = Checkpoint(
                sequence=int(body["sequence"]),
                position=int(body["position"]),
                hash=str(body["hash"]),
                taken_at=datetime.fromisoformat(body["taken_at"]),
                streams={str(sid): (int(v), str(h)) for sid, (v, h) in body["streams"].items()},
                previous=body["previous"],
                key_id=str(body["key_id"]),
                signature=signature,
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            problems.append(BrokenLink(-1, "-", f"{where} is not a checkpoint"))
            continue
        if checkpoint.body() != body or not _signature_holds(public_key, CHECKPOINT_CONTEXT, body, signature):
            problems.append(
                BrokenLink(
                    checkpoint.position,
                    "-",
                    f"{checkpoint.name()} ({where}): its signature does not hold for key {key_id(public_key)}"
                    " (forged, altered, or signed with another key); not used",
                )
            )
            continue
        if previous is not None:
            if checkpoint.sequence != previous.sequence + 1 or checkpoint.previous != previous.digest():
                problems.append(
                    BrokenLink(
                        checkpoint.position,
                        "-",
                        f"{checkpoint.name()} does not follow {previous.name()}: a checkpoint between them was"
                        " removed from the file",
                    )
                )
            if checkpoint.position < previous.position:
                problems.append(
                    BrokenLink(
                        checkpoint.position,
                        "-",
                        f"{checkpoint.name()} names a position before {previous.name()}: the log was cut back"
                        " between them",
                    )
                )
        elif checkpoint.sequence != 1 or checkpoint.previous is not None:
            problems.append(
                BrokenLink(
                    checkpoint.position,
                    "-",
                    f"{checkpoint.name()} is not the first: the checkpoints before it are gone",
                )
            )
        checkpoints.append(checkpoint)
        previous = checkpoint
    return CheckpointFile(tuple(checkpoints), tuple(problems))


_HEAD_LOCKED = text("SELECT position, hash FROM log_head WHERE singleton FOR UPDATE")
_STREAM_HEADS = text(
    "SELECT DISTINCT ON (stream_id) stream_id, stream_version, hash FROM events"
    " WHERE position > :low AND position <= :high ORDER BY stream_id, stream_version DESC"
)


def take_checkpoint(engine: Engine, key: Ed25519PrivateKey, path: Path) -> Checkpoint:
    """Sign the log's head now and append it to the file. The head is read holding the log lock (a moment:
    appends wait), so every event after it is recorded after the checkpoint's instant. Two at once take
    turns on a lock of the file, so each follows the one before."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(descriptor, "a", encoding="utf-8") as out:
        fcntl.flock(out.fileno(), fcntl.LOCK_EX)
        signed = _sign_head(engine, key, read_checkpoints(path, key.public_key()).checkpoints)
        out.write(signed.line() + "\n")
        out.flush()
        os.fsync(out.fileno())
    return signed


def _sign_head(engine: Engine, key: Ed25519PrivateKey, before: Sequence[Checkpoint]) -> Checkpoint:
    last = before[-1] if before else None
    with engine.begin() as connection:
        head = connection.execute(_HEAD_LOCKED).one()
        taken_at = connection.execute(text("SELECT clock_timestamp()")).scalar_one().astimezone(UTC)
    low = last.position if last is not None and last.position <= head.position else 0
    with engine.connect() as connection:
        rows = connection.execute(_STREAM_HEADS, {"low": low, "high": head.position}).all()
    unsigned = Checkpoint(
        sequence=last.sequence + 1 if last else 1,
        position=int(head.position),
        hash=bytes(head.hash).hex(),
        taken_at=taken_at,
        streams={row.stream_id: (int(row.stream_version), bytes(row.hash).hex()) for row in rows},
        previous=last.digest() if last else None,
        key_id=key_id(key.public_key()),
    )
    return Checkpoint(**{**vars(unsigned), "signature": _sign(key, CHECKPOINT_CONTEXT, unsigned.body())})


_AFTER_BUT_EARLIER = text(
    "SELECT position, stream_id, recorded_at FROM events WHERE position > :position AND recorded_at <= :at"
    " ORDER BY position LIMIT 10"
)


def check_checkpoints(engine: Engine, checkpoints: Sequence[Checkpoint]) -> list[BrokenLink]:
    """What the log contradicts of the checkpoints beyond their positions and hashes (checked as anchors):
    an event after the last checkpoint's position recorded before its instant."""
    if not checkpoints:
        return []
    last = max(checkpoints, key=lambda c: (c.position, c.taken_at))
    with engine.connect() as connection:
        rows = connection.execute(_AFTER_BUT_EARLIER, {"position": last.position, "at": last.taken_at}).all()
    return [
        BrokenLink(
            row.position,
            row.stream_id,
            f"recorded at {row.recorded_at.astimezone(UTC).isoformat()}, before {last.name()}, yet after its"
            " position: inserted afterwards",
        )
        for row in rows
    ]


def stream_checkpoint_problems(
    stream_id: str, rows: Sequence[Any], checkpoints: Sequence[Checkpoint]
) -> list[BrokenLink]:
    """One stream's rows (position, stream_version, hash, recorded_at; in version order) against the stream
    heads the checkpoints signed: at each checkpoint's position the stream stood where it said."""
    problems: list[BrokenLink] = []
    signed: tuple[int, str] | None = None
    for checkpoint in sorted(checkpoints, key=lambda c: c.sequence):
        if stream_id in checkpoint.streams:
            signed = checkpoint.streams[stream_id]
        covered = [row for row in rows if row.position <= checkpoint.position]
        actual = (int(covered[-1].stream_version), bytes(covered[-1].hash).hex()) if covered else None
        if actual == signed:
            continue
        said = f"version {signed[0]} with hash {signed[1]}" if signed else "no event"
        found = f"version {actual[0]} with hash {actual[1]}" if actual else "no event"
        position = covered[-1].position if covered else checkpoint.position
        problems.append(
            BrokenLink(
                position,
                stream_id,
                f"{checkpoint.name()} signed the stream's head as {said}; the log holds {found} there"
                " (events of the stream deleted, inserted or rewritten)",
            )
        )
        break  # later checkpoints would repeat it
    if checkpoints:
        last = max(checkpoints, key=lambda c: (c.position, c.taken_at))
        for row in rows:
            if row.position > last.position and row.recorded_at <= last.taken_at:
                problems.append(
                    BrokenLink(
                        row.position,
                        stream_id,
                        f"version {row.stream_version} recorded at {row.recorded_at.astimezone(UTC).isoformat()},"
                        f" before {last.name()}, yet after its position: inserted afterwards",
                    )
                )
    return problems


_STREAM_ROWS = text(
    "SELECT position, stream_version, hash, recorded_at FROM events WHERE stream_id = :stream_id"
    " ORDER BY stream_version"
)


def stream_checkpoints_report(engine: Engine, stream_id: str, checkpoints: Sequence[Checkpoint]) -> VerificationReport:
    """One stream against the checkpoints (see `stream_checkpoint_problems`)."""
    with engine.connect() as connection:
        rows = connection.execute(_STREAM_ROWS, {"stream_id": stream_id}).all()
    return VerificationReport(
        f"stream {stream_id}", len(rows), tuple(stream_checkpoint_problems(stream_id, rows, checkpoints))
    )


# Export trailers: the last line of an NDJSON export, signed, so a cut or an added line shows.


def export_trailer(lines: Sequence[dict[str, Any]], key: Ed25519PrivateKey, exported_at: datetime) -> str:
    """The signed trailer of an export of `lines` (the exported events, as their JSON objects)."""
    body = trailer_body(lines, exported_at, key_id(key.public_key()))
    return canonical_json({"trailer": body, "signature": _sign(key, TRAILER_CONTEXT, body)})


def trailer_body(lines: Sequence[dict[str, Any]], exported_at: datetime, signer: str) -> dict[str, Any]:
    return {
        "stream_id": lines[0]["stream_id"] if lines else None,
        "count": len(lines),
        "first_position": lines[0]["position"] if lines else None,
        "last_position": lines[-1]["position"] if lines else None,
        "head_hash": lines[-1]["hash"] if lines else None,
        "exported_at": exported_at.astimezone(UTC).isoformat(),
        "key_id": signer,
    }


def trailer_problems(
    events: Sequence[dict[str, Any]], trailer: dict[str, Any] | None, public_key: Ed25519PublicKey | None
) -> list[BrokenLink]:
    """What a trailer says that the exported events do not bear out (its signature checked if a key is given)."""
    stream = events[0]["stream_id"] if events else "?"
    if trailer is None:
        return [BrokenLink(-1, stream, "no signed trailer: the export was cut short (or is not one of ours)")]
    body, signature = trailer.get("trailer"), trailer.get("signature")
    if not isinstance(body, dict):
        return [BrokenLink(-1, stream, "the trailer is not one of ours")]
    problems = []
    if public_key is not None and not _signature_holds(public_key, TRAILER_CONTEXT, body, signature):
        problems.append(
            BrokenLink(-1, stream, f"the trailer's signature does not hold for key {key_id(public_key)} (altered)")
        )
    try:
        exported_at = datetime.fromisoformat(str(body.get("exported_at")))
    except ValueError:
        return [*problems, BrokenLink(-1, stream, "the trailer's exported_at is not an instant")]
    expected = trailer_body(events, exported_at, str(body.get("key_id")))
    for name in ("stream_id", "count", "first_position", "last_position", "head_hash"):
        if body.get(name) != expected[name]:
            problems.append(
                BrokenLink(
                    -1,
                    stream,
                    f"the trailer's {name} is {body.get(name)!r}, the export's {expected[name]!r}"
                    " (events cut off or added)",
                )
            )
    return problems
