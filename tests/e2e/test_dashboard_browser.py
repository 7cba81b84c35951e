"""The dashboard in headless Chromium (Debian's `chromium`, driven over the DevTools protocol): sign in
with a director key, read the census, open an episode's timeline and replay it as of an instant, all over
a real `continuum up` with seeded episodes."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from itertools import count
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from tests.integration.stacks import RunningStack

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
    "--window-size=1280,1000",  # a desk's screen: the screenshots show the pages as a director sees them
]


class Page:
    """One browser tab over the DevTools protocol: navigate, evaluate JavaScript, wait for a condition."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket, self.ids = socket, count(1)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        message_id = next(self.ids)
        self.socket.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=30))
            if message.get("id") == message_id:
                assert "error" not in message, message
                return message["result"]  # type: ignore[no-any-return]

    def js(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def until(self, expression: str, what: str) -> Any:
        """Poll a JavaScript expression until it is truthy (a bounded wait for the page, not a timing check)."""
        for _ in range(200):
            try:
                value = self.js(expression)
            except AssertionError:  # the page is between documents
                value = None
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"never happened in the browser: {what}; page: {self.js('location.href')}")

    def screenshot(self, folder: Path, name: str) -> Path:
        """The whole page as a PNG in `folder` (the run's screenshots, which CI keeps)."""
        self.until("document.readyState === 'complete' && document.documentElement.clientWidth > 0", f"{name} drawn")
        shot = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path = folder / f"{name}.png"
        path.write_bytes(base64.b64decode(shot["data"]))
        assert path.read_bytes()[:4] == b"\x89PNG" and path.stat().st_size > 5_000, f"an empty screenshot of {name}"
        return path

    def sign_in(self, stack: RunningStack, role: str = "director") -> None:
        """Sign in through the form with the stack's key for `role`, and wait for the page it leads to."""
        self.goto(f"{stack.url}/dashboard/sign-in")
        self.until("!!document.getElementById('api_key')", "sign-in form")
        self.js(
            f"document.getElementById('api_key').value = {json.dumps(stack.keys[role])};"
            " document.getElementById('sign-in').click()"
        )
        self.until("location.pathname !== '/dashboard/sign-in' && document.readyState === 'complete'", "signed in")

    def follow(self, link: str, path: str, then: str) -> Any:
        """Click the link `link` (a CSS selector) and, once the browser is at `path`, what `then` answers."""
        self.js(f"document.querySelector({json.dumps(link)}).click()")
        return self.until(f"location.pathname === {json.dumps(path)} && ({then})", f"{then} at {path}")

    def goto(self, url: str) -> None:
        self.call("Page.navigate", url=url)
        self.until(
            f"location.href.startsWith({json.dumps(url.split('?')[0])}) && document.readyState === 'complete'",
            f"load {url}",
        )


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every browser test's screenshots, in one folder of the test run's temp dir (`<basetemp>/screenshots`):
    CI keeps it as an artifact, and a reader sees each page as a director did."""
    folder = tmp_path_factory.getbasetemp() / "screenshots"
    folder.mkdir(exist_ok=True)
    return folder


@pytest.fixture
def browser() -> Iterator[Page]:
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium is not installed; .ci/run installs it (apt-get install chromium)")
        pytest.skip("Debian's chromium is not installed here (apt-get install chromium); CI installs it")
    profile = tempfile.mkdtemp(prefix="continuum-chromium-")
    process = subprocess.Popen(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        endpoint = next(line for line in process.stderr if "DevTools listening on" in line).split()[-1]
        port = endpoint.split(":")[2].split("/")[0]
        targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
        page = next(t for t in targets if t["type"] == "page")
        with connect(page["webSocketDebuggerUrl"], max_size=None) as socket:
            tab = Page(socket)
            tab.call("Page.enable")
            yield tab
    finally:
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(profile, ignore_errors=True)


def _seed(stack: RunningStack) -> str:
    """One episode placed in residential, then moved to intensive outpatient: two stays to draw."""
    episode = f"EP-UI-{uuid.uuid4().hex[:6]}"
    auth = {"Authorization": f"Bearer {stack.keys['clinician']}"}
    body = {
        "episode_id": episode,
        "client_id": "client-ui",
        "assessment": {"ratings": [0, 0, 1, 0, 0, 3], "assessed_by": "clin-1"},
    }
    assert httpx.post(f"{stack.url}/api/v1/episodes", json=body, headers=auth, timeout=60).status_code == 201
    override = {"level": "intensive_outpatient", "reason": "payer_denial", "clinician": "clin-1"}
    assert (
        httpx.post(
            f"{stack.url}/api/v1/episodes/{episode}/placement-override", json=override, headers=auth, timeout=60
        ).status_code
        == 200
    )
    return episode


def test_a_director_signs_in_reads_the_census_and_opens_a_timeline(
    running_stack: RunningStack, browser: Page, screenshots: Path
) -> None:
    episode = _seed(running_stack)
    base = running_stack.url

    browser.goto(f"{base}/dashboard")
    assert browser.until(
        "location.pathname === '/dashboard/sign-in' && !!document.getElementById('api_key')", "sign-in form"
    )
    browser.js("document.getElementById('api_key').value = 'not-a-key'; document.getElementById('sign-in').click()")
    assert "not valid" in browser.until(
        "document.querySelector('.error') && document.querySelector('.error').innerText", "refusal"
    )
    browser.screenshot(screenshots, "sign-in-refused")
    sign_in_token = browser.js("document.querySelector('input[name=csrf_token]').value")
    browser.js(
        f"document.getElementById('api_key').value = {json.dumps(running_stack.keys['director'])};"
        " document.getElementById('sign-in').click()"
    )
    census = browser.until(
        "location.pathname === '/dashboard' && document.getElementById('census-table')"
        " && document.getElementById('census-table').innerText",
        "the census",
    )
    bars = browser.js("document.querySelectorAll('#census-chart rect[class^=status-]').length")
    browser.screenshot(screenshots, "census")
    hidden_cookie = browser.js("document.cookie")

    browser.goto(f"{base}/dashboard/episodes?q={episode[:9]}")
    listed = browser.until("document.getElementById('episode-list').innerText", "the episode list")
    browser.screenshot(screenshots, "episode-list")
    browser.js(f"document.querySelector('a[href=\"/dashboard/episodes/{episode}\"]').click()")
    title = browser.until(
        f"location.pathname.endsWith('{episode}') && document.getElementById('episode-title')"
        " && document.getElementById('episode-title').innerText",
        "the episode page",
    )
    stays = browser.js("Array.from(document.querySelectorAll('#timeline rect.stay')).map(r => r.textContent)")
    causes = browser.js("document.getElementById('events').innerText")
    browser.screenshot(screenshots, "episode")

    opened_at = httpx.get(
        f"{base}/api/v1/episodes/{episode}/events",
        headers={"Authorization": f"Bearer {running_stack.keys['auditor']}"},
        timeout=30,
    ).json()["events"][3]["recorded_at"]
    browser.js(
        f"document.getElementById('as_of').value = {json.dumps(opened_at)};"
        " document.getElementById('as-of-form').submit()"
    )
    replay = browser.until(
        "document.getElementById('replay-note') && document.getElementById('replay-note').innerText", "the replay"
    )
    replayed_title = browser.js("document.getElementById('episode-title').innerText")
    browser.screenshot(screenshots, "episode-replayed")

    browser.js(
        "document.querySelector('form[action=\"/dashboard/sign-out\"] button').click()"
    )  # carries its CSRF token
    signed_out = browser.until(
        "location.pathname === '/dashboard/sign-in' && !!document.getElementById('api_key')", "signed out"
    )
    browser.goto(f"{base}/dashboard")
    after_sign_out = browser.until("location.pathname", "where the old session leads")

    assert "intensive outpatient (IOP)\tactive" in census and bars >= 1
    assert "continuum_session" not in hidden_cookie  # HttpOnly: scripts cannot read the session
    assert episode in listed
    assert episode in title and "intensive outpatient (IOP)" in title
    assert [s.split(" from ")[0] for s in stays] == ["residential", "intensive outpatient (IOP)"]
    assert "payer_denial" in causes  # each step shows its cause
    assert "4 events" in replay and "residential" in replayed_title  # the record as it stood before the move
    assert len(sign_in_token) == 64  # the sign-in form's CSRF token went with the key
    assert signed_out and after_sign_out == "/dashboard/sign-in"  # signing out ended the session
