"""Log output shows no local variables and no key secret or credential, whichever logger writes it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SECRET = "ck_k_0123456789ab_" + "S3cr3t-" * 6
FAILING_REQUEST = f"""
import logging, structlog
from continuum.runtime.logs import configure_logging
from continuum.runtime.settings import Settings
configure_logging(Settings.from_env())

def handle(scope):
    headers = [(b"authorization", b"Bearer {SECRET}"), (b"host", b"continuum.test")]
    raise RuntimeError("refused " + scope["token"])

try:
    handle({{"token": "{SECRET}"}})
except RuntimeError:
    logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
    structlog.get_logger("api").exception(
        "api.failed", authorization="Bearer {SECRET}", note="Authorization: Bearer abc"
    )
"""


@pytest.mark.parametrize("log_format", ["console", "json"])
def test_a_failing_requests_traceback_shows_no_locals_and_no_secret(log_format: str) -> None:
    env = {**os.environ, "CONTINUUM_LOG_FORMAT": log_format}
    result = subprocess.run(
        [sys.executable, "-c", FAILING_REQUEST], env=env, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    told = output.replace("\\n", "\n")  # the exception is still there: its type, message and frames
    if log_format == "json":
        assert '"type": "RuntimeError", "message": "refused ck_[redacted]"' in told
    else:
        assert "RuntimeError: refused ck_[redacted]" in told
    assert "S3cr3t" not in output and "ck_k_" not in output
    assert "locals" not in output and "headers = " not in output  # rich's locals box, or any frame's variables
    assert "Bearer abc" not in output
