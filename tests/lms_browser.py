"""Browser-test plumbing for the LMS: a real server on 127.0.0.1, Debian Chromium via Playwright,
answering exercises from their specs, screenshots and axe-core.

The server is the production WSGI server of ``classroom-edge run`` (waitress, ``WaitressPart``) in a
thread of the test process, so the test can seed and inspect the same database.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest

from appliance.services import Services
from appliance.web.app import create_app

ROOT = Path(__file__).resolve().parent
ARTIFACTS = ROOT / "artifacts" / "browser"
NODE_DIR = ROOT / ".node"
AXE = NODE_DIR / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def need_chromium():
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (apt-get install chromium; `make debs`)")
    pytest.importorskip("playwright.sync_api")


@contextmanager
def live_server(cfg, prepare=None, before_serving=None):
    """Yield (base_url, services) for a waitress server on an ephemeral loopback port."""
    from appliance.web.server import WaitressPart

    services = Services.open(cfg)
    try:
        if prepare is not None:
            prepare(services)
        app = create_app(services)
        if before_serving is not None:
            before_serving(app)
        part = WaitressPart(services, app, "127.0.0.1", 0, 8)
        part.start()
        try:
            yield part.url, services
        finally:
            part.stop(10)
    finally:
        services.close()


def attach_demo_content(services) -> bool:
    """The content engine's real demo course (blobs, importer); False when that part is absent."""
    try:
        from appliance.content import attach, install_demo_if_empty
    except ImportError:
        return False
    attach(services)
    local = services.cfg.replace(content={"install_demo": True})
    install_demo_if_empty(Services(cfg=local, db=services.db, components=services.components))
    return True


@contextmanager
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def sign_in_staff(page, url: str, username: str, lands_on: str, password: str = "correct horse") -> None:
    """Sign a teacher or admin in through the staff form and wait for their landing page."""
    page.goto(url + "/signin/staff")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit]:has-text('Sign in')")
    page.wait_for_url(url + lands_on)


def shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def answer_exercise(card, exercise: dict) -> None:
    """Fill the right answer into an exercise card (a Playwright locator) from the exercise's spec."""
    spec = json.loads(exercise["spec"]) if isinstance(exercise["spec"], str) else exercise["spec"]
    kind = exercise["kind"]
    if kind == "single_choice":
        card.locator('input[name="choice"]').nth(int(spec["answer"])).check()
    elif kind == "multiple_choice":
        boxes = card.locator('input[name="choice"]')
        for i in range(boxes.count()):
            if i in spec["answer"]:
                boxes.nth(i).check()
    elif kind == "numeric":
        card.locator("input[type=text]").fill(str(spec["answer"]))
    elif kind == "short_text":
        card.locator("input[type=text]").fill(spec["answers"][0])
    else:
        card.locator("textarea").fill(spec["references"][0])


def ensure_axe() -> str:
    """axe-core from the npm registry into tests/.node (git-ignored); never from a CDN."""
    if not AXE.exists():
        if shutil.which("npm") is None:
            pytest.skip("npm is not installed (Debian package npm) to fetch axe-core")
        subprocess.run(["npm", "install", "--no-save", "--no-package-lock", "--no-audit", "--no-fund",
                        "--prefix", str(NODE_DIR), "axe-core@4"], check=True, capture_output=True, timeout=300)
    return AXE.read_text()


def axe_violations(page, axe_source: str, impacts=("serious", "critical")) -> list[dict]:
    page.add_script_tag(content=axe_source)
    result = page.evaluate("""async () => {
        const r = await axe.run(document, {resultTypes: ['violations']});
        return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.slice(0, 5).map(n => n.target.join(' ') + ' :: ' + n.failureSummary)}));
    }""")
    return [v for v in result if v["impact"] in impacts]
