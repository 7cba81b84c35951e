"""`/docs` works with no network: Swagger UI's page names only the app's own assets, and the app serves them."""

from __future__ import annotations

import re
import socket
from typing import Any, cast

import pytest
from fastapi.testclient import TestClient

from continuum.api.app import create_app
from continuum.api.services import Services


def _no_network(*_args: Any, **_kwargs: Any) -> None:
    raise OSError("no network in this test")


def test_docs_and_every_asset_it_names_come_from_the_app(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _no_network)
    client = TestClient(create_app(cast(Services, object())))

    page = client.get("/docs")

    assert page.status_code == 200 and "swagger" in page.text.lower()
    assert "http://" not in page.text and "https://" not in page.text  # no CDN, no remote favicon
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
    assert {a.rsplit("/", 1)[-1] for a in assets} >= {"swagger-ui-bundle.js", "swagger-ui.css"}
    for asset in assets:
        response = client.get(asset)
        assert response.status_code == 200 and len(response.content) > 100, asset
    assert "openapi.json" in page.text
