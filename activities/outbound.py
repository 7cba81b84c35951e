"""Outbound notifications: a JSON POST, idempotent by a key the workflow minted, retried by Temporal.

A 4xx answer (other than 408 and 429) is final: the receiver refuses it. Anything else is retried. Only
pseudonymous ids and the facts the caller chose leave the program; nothing of the body is logged.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from structlog.typing import FilteringBoundLogger
from temporalio.exceptions import ApplicationError

TIMEOUT_SECONDS = 10


def post_json(url: str, body: dict[str, Any], idempotency_key: str, what: str, log: FilteringBoundLogger) -> int:
    """POST `body` to `url`; returns the HTTP status, or raises (retryable unless the receiver refused it)."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Idempotency-Key": idempotency_key},
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            status: int = response.status
    except urllib.error.HTTPError as error:
        if 400 <= error.code < 500 and error.code not in (408, 429):
            log.warning(f"{what}.refused", status=error.code)
            raise ApplicationError(
                f"the receiver refused {what} {idempotency_key} ({error.code})", non_retryable=True
            ) from None
        log.warning(f"{what}.failed", status=error.code)
        raise RuntimeError(f"the receiver answered {error.code}") from None
    except (urllib.error.URLError, OSError) as error:
        log.warning(f"{what}.unreachable", error_type=type(error).__name__)
        raise RuntimeError("the receiver could not be reached") from None
    log.info(f"{what}.sent", status=status)
    return status
