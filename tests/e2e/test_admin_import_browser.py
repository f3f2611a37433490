"""The admin's course import in real Chromium: upload through the file input, the live progress bar,
the result in words and in the course list, and a damaged bundle refused with nothing changed.

The box already holds the Spanish demo course. The import worker runs in this process (the server is a
thread of the test), so the test holds it at its first "verifying" report: the page must show the job
running, part-way, before it shows it finished. Screenshots go to tests/artifacts/browser/.
"""
from __future__ import annotations

import json
import re
import threading

import pytest
from lms_browser import chromium, live_server, need_chromium, shot, sign_in_staff
from lms_fixtures import lms_config, make_staff

from appliance.content import attach, demo
from appliance.content.writer import write_bundle

pytestmark = pytest.mark.slow
RUNNING = "Checking and installing: checking every file"  # the "verifying" stage, in words

# Every change of the bar and of the status line, in order, as the page makes them.
RECORD = """() => {
  window.seen = [];
  const bar = document.getElementById('import-bar'), state = document.getElementById('import-state');
  const note = () => window.seen.push({value: bar.value, text: state.textContent});
  new MutationObserver(note).observe(bar, {attributes: true});
  new MutationObserver(note).observe(state, {childList: true, characterData: true, subtree: true});
}"""


def _prepare(services):
    make_staff(services.db, "admin", "alice", "correct horse")
    attach(services)
    spanish = demo.write(services.data_dir / "fractions-es.zip", "es")
    services.get("content_importer").run(spanish)
    spanish.unlink()


@pytest.fixture
def server(tmp_path):
    need_chromium()
    with live_server(lms_config(tmp_path / "data"), prepare=_prepare) as (url, services):
        yield url, services


@pytest.fixture
def page(server):
    url, _ = server
    with chromium() as browser:
        ctx = browser.new_context(viewport={"width": 1280, "height": 900})
        p = ctx.new_page()
        sign_in_staff(p, url, "alice", "/admin/")
        p.goto(url + "/admin/content")
        yield p
        ctx.close()


def _course_titles(page) -> list[str]:
    return page.locator("#course-list tbody th[scope=row]").all_inner_texts()


def _hold_at_verifying(services):
    """Pause the real import at its first asset; returns (reached, release) events."""
    importer = services.get("content_importer")
    run = importer.run
    reached, release = threading.Event(), threading.Event()

    def held(path, *, force=False, progress=None):
        def report(done, total, stage):
            progress(done, total, stage)
            if stage == "verifying" and not reached.is_set():
                reached.set()
                release.wait(60)
        return run(path, force=force, progress=report)

    importer.run = held
    return reached, release


def test_import_shows_live_progress_then_the_new_course(server, page, tmp_path):
    url, services = server
    bundle = demo.write(tmp_path / "fractions.zip", "en")
    manifest = json.loads(demo.build("en")[0])  # what the page must name, from the bundle itself
    assert _course_titles(page) == ["Fracciones"]
    assert page.locator("#import-progress").is_hidden()
    page.evaluate(RECORD)
    reached, release = _hold_at_verifying(services)
    try:
        page.set_input_files("#bundle", str(bundle))
        page.click("#import-form button[type=submit]")
        page.locator("#import-progress").wait_for(state="visible")
        assert reached.wait(60), "the import never started verifying"
        # The next poll shows the job running, part of the way.
        page.wait_for_function(f"() => document.getElementById('import-state').textContent === '{RUNNING}'")
        running = page.evaluate("document.getElementById('import-bar').value")
        assert 0 < running < 100
        # One import at a time: the button is off while this one runs.
        assert page.locator('#import-form button[type="submit"]').is_disabled()
        shot(page, "admin-import-running")
    finally:
        release.set()
    page.locator("#import-progress[data-state=done]").wait_for(timeout=60000)
    assert page.locator('#import-form button[type="submit"]').is_enabled()
    assert page.evaluate("document.getElementById('import-bar').value") == 100
    done = f"Installed: {manifest['title']} (version {manifest['version']})."
    assert page.locator("#import-state").inner_text() == done
    assert page.locator("#import-state").get_attribute("class") == "notice ok"
    texts = [s["text"] for s in page.evaluate("window.seen")]
    assert texts[0] == "Uploading…" and texts[-1] == done
    assert texts.index(RUNNING) < texts.index(done)
    # Without a reload, the new course is listed next to the old one, and in the recent imports.
    page.locator("#course-list tbody th[scope=row]").nth(1).wait_for()
    assert sorted(_course_titles(page)) == sorted(["Fracciones", manifest["title"]])
    recent = page.locator("#recent-imports tbody tr").first.inner_text()
    assert "fractions.zip" in recent and "Done" in recent and "(installed)" in recent
    shot(page, "admin-import-progress")
    with services.db.read() as conn:
        assert conn.execute("SELECT version FROM courses WHERE id = ?", (manifest["id"],)).fetchone()[0] == manifest["version"]


def test_a_damaged_bundle_is_refused_in_the_page_and_nothing_changes(server, page, tmp_path):
    _url, services = server
    manifest, blobs = demo.build("en")
    victim = sorted(blobs)[0]
    data = bytearray(blobs[victim])
    data[-2] ^= 0x01  # same size, one bit changed: only the hash can tell
    bundle = write_bundle(tmp_path / "damaged.zip", manifest, {**blobs, victim: bytes(data)})
    before = _course_titles(page)
    with services.db.read() as conn:
        rows_before = [tuple(r) for r in conn.execute("SELECT id, version, bundle_sha256 FROM courses ORDER BY id")]
    page.set_input_files("#bundle", str(bundle))
    page.click("#import-form button[type=submit]")
    page.locator("#import-progress[data-state=failed]").wait_for(timeout=60000)
    message = page.locator("#import-state").inner_text()
    assert re.fullmatch(r"The course was not imported: asset '[^']+' does not match its sha256 in course\.json: "
                        r"the bundle is damaged or was changed\.", message), message
    assert page.locator("#import-state").get_attribute("class") == "notice bad"
    assert page.locator("#import-progress").is_visible()
    # The lists were fetched again after the refusal: it is in the recent imports, and no course came.
    page.locator("#recent-imports tbody tr", has_text="damaged.zip").wait_for()
    assert "Refused" in page.locator("#recent-imports tbody tr").first.inner_text()
    shot(page, "admin-import-error")
    assert _course_titles(page) == before == ["Fracciones"]
    page.reload()
    assert _course_titles(page) == before
    with services.db.read() as conn:
        assert [tuple(r) for r in conn.execute("SELECT id, version, bundle_sha256 FROM courses ORDER BY id")] == rows_before
