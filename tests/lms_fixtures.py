"""Helpers for the LMS tests (tests/web, tests/e2e): a small course inserted as rows, people, CSRF.

The course mirrors what the importer produces (safe body HTML, spec JSON per the agreed formats) with
every exercise kind, so the web tests do not depend on the content engine's generator.
"""
from __future__ import annotations

import json
import re

from appliance.people import accounts, classes
from appliance.people.passwords import hash_password
from appliance.store.database import now_iso

COURSE_ID = "fractions-mini"

SKILLS = [("parts", "Parts of a whole", []), ("equivalent", "Equivalent fractions", ["parts"]),
          ("add", "Adding fractions", ["equivalent"])]

LESSONS = [
    ("what-is-a-fraction", "What is a fraction?",
     ("<p>A fraction names <strong>equal parts</strong> of a whole.</p>"
      "<p>In <em>3/4</em> the bottom number says how many parts; the top says how many we take.</p>"),
     ["parts"]),
    ("equal-fractions", "Equal fractions",
     "<h2>Same amount, different names</h2><ul><li>1/2 = 2/4</li><li>2/3 = 4/6</li></ul>", ["equivalent"]),
]

EXERCISES = [
    # id, lesson, kind, prompt, spec, skills
    ("e1", "what-is-a-fraction", "single_choice", "Which fraction is one half?",
     {"choices": ["1/3", "1/2", "2/1"], "answer": 1, "hints": ["Half means 2 equal parts."],
      "explanation": "One half is 1 of 2 equal parts: 1/2."}, ["parts"]),
    ("e2", "what-is-a-fraction", "multiple_choice", "Which of these are fractions smaller than 1?",
     {"choices": ["1/4", "5/4", "2/3", "3/3"], "answer": [0, 2], "hints": ["The top must be smaller than the bottom."],
      "explanation": "1/4 and 2/3 have a top smaller than the bottom."}, ["parts"]),
    ("e3", "what-is-a-fraction", "numeric", "A pizza has 4 slices. You eat 3. What fraction did you eat?",
     {"answer": 0.75, "tolerance": 0.001, "hints": ["Slices eaten over all slices."],
      "explanation": "3 of 4 slices: 3/4 = 0.75."}, ["parts"]),
    ("e4", "what-is-a-fraction", "short_text", "What is the bottom number of a fraction called?",
     {"answers": ["denominator"], "patterns": ["denom.*"], "case_sensitive": False, "hints": ["It starts with d."],
      "explanation": "The bottom number is the denominator."}, ["parts"]),
    ("e5", "equal-fractions", "single_choice", "Which fraction equals 2/4?",
     {"choices": ["1/2", "1/4", "2/2"], "answer": 0, "hints": [], "explanation": "2/4 = 1/2."}, ["equivalent"]),
    ("e6", "equal-fractions", "free_text", "Explain why 1/2 and 2/4 are the same amount.",
     {"references": ["Both are half of the whole."], "threshold": None, "hints": [],
      "explanation": "Cutting each half in two makes quarters: two quarters are a half."}, ["equivalent", "add"]),
]

# The answers a student gives to get every exercise right (e6 is free text: graded later).
RIGHT = {"e1": {"choice": 1}, "e2": {"choices": [0, 2]}, "e3": {"value": "3/4"}, "e4": {"text": "Denominator"},
         "e5": {"choice": 0}, "e6": {"text": "Because both are one half."}}


def lms_config(data_dir, **env):
    """Same as tests/conftest.py make_config (imported by name, ``conftest`` is ambiguous across dirs)."""
    from appliance.config import load_config

    base = {"CLASSROOM_EDGE_STORAGE__DATA_DIR": str(data_dir), "CLASSROOM_EDGE_CONTENT__INSTALL_DEMO": "false"}
    base.update({f"CLASSROOM_EDGE_{k.upper()}": str(v) for k, v in env.items()})
    return load_config(env=base)


