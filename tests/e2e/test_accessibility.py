"""axe-core (from npm, injected by the test) on every kind of page, for every role, in real Chromium.

Fails on any serious or critical violation. Also covers the first-start setup page, creating the admin
through it, and keyboard use of the PIN form.
"""
from __future__ import annotations

import json
import re

import pytest
from lms_browser import (
    answer_exercise,
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


def control_names(page) -> list[str]:
    """The names Chromium itself gives the page's links and buttons (its accessibility tree, what a
    screen reader reads), not those of axe's or Playwright's own name computation."""
    cdp = page.context.new_cdp_session(page)
    try:
        nodes = cdp.send("Accessibility.getFullAXTree")["nodes"]
    finally:
        cdp.detach()
    roles = {"link", "button", "DisclosureTriangle"}  # the last: a <summary>
    return [n["name"]["value"] for n in nodes if n.get("role", {}).get("value") in roles and n.get("name", {}).get("value")]


def _check(page, axe, name, found):
    shot(page, f"a11y-{name}")
    for v in axe_violations(page, axe):
        found.append(f"{name}: [{v['impact']}] {v['id']} - {v['help']}\n      " + "\n      ".join(v["nodes"]))
    # "Remove : Fractions": a visually hidden span after the visible word gets a space from Chromium.
    found.extend(f"{name}: a control named {n!r}" for n in control_names(page) if " : " in n)


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
        for path in ("/admin/", "/admin/users", "/admin/content", "/admin/backup", "/admin/settings", "/teach/",
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
        assert any(re.fullmatch(r"(Start|Keep going): \S.*", n) for n in control_names(page)), control_names(page)
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


def _tab_to(page, selector: str, limit: int = 40) -> None:
    """Press Tab until the focus is on an element matching ``selector`` (as a keyboard user would)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("s => document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"Tab never reached {selector}")


def test_a_keyboard_and_screen_reader_user_signs_in_answers_and_is_told_each_result(world):
    """What axe cannot see: the focus ring on card links, what the live regions say after a hint, an
    empty answer and a real one, the PIN keypad's count, and a linked question scrolled into view."""
    url, services, _, people = world
    with services.db.read() as conn:
        course = conn.execute("SELECT id FROM courses WHERE language = 'en' LIMIT 1").fetchone()[0]
        rows = [dict(r) for r in conn.execute(
            "SELECT e.id, e.lesson_id, e.kind, e.spec FROM exercises e JOIN lessons l ON l.course_id = e.course_id"
            " AND l.id = e.lesson_id WHERE e.course_id = ? ORDER BY l.position, e.position", (course,))]
    lesson = next(r["lesson_id"] for r in rows if r["kind"] == "single_choice" and json.loads(r["spec"]).get("hints"))
    cards = [r for r in rows if r["lesson_id"] == lesson]
    first = cards[0]
    ben = people["students"]["Ben"]
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{url}/signin/class/{people['class_id']}")
        _tab_to(page, "a.choice")
        ring = page.evaluate("getComputedStyle(document.activeElement).boxShadow")
        assert "rgb(26, 71, 184)" in ring, ring  # the focus ring, not the card's own shadow
        page.goto(f"{url}/signin/class/{people['class_id']}/student/{ben['id']}")
        page.wait_for_selector(".keypad:not([hidden])")
        _tab_to(page, f".keypad button[data-digit='{ben['pin'][0]}']")
        page.keyboard.press("Enter")
        page.wait_for_function("() => document.querySelector('.pin-count').textContent === '1 of 4 digits'")
        page.focus("#pin")
        page.keyboard.type(ben["pin"][1:])
        page.wait_for_url(url + "/learn")

        page.goto(f"{url}/learn/{course}/{lesson}")
        page.evaluate("""() => { window.heard = [];
            new MutationObserver(() => window.heard.push(document.querySelector('.sync-state').textContent))
              .observe(document.querySelector('.sync-state'), {childList: true, characterData: true, subtree: true}); }""")
        card = page.locator(f"form.exercise[data-exercise='{first['id']}']")
        hints = json.loads(first["spec"])["hints"]
        for n in range(1, len(hints) + 1):
            card.locator(".hint-btn").focus()
            page.keyboard.press("Enter")
            page.wait_for_function("t => document.querySelector('.announce').textContent.startsWith(t)",
                                   arg=f"Hint {n} of {len(hints)}: {hints[n - 1]}")
        # The last hint takes the button away: the focus goes back to the answer, not to the page.
        assert page.evaluate("document.activeElement.name") == "choice"
        card.locator("button.check").focus()
        page.keyboard.press("Enter")  # nothing chosen
        page.wait_for_function("() => document.querySelector('.announce').textContent === 'Please choose an answer first.'")
        radio = card.locator('input[name="choice"]').first
        assert radio.get_attribute("aria-invalid") == "true"
        assert card.locator(".feedback").get_attribute("id") in radio.get_attribute("aria-describedby")
        spec = json.loads(first["spec"])
        card.locator('input[name="choice"]').nth((int(spec["answer"]) + 1) % len(spec["choices"])).check()
        card.locator("button.check").focus()
        page.keyboard.press("Enter")  # wrong first, so that the right answer after it raises the mastery
        page.wait_for_function("() => document.querySelector('.announce').textContent.startsWith('Not quite.')")
        assert radio.get_attribute("aria-invalid") is None
        assert card.locator(".step-done").is_hidden(), "a wrong answer does not mark the question done"
        answer_exercise(card, first)
        card.locator("button.check").focus()
        page.keyboard.press("Enter")
        page.wait_for_function("() => document.querySelector('.announce').textContent.startsWith('Well done! That is right.')")
        card.locator(".mastery-up").wait_for()
        # The question's heading now says it is done (the dots that show it are hidden from screen readers).
        assert not card.locator(".step-done").is_hidden() and card.locator(".step").text_content().endswith(" (done)")
        said = page.locator(".announce").text_content()
        # The new mastery and its rise, as one sentence and without "black up-pointing triangle".
        assert re.search(r"\d+% mastered, up \d+", said) and "\u25b2" not in said, said
        assert said.startswith("Well done! That is right. ")  # a pause before the explanation
        page.keyboard.press("Shift+Tab")  # from "Next question" back to "Check my answer": the same answer again
        page.keyboard.press("Enter")
        page.wait_for_function("() => document.querySelector('.announce').textContent === 'You already sent this answer.'")
        # Sent at once: "answers waiting to be sent" was never said.
        assert not any("waiting" in h for h in page.evaluate("window.heard")), page.evaluate("window.heard")

        # A link to one question (Next up, search) shows that question, not just its field at the bottom,
        # even on a lesson whose pictures (lazy, without sizes) arrive after the page scrolled to it.
        pictured = [r for r in rows if r["lesson_id"] == "comparing-fractions"] or cards
        last = pictured[-1]
        page.goto(f"{url}/learn/{course}/{last['lesson_id']}#ex-{last['id']}")
        page.wait_for_function("() => document.activeElement.closest('form.exercise') !== null")
        page.wait_for_function("() => [...document.querySelectorAll('main img')].every(i => i.complete)")
        page.wait_for_timeout(200)
        box = page.evaluate("""id => { const c = document.querySelector(`form.exercise[data-exercise='${id}']`);
            const f = document.activeElement.getBoundingClientRect();
            return [c.getBoundingClientRect().top, f.bottom, innerHeight, scrollY, document.documentElement.scrollHeight]; }""",
                            last["id"])
        # From its top (or as far as the page scrolls), its answer field on screen.
        assert box[0] >= 0 and box[1] <= box[2] and (box[0] < 50 or box[3] + box[2] >= box[4] - 1), box

        # Offline: one sentence with the count, written once, not again at every retry.
        page.goto(f"{url}/learn/{course}/{lesson}")
        page.evaluate("""() => { window.heard = [];
            new MutationObserver(() => window.heard.push(document.querySelector('.sync-state').textContent))
              .observe(document.querySelector('.sync-state'), {childList: true, characterData: true, subtree: true}); }""")
        page.context.set_offline(True)
        card = page.locator("form.exercise:visible")
        card.locator("input, textarea").first.focus()
        if card.get_attribute("data-kind") == "single_choice":
            card.locator('input[name="choice"]').first.check()
        else:
            card.locator("input[type=text], textarea").first.fill("3")
        card.locator("button.check").click()
        page.wait_for_function("() => document.querySelector('.sync-state').textContent.includes('Answers waiting to be sent: 1')")
        page.wait_for_timeout(3500)  # at least two retries
        said = [h for h in page.evaluate("window.heard") if h]
        assert said and all(h == said[0] for h in said) and len(said) == 1, said
        assert said[0].startswith("No connection right now.")
        page.context.set_offline(False)
        page.wait_for_function("() => document.querySelector('.sync-state').textContent === ''", timeout=60000)
        shot(page, "a11y-linked-question")
