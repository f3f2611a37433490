"""axe-core (from npm, injected by the test) on every kind of page, for every role, in real Chromium.

Fails on any serious or critical violation. Also covers the first-start setup page, creating the admin
through it, and keyboard use of the PIN form.
"""
from __future__ import annotations

import pytest
from lms_browser import (
    attach_demo_content,
    axe_violations,
    chromium,
    ensure_axe,
    live_server,
    need_chromium,
    shot,
)
from lms_fixtures import lms_config, make_class, make_staff, seed_course

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    need_chromium()
    axe = ensure_axe()
    people = {}

    def prepare(services):
        teacher = make_staff(services.db, "teacher", "tom", "correct horse")
        if not attach_demo_content(services):
            seed_course(services.db)
        class_id, students = make_class(services.db, teacher["id"], ["Ana", "Ben", "Carla"])
        people.update(class_id=class_id, students=students)

    with live_server(lms_config(tmp_path_factory.mktemp("lms-a11y")), prepare=prepare) as (url, services):
        yield url, services, axe, people


def _check(page, axe, name, found):
    shot(page, f"a11y-{name}")
    for v in axe_violations(page, axe):
        found.append(f"{name}: [{v['impact']}] {v['id']} - {v['help']}\n      " + "\n      ".join(v["nodes"]))


def test_no_serious_accessibility_violations(world):
    url, services, axe, people = world
    found: list[str] = []
    with services.db.read() as conn:
        course = conn.execute("SELECT id FROM courses WHERE language = 'en' LIMIT 1").fetchone()[0]
        lesson = conn.execute("SELECT id FROM lessons WHERE course_id = ? ORDER BY position LIMIT 1", (course,)).fetchone()[0]
    with chromium() as browser:
        # bypass_csp: axe is injected as a script tag, which our own CSP (rightly) forbids.
        ctx = browser.new_context(bypass_csp=True, viewport={"width": 1280, "height": 900})
        page = ctx.new_page()
        page.goto(url + "/")
        assert page.url.endswith("/setup")
        _check(page, axe, "setup", found)
        page.fill("#username", "root")
        page.fill("#display_name", "Root Admin")
        page.fill("#password", "a long password")
        page.fill("#password2", "a long password")
        page.click("button[type=submit]:has-text('Create the administrator')")
        page.wait_for_url(url + "/admin/")
        for path in ("/admin/", "/admin/users", "/admin/content", "/admin/backup", "/teach/",
                     f"/teach/classes/{people['class_id']}", f"/teach/classes/{people['class_id']}/progress",
                     f"/teach/classes/{people['class_id']}/hardest",
                     f"/teach/classes/{people['class_id']}/students/{people['students']['Ana']['id']}",
                     "/no-such-page"):
            page.goto(url + path)
            _check(page, axe, "admin" + path.replace("/", "-"), found)
        ctx.close()

        kid = browser.new_context(bypass_csp=True, viewport={"width": 412, "height": 860}, is_mobile=True)
        page = kid.new_page()
        page.goto(url + "/signin")
        _check(page, axe, "signin-classes", found)
        page.goto(f"{url}/signin/class/{people['class_id']}")
        _check(page, axe, "signin-names", found)
        ana = people["students"]["Ana"]
        page.goto(f"{url}/signin/class/{people['class_id']}/student/{ana['id']}")
        page.wait_for_selector(".keypad:not([hidden])")
        _check(page, axe, "signin-pin", found)
        page.goto(url + "/signin/staff")
        _check(page, axe, "signin-staff", found)
        # Keyboard only: the PIN field takes typed digits and four of them sign in.
        page.goto(f"{url}/signin/class/{people['class_id']}/student/{ana['id']}")
        page.focus("#pin")
        page.keyboard.type(ana["pin"])
        page.wait_for_url(url + "/learn")
        _check(page, axe, "student-home", found)
        page.goto(f"{url}/learn/{course}")
        _check(page, axe, "student-course", found)
        page.goto(f"{url}/learn/{course}/{lesson}")
        first = page.locator("form.exercise").first
        if first.locator(".hint-btn").count():
            first.locator(".hint-btn").click()
        first.locator("button.check").click()  # no answer chosen: the page asks for one
        first.locator(".feedback .notice").wait_for()
        _check(page, axe, "student-lesson", found)
        page.goto(url + "/me/progress")
        _check(page, axe, "student-progress", found)
        kid.close()
    assert not found, "serious accessibility violations:\n" + "\n".join(found)


def test_the_checker_itself_catches_violations(world):
    """Guard against a silent checker: a page with known serious faults must fail it."""
    _, _, axe, _ = world
    with chromium() as browser:
        page = browser.new_page()
        page.set_content('<html lang="en"><title>t</title><main><img src="x.png"><input type="text">'
                         '<p style="color:#bbb;background:#fff">low contrast</p></main></html>')
        ids = {v["id"] for v in axe_violations(page, axe)}
    assert {"image-alt", "label", "color-contrast"} <= ids


def test_keyboard_focus_is_visible_and_skip_link_works(world):
    url, _, _, _ = world
    with chromium() as browser:
        page = browser.new_page()
        page.goto(url + "/signin/staff")
        page.keyboard.press("Tab")
        focused = page.evaluate("document.activeElement.className")
        assert "skip" in focused
        shadow = page.evaluate("getComputedStyle(document.activeElement).boxShadow")
        assert shadow and shadow != "none"  # a visible focus ring
        page.keyboard.press("Enter")
        assert page.evaluate("document.activeElement.id") == "main"