def seed_course(db, course_id: str = COURSE_ID, title: str = "Fractions (mini)") -> str:
    def write(conn):
        conn.execute("INSERT INTO courses (id, version, title, language, description, manifest, bundle_sha256, imported_at)"
                     " VALUES (?, '1.0.0', ?, 'en', 'Halves, quarters and friends.', '{}', 'test', ?)",
                     (course_id, title, now_iso()))
        for sid, name, pre in SKILLS:
            conn.execute("INSERT INTO skills (course_id, id, name, prerequisites) VALUES (?, ?, ?, ?)",
                         (course_id, sid, name, json.dumps(pre)))
        for pos, (lid, ltitle, body, skills) in enumerate(LESSONS):
            conn.execute("INSERT INTO lessons (course_id, id, position, title, body, media, skills) VALUES (?, ?, ?, ?, ?, '[]', ?)",
                         (course_id, lid, pos, ltitle, body, json.dumps(skills)))
        for pos, (eid, lid, kind, prompt, spec, skills) in enumerate(EXERCISES):
            conn.execute("INSERT INTO exercises (course_id, id, lesson_id, position, kind, prompt, spec, skills)"
                         " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (course_id, eid, lid, pos, kind, prompt, json.dumps(spec),
                                                            json.dumps(skills)))
    db.write(write)
    return course_id


def make_staff(db, role: str, username: str, password: str = "correct horse") -> dict:
    uid = accounts.add_staff(db, role=role, username=username, password=password, display_name=username.title())
    with db.read() as conn:
        return dict(conn.execute("SELECT * FROM users WHERE id = ?", (uid,)).fetchone())


def make_class(db, teacher_id: int, names: list[str], uses_pin: bool = True, name: str = "Class 4B",
               language: str | None = None) -> tuple[int, dict[str, dict]]:
    """A class with students; returns (class_id, {name: {id, pin, ...}})."""
    class_id = db.write(lambda c: classes.create_class(c, name=name, teacher_id=teacher_id, uses_pin=uses_pin,
                                                       language=language))
    added = classes.enrol_new_students(db, class_id, names)[0] if names else []
    return class_id, {a["display_name"]: a for a in added}


def classmates(db, class_id: int, *names: str) -> list[int]:
    """New students in an existing class; their ids. A test that needs several answers waiting for the
    teacher gives each to another student: a student's later answer to a question replaces the earlier."""
    return [a["id"] for a in classes.enrol_new_students(db, class_id, list(names))[0]]


def pseudo_rtl_dir(root):
    """Write ``<root>/ar/LC_MESSAGES/messages.mo``, a right-to-left test catalog: every UI string prefixed
    with an Arabic letter, so pages lay out right to left before anyone has translated them."""
    import io
    from pathlib import Path

    from babel.messages.catalog import Catalog
    from babel.messages.mofile import write_mo

    from appliance.web import catalogs

    catalog = Catalog(locale="ar", charset="utf-8")
    for msg in catalogs.extract():
        if not msg.id:
            continue
        if isinstance(msg.id, tuple):
            catalog.add(msg.id, tuple(f"\u0639 {msg.id[1]}" for _ in range(6)))
        else:
            catalog.add(msg.id, f"\u0639 {msg.id}")
    dest = Path(root) / "ar" / "LC_MESSAGES"
    dest.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    (dest / "messages.mo").write_bytes(buf.getvalue())
    return root


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf-token" content="([^"]+)"', html)
    assert m, "page has no csrf-token meta"
    return m.group(1)


def page_csrf(client, path: str = "/signin") -> str:
    resp = client.get(path)
    return csrf_of(resp.get_data(as_text=True))


def sign_in_staff(client, username: str, password: str = "correct horse"):
    token = page_csrf(client, "/signin/staff")
    return client.post("/signin/staff", data={"csrf_token": token, "username": username, "password": password})


def sign_in_student(client, class_id: int, student_id: int, pin: str | None):
    path = f"/signin/class/{class_id}/student/{student_id}"
    token = page_csrf(client, path)
    data = {"csrf_token": token}
    if pin is not None:
        data["pin"] = pin
    return client.post(path, data=data)


def staff_password_hash() -> str:
    return hash_password("correct horse")
