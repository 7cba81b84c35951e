"""The worker's entry point: `python -m continuum.worker` serves the task queue, as `continuum worker` does.

It only wires: the settings from the environment, then `bootstrap.serve` with the worker alone (embedded
servers for what is not configured; Ctrl-C or SIGTERM stops it in order, within 30 seconds).
"""

from __future__ import annotations

import os
import sys

from continuum.bootstrap import EXIT_UNAVAILABLE, SERVICE_FAILURES, serve
from continuum.runtime.settings import load_settings


def main() -> None:
    """Serve until stopped; a server that cannot be reached, or a bad setting, is one line and exit code 3."""
    code = 0
    try:
        serve(load_settings(), worker=True, api=False)
    except SERVICE_FAILURES as error:
        print(f"continuum: {error}", file=sys.stderr)
        code = EXIT_UNAVAILABLE
    except KeyboardInterrupt:
        code = 130
    except SystemExit as exit_:  # a forced stop leaves with 130
        code = exit_.code if isinstance(exit_.code, int) else 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # the temporalio SDK can crash while the interpreter shuts down after all work succeeded


if __name__ == "__main__":
    main()
