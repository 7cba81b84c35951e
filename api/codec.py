"""Temporal's remote codec protocol, behind the API's keys: the Temporal UI and CLI decode histories here.

`temporal workflow show -w episode-EP-1 --codec-endpoint http://HOST:PORT/api/v1/codec --codec-auth
"Bearer <director or auditor key>"` prints the history decrypted; without the endpoint (or for any other
role) it stays ciphertext. Bodies are `{"payloads": [...]}` in protobuf's JSON form, as Temporal sends them.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from continuum.access import ApiKey
from continuum.api.auth import AUDIT
from continuum.api.problems import responses
from continuum.api.service_models import PayloadsJson
from continuum.runtime.codec import EncryptionCodec, PayloadKeyError

router = APIRouter(prefix="/api/v1/codec", tags=["temporal codec"])
MAX_PAYLOADS = 1000


async def _payloads(request: Request) -> Payloads:
    try:
        body = await request.json()
        if not isinstance(body, dict) or not isinstance(body.get("payloads", []), list):
            raise ValueError
        if len(body.get("payloads", [])) > MAX_PAYLOADS:
            raise HTTPException(413, f"payloads: at most {MAX_PAYLOADS} at once")
        return json_format.ParseDict(body, Payloads())
    except (ValueError, json_format.ParseError):
        raise HTTPException(422, 'payloads: expected {"payloads": [{"metadata": {...}, "data": "..."}]}') from None


def _codec(request: Request) -> EncryptionCodec:
    """The codec of the API's own Temporal client: the keys the API holds, no second copy."""
    codec = request.app.state.services.episodes.client.data_converter.payload_codec
    if not isinstance(codec, EncryptionCodec):
        raise HTTPException(404, "this API holds no payload keys")
    return codec


def _answer(payloads: list[Any]) -> dict[str, Any]:
    return json_format.MessageToDict(Payloads(payloads=payloads))


# The body is read by `_payloads` (protobuf's JSON parser, not pydantic), so the document declares it here.
CODEC_ROUTE: dict[str, Any] = {
    "response_model": PayloadsJson,
    "response_model_exclude_unset": True,  # protobuf's JSON form leaves an empty field out
    "responses": {
        404: {**responses(404)[404], "description": "this API holds no payload keys"},
    },
    "openapi_extra": {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PayloadsJson"}}},
        }
    },
}


@router.post("/decode", summary="Decrypt Temporal payloads (directors and auditors)", **CODEC_ROUTE)
async def decode(request: Request, caller: ApiKey = Depends(AUDIT)) -> dict[str, Any]:
    payloads, codec = await _payloads(request), _codec(request)
    try:
        return _answer(await codec.decode(list(payloads.payloads)))
    except PayloadKeyError as error:
        raise HTTPException(422, f"payloads: {error}") from None
    except ValueError:  # the cipher's own refusal: data too short to hold the nonce a sealed payload starts with
        raise HTTPException(422, "payloads: an encrypted payload too short to be one this API sealed") from None


@router.post("/encode", summary="Encrypt Temporal payloads (directors and auditors)", **CODEC_ROUTE)
async def encode(request: Request, caller: ApiKey = Depends(AUDIT)) -> dict[str, Any]:
    payloads, codec = await _payloads(request), _codec(request)
    return _answer(await codec.encode(list(payloads.payloads)))
