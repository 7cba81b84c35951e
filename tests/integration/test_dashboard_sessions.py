"""Issue 19, finding 4: the dashboard's sessions are server-side, its forms carry CSRF tokens, its pages carry the
security headers, and a role sees there what the API lets it see."""

from __future__ import annotations

import hashlib
import re

import pytest
import structlog
from sqlalchemy import text

from continuum.api.dashboard import CONTENT_SECURITY_POLICY
from tests.integration.stacks import Stack, form_csrf, set_cookies

pytestmark = pytest.mark.integration


async def test_the_session_cookie_is_a_random_token_kept_only_as_its_digest(stack: Stack) -> None:
    signed_in = await stack.sign_in("director")
    with stack.store.engine.connect() as conn:
        stored = [bytes(r.token_hash) for r in conn.execute(text("SELECT token_hash FROM dashboard_sessions"))]
    with_the_key = await stack.http.get("/dashboard", headers={"Cookie": f"continuum_session={stack.keys['director']}"})
    with_the_token = await stack.http.get("/dashboard", headers=signed_in.headers)

    assert signed_in.token != stack.keys["director"] and len(signed_in.token) >= 43  # 256 random bits
    assert hashlib.sha256(signed_in.token.encode()).digest() in stored
    assert all(signed_in.token.encode() not in digest for digest in stored)
    assert with_the_key.status_code == 303  # the API key itself is no session
    assert with_the_token.status_code == 200


async def test_signing_out_ends_the_session_for_every_copy_of_the_cookie(stack: Stack) -> None:
    signed_in = await stack.sign_in("director")
    forged = await stack.http.post("/dashboard/sign-out", headers=signed_in.headers)  # another site's form
    still_in = await stack.http.get("/dashboard", headers=signed_in.headers)
    out = await stack.http.post("/dashboard/sign-out", data={"csrf_token": signed_in.csrf}, headers=signed_in.headers)
    replayed = await stack.http.get("/dashboard", headers=signed_in.headers)

    assert forged.status_code == 403 and still_in.status_code == 200
    assert out.status_code == 303 and out.headers["location"] == "/dashboard/sign-in"
    assert set_cookies(out)["continuum_session"] == ""
    assert replayed.status_code == 303 and replayed.headers["location"] == "/dashboard/sign-in"


async def test_revoking_a_key_ends_its_sessions_and_an_expired_session_opens_nothing(stack: Stack) -> None:
    auditor = await stack.sign_in("auditor")
    director = await stack.sign_in("director")
    [key] = [k for k in (await stack.get("/api/v1/keys", role="admin")).json()["keys"] if k["name"] == "auditor-1"]
    revoked = await stack.http.delete(f"/api/v1/keys/{key['key_id']}", headers=stack.auth("admin"))
    after_revocation = await stack.http.get("/dashboard/verify", headers=auditor.headers)
    with stack.store.engine.begin() as conn:
        conn.execute(
            text("UPDATE dashboard_sessions SET expires_at = clock_timestamp() WHERE token_hash = :h"),
            {"h": hashlib.sha256(director.token.encode()).digest()},
        )
    after_expiry = await stack.http.get("/dashboard", headers=director.headers)
    with stack.store.engine.connect() as conn:
        ended = conn.execute(
            text("SELECT revoked_at IS NOT NULL FROM dashboard_sessions WHERE key_id = :k"), {"k": key["key_id"]}
        ).scalar_one()

    assert revoked.status_code == 204 and ended
    assert after_revocation.status_code == 303 and after_expiry.status_code == 303


async def test_sign_in_needs_the_forms_csrf_token(stack: Stack) -> None:
    form = await stack.http.get("/dashboard/sign-in")
    nonce = set_cookies(form)["continuum_sign_in"]
    key = stack.keys["director"]
    without = await stack.http.post(
        "/dashboard/sign-in", data={"api_key": key}, headers={"Cookie": f"continuum_sign_in={nonce}"}
    )
    no_cookie = await stack.http.post("/dashboard/sign-in", data={"api_key": key, "csrf_token": form_csrf(form.text)})
    wrong = await stack.http.post(
        "/dashboard/sign-in",
        data={"api_key": key, "csrf_token": "0" * 64},
        headers={"Cookie": f"continuum_sign_in={nonce}"},
    )

    for refused in (without, no_cookie, wrong):
        assert refused.status_code == 403 and "CSRF" in refused.text
        assert "continuum_session" not in set_cookies(refused)


