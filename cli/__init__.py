"""The `continuum` command: thin, calling the same services as the worker and the API.

One module per command group (serve, episodes, keys, webhooks, audit, database, attendance, measures, simulate),
the output in `render`. Human tables by default, `--json` for scripts; errors in one line; exit codes in `errors`:
0 ok, 1 not found, 2 usage, 3 a server is unreachable or a setting is invalid, 4 the record was altered.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import typer

from continuum.cli import attendance, audit, database, episodes, keys, measures, serve, simulate, webhooks
from continuum.cli.errors import (
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    PROGRAM,
    NotFound,
    Usage,
    usage_line,
)
from continuum.domain.errors import DomainError, PolicyError
from continuum.eventlog.errors import EventStoreError
from continuum.runtime.servers import ServerUnavailable
from continuum.runtime.settings import SettingsError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Continuum: care-continuum workflow engine.",
)
app.add_typer(serve.commands)
app.add_typer(database.commands)
app.add_typer(episodes.commands)
app.add_typer(measures.commands)
app.add_typer(simulate.commands)
app.add_typer(database.projections, name="projections")
app.add_typer(audit.audit, name="audit")
app.add_typer(keys.keys, name="keys")
app.add_typer(webhooks.webhooks, name="webhooks")
app.add_typer(episodes.episodes, name="episodes")
app.add_typer(attendance.attendance, name="attendance")


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: run the command, turn known failures into one line, and leave through os._exit.

    The temporalio SDK can crash while the interpreter shuts down after all work succeeded, so the real
    status is handed to `os._exit` once output is flushed.
    """
    code = 0
    try:
        # Without standalone mode, click hands back the code of a `typer.Exit` instead of raising it.
        returned = app(args=None if argv is None else list(argv), prog_name=PROGRAM, standalone_mode=False)
        code = returned if isinstance(returned, int) and not isinstance(returned, bool) else 0
    except (ServerUnavailable, EventStoreError, SettingsError, PolicyError) as error:
        print(f"continuum: {error}", file=sys.stderr)
        code = EXIT_UNAVAILABLE
    except NotFound as error:
        print(f"continuum: {error}", file=sys.stderr)
        code = EXIT_NOT_FOUND
    except (Usage, DomainError) as error:
        print(f"continuum: {error}", file=sys.stderr)
        code = EXIT_USAGE
    except typer.Exit as exit_:
        code = exit_.exit_code
    except (typer.Abort, KeyboardInterrupt):
        code = EXIT_INTERRUPTED
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    except typer.TyperException as error:
        # Click's errors as typer bundles them (its own copy of click, so not click's classes): a usage error in
        # one line, a bare group's help as help.
        code = getattr(error, "exit_code", 1)
        if type(error).__name__ == "NoArgsIsHelpError" or not hasattr(error, "format_message"):
            show = getattr(error, "show", None)
            if callable(show):
                show()
        else:
            print(usage_line(error), file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)


if __name__ == "__main__":
    main()
