"""Every Temporal payload is encrypted in the tests as in production: one key for the run, shared with the
worker, API and CLI processes the tests start (they inherit the environment)."""

from __future__ import annotations

import os

from temporalio.converter import DataConverter

from continuum.runtime.codec import KeyRing, encrypted_converter

os.environ["CONTINUUM_PAYLOAD_KEYS"] = os.environ.get("CONTINUUM_PAYLOAD_KEYS") or KeyRing.new_line("tests")
PAYLOADS: DataConverter = encrypted_converter(
    KeyRing.parse(os.environ["CONTINUUM_PAYLOAD_KEYS"], "CONTINUUM_PAYLOAD_KEYS")
)
if os.environ.get("CONTINUUM_RECORD_HISTORIES"):  # recordings in tests/histories must replay without a key
    PAYLOADS = DataConverter.default