async def test_every_dashboard_answer_carries_the_security_headers_and_no_page_has_inline_script(stack: Stack) -> None:
    await stack.post("/api/v1/episodes", stack.episode())
    signed_in = await stack.sign_in("director")
    answers = [
        await stack.http.get("/dashboard/sign-in"),
        await stack.http.get("/dashboard"),  # a redirect to sign-in
        await stack.http.get("/dashboard", headers=signed_in.headers),
        await stack.http.get("/dashboard/episodes", headers=signed_in.headers),
        await stack.http.get(f"/dashboard/episodes/{stack.e1}", headers=signed_in.headers),
        await stack.http.get("/dashboard/episodes/EP-nope", headers=signed_in.headers),  # a refusal
        await stack.http.get("/dashboard/verify", headers=signed_in.headers),
        await stack.http.get("/dashboard/static/dashboard.js"),
    ]

    for answer in answers:
        assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY, answer.url
        assert answer.headers["referrer-policy"] == "no-referrer" and answer.headers["cache-control"] == "no-store"
        assert answer.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY and "'unsafe-inline'" not in CONTENT_SECURITY_POLICY
    for page in (a.text for a in answers if a.headers.get("content-type", "").startswith("text/html")):
        assert not re.search(r"<script(?![^>]*\bsrc=)", page)  # every script is a file in api/static
        assert not re.search(r"\son[a-z]+\s*=|\sstyle\s*=|javascript:", page)


async def test_an_auditor_refused_an_episodes_state_by_the_api_is_refused_it_on_the_dashboard(stack: Stack) -> None:
    await stack.post("/api/v1/episodes", stack.episode(client_id="client-77"))
    auditor = await stack.sign_in("auditor")
    director = await stack.sign_in("director")
    api_state = await stack.get(f"/api/v1/episodes/{stack.e1}", role="auditor")
    api_census = await stack.get("/api/v1/census", role="auditor")
    api_list = await stack.get("/api/v1/episodes", role="auditor")
    page = await stack.http.get(f"/dashboard/episodes/{stack.e1}", headers=auditor.headers)
    overview = await stack.http.get("/dashboard", headers=auditor.headers)
    listed = await stack.http.get("/dashboard/episodes", headers=auditor.headers)
    found = await stack.http.get("/dashboard/episodes", params={"q": stack.e1}, headers=auditor.headers)
    directors_page = await stack.http.get(f"/dashboard/episodes/{stack.e1}", headers=director.headers)

    assert api_state.status_code == 403 and api_census.status_code == 403 and api_list.status_code == 403
    assert page.status_code == 200 and 'id="timeline"' in page.text and 'id="state-hidden"' in page.text
    assert "client-77" not in page.text and "Sober since" not in page.text
    assert overview.status_code == 403 and overview.json()["detail"] == api_census.json()["detail"]
    assert listed.status_code == 403 and listed.json()["detail"] == api_list.json()["detail"]
    assert found.status_code == 303 and found.headers["location"] == f"/dashboard/episodes/{stack.e1}"
    assert directors_page.status_code == 200 and "client-77" in directors_page.text


@pytest.mark.parametrize("value", ["EP-\x00", "a\x00b", "\x1b[2J", "%FF"])
async def test_a_nul_or_control_character_in_a_dashboard_query_answers_400(stack: Stack, value: str) -> None:
    signed_in = await stack.sign_in("director")
    raw = "%FF" if value == "%FF" else None
    query = f"q={raw}" if raw else None
    searched = await stack.http.get(
        "/dashboard/episodes" + (f"?{query}" if query else ""),
        params=None if query else {"q": value},
        headers=signed_in.headers,
    )
    replayed = await stack.http.get(
        f"/dashboard/episodes/{stack.e1}", params={"as_of": "\x00"}, headers=signed_in.headers
    )

    assert searched.status_code == 400 and searched.json()["detail"].startswith("q:")
    assert replayed.status_code == 400 and replayed.json()["detail"].startswith("as_of:")


async def test_a_dashboard_pages_access_line_names_its_sessions_key_never_the_token(stack: Stack) -> None:
    signed_in = await stack.sign_in("director")
    [key] = [k for k in (await stack.get("/api/v1/keys", role="admin")).json()["keys"] if k["name"] == "director-1"]
    with structlog.testing.capture_logs() as structured:
        await stack.http.get("/dashboard/episodes", params={"q": "jane"}, headers=signed_in.headers)
    [line] = [line for line in structured if line["event"] == "api.request"]

    assert (line["route"], line["status"], line["key_id"]) == ("/dashboard/episodes", 200, key["key_id"])
    assert signed_in.token not in repr(structured) and "jane" not in repr(structured)
