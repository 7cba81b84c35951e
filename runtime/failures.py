"""How an exception is told in a log line: its type, its frames, and a message that carries no data values.

PostgreSQL's errors carry row values (psycopg's DETAIL line, `Key (lab_reference)=(L-1) already exists`, and
SQLAlchemy's `[parameters: ...]`), so a database error is told by its SQLSTATE, its condition's name and the
constraint, table and column it names, never by its text. Frames are named by file name, line and function,
never by a path on the host.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from sqlalchemy.exc import StatementError

_CHAIN_LIMIT = 8


def database_error(error: BaseException) -> psycopg.Error | None:
    """The PostgreSQL error inside `error` (itself, or the one SQLAlchemy wraps), if it is one."""
    if isinstance(error, StatementError):
        return error.orig if isinstance(error.orig, psycopg.Error) else None
    return error if isinstance(error, psycopg.Error) else None


def describe_database_error(error: psycopg.Error) -> str:
    """`SQLSTATE 23505 unique_violation, constraint x on table y`: what failed, without a value."""
    sqlstate = error.sqlstate
    parts = [f"SQLSTATE {sqlstate}" if sqlstate else "no SQLSTATE (the connection failed)"]
    if sqlstate:
        try:
            parts[0] += f" {pg_errors.lookup(sqlstate).__name__}"
        except KeyError:
            pass
    diag = error.diag
    for label, name in (
        ("constraint", diag.constraint_name),
        ("table", diag.table_name),
        ("column", diag.column_name),
    ):
        if name:
            parts.append(f"{label} {name}")
    return ", ".join(parts)


def safe_message(error: BaseException) -> str:
    """The exception's message, or for a database error its description (values never shown)."""
    found = database_error(error)
    if found is not None:
        return describe_database_error(found)
    try:
        return str(error)
    except Exception:  # a message that cannot be rendered is not worth a second failure
        return "(message not renderable)"


def _chain(error: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen and len(chain) < _CHAIN_LIMIT:
        seen.add(id(current))
        chain.append(current)
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return chain


def _type_name(error: BaseException) -> str:
    kind = type(error)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def _frames(error: BaseException) -> list[str]:
    return [f"{Path(f.filename).name}:{f.lineno} in {f.name}" for f in traceback.extract_tb(error.__traceback__)]


def exception_fields(error: BaseException) -> dict[str, Any]:
    """The exception as one JSON-friendly value: type, safe message, frames; its causes after it."""
    chain = _chain(error)
    described = [{"type": _type_name(e), "message": safe_message(e), "frames": _frames(e)} for e in chain]
    return {**described[0], "causes": described[1:]} if len(described) > 1 else described[0]


def exception_text(error: BaseException) -> str:
    """The exception as a plain traceback for people (console mode), with the same safe messages."""
    lines: list[str] = []
    for e in reversed(_chain(error)):
        if lines:
            lines.append("\nwhich led to:\n")
        lines.append("Traceback (most recent call last):\n")
        lines.extend(f"  {frame}\n" for frame in _frames(e))
        lines.append(f"{_type_name(e)}: {safe_message(e)}")
    return "".join(lines)


def exception_processor(as_json: bool) -> Any:
    """A structlog processor in place of `format_exc_info`: `exc_info` becomes `exception`, without data values
    (a structured value in JSON mode, `exception_text` on a console)."""

    def exception_info(_logger: Any, _method: str, event_dict: Any) -> Any:
        exc_info = event_dict.pop("exc_info", None)
        if not exc_info:
            return event_dict
        if exc_info is True:
            exc_info = sys.exc_info()
        error = (
            exc_info if isinstance(exc_info, BaseException) else exc_info[1] if isinstance(exc_info, tuple) else None
        )
        if error is not None:
            event_dict["exception"] = exception_fields(error) if as_json else exception_text(error)
        return event_dict

    return exception_info
