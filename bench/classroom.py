"""A realistic classroom for load and crash tests: the demo course, a teacher, a class of students,
and real HTTP sign-ins (class -> name -> PIN), exactly as a browser does them."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

import requests

from appliance.config import load_config
from appliance.people import classes
from appliance.people.accounts import add_staff
from appliance.services import Services

_CSRF = re.compile(r'name="csrf-token" content="([^"]+)"')


@dataclass
class Student:
    id: int
    name: str
    pin: str


def seed(data_dir: str, n_students: int, *, demo: bool = True) -> dict:
    """Create the database (migrated), the demo course, a teacher and a PIN class of ``n_students``."""
    env = {"CLASSROOM_EDGE_STORAGE__DATA_DIR": data_dir, "CLASSROOM_EDGE_CONTENT__INSTALL_DEMO": str(demo).lower()}
    services = Services.open(load_config(env=env))
    try:
        if demo:
            from appliance.content import install_demo_if_empty

            install_demo_if_empty(services)
        teacher_id = add_staff(services.db, role="teacher", username="teacher", password="correct horse",
                               display_name="Teacher")
        class_id = services.db.write(lambda c: classes.create_class(c, name="Class 5", teacher_id=teacher_id, uses_pin=True))
        names = [f"Student {i:03d}" for i in range(n_students)]
        added, _skipped = classes.enrol_new_students(services.db, class_id, names)
        students = [Student(a["id"], a["display_name"], a["pin"]) for a in added]
        with services.db.read() as conn:
            course = conn.execute("SELECT id FROM courses ORDER BY id LIMIT 1").fetchone()
            course_id = course["id"] if course else None
            lesson = exercise = asset = None
            if course_id:
                lesson = conn.execute("SELECT id FROM lessons WHERE course_id = ? ORDER BY position LIMIT 1", (course_id,)).fetchone()["id"]
                exercise = dict(conn.execute("SELECT id, kind, spec FROM exercises WHERE course_id = ? AND kind = 'single_choice' "
                                             "ORDER BY position LIMIT 1", (course_id,)).fetchone())
                row = conn.execute("SELECT name FROM course_assets WHERE course_id = ? ORDER BY name LIMIT 1", (course_id,)).fetchone()
                asset = row["name"] if row else None
    finally:
        services.close()
    return {"class_id": class_id, "students": students, "course_id": course_id, "lesson_id": lesson,
            "exercise": exercise, "asset": asset}


def sign_in(base: str, class_id: int, student: Student, timeout: float = 30) -> tuple[requests.Session, str]:
    """Sign one student in over HTTP; returns the session and the CSRF token for JSON writes."""
    s = requests.Session()
    path = f"{base}/signin/class/{class_id}/student/{student.id}"
    page = s.get(path, timeout=timeout)
    page.raise_for_status()
    token = _CSRF.search(page.text).group(1)
    r = s.post(path, data={"csrf_token": token, "pin": student.pin}, allow_redirects=False, timeout=timeout)
    if r.status_code != 302:
        raise RuntimeError(f"sign-in of {student.name} failed: {r.status_code}")
    home = s.get(base + "/", timeout=timeout)
    return s, _CSRF.search(home.text).group(1)


def right_answer(exercise: dict) -> dict:
    spec = json.loads(exercise["spec"])
    return {"choice": spec["answer"]}
