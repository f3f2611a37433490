"""The box's own answers, as the learner model sees them, and the students kept out of training.

Ids follow the LMS's learner hook (``appliance.learning.learner_state``), so the model trains on exactly
the rows it is asked about when serving: a student's history is kept per course, the item is the
exercise id and the skills are the course's skill ids. Here a "student" is therefore
``<uid>/<course>``; answers waiting for a teacher's grade are left out, as there.

The holdout is a fixed, hash-chosen share of students (by uid, so all their courses): never trained on
by this box, so every global model can be judged on answers it has not seen, the same students on
every night.
"""
from __future__ import annotations

import calendar
import hashlib
import json
import logging
import sqlite3
import time
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Interaction:
    student_id: str
    item_id: str
    skills: tuple[str, ...]
    correct: int
    timestamp: float
    seq: int = 0  # attempts.id: the order answers were recorded in, immune to clock jumps


def history_key(uid: str, course_id: str) -> str:
    """One learner history per student and course, as ``learner_state`` keeps it."""
    return f"{uid}/{course_id}"


def parse_ts(text: str) -> float:
    """``2024-05-01T10:11:12.345Z`` (``store.now_iso``) -> epoch seconds."""
    try:
        whole = calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S"))
    except (TypeError, ValueError):
        raise ValueError(f"not an ISO timestamp: {text!r}") from None
    frac = text[19:].rstrip("Z")
    return whole + (float(frac) if frac.startswith(".") and frac[1:].isdigit() else 0.0)


def load_interactions(conn: sqlite3.Connection) -> list[Interaction]:
    """Every graded answer on this box, oldest first (answers to exercises since removed are skipped)."""
    rows = conn.execute(
        "SELECT u.uid, a.course_id, a.exercise_id, a.correct, a.created_at, e.skills, a.id FROM attempts a "
        "JOIN exercises e ON e.course_id = a.course_id AND e.id = a.exercise_id "
        "JOIN users u ON u.id = a.student_id WHERE a.graded_by != 'pending' ORDER BY a.id").fetchall()
    out = []
    for uid, course, exercise, correct, created, skills, seq in rows:
        try:
            tags = tuple(str(s) for s in json.loads(skills))
            out.append(Interaction(history_key(uid, course), exercise, tags, int(bool(correct)), parse_ts(created),
                                   int(seq)))
        except (ValueError, TypeError) as exc:
            log.warning("skipping attempt on %s/%s: %s", course, exercise, exc)
            continue
    return [i for i in out if i.skills]


def in_holdout(student_id: str, fraction: float) -> bool:
    """Deterministic: the same student is always on the same side (for a given fraction)."""
    if fraction <= 0:
        return False
    uid = student_id.split("/", 1)[0]  # a person is held out in all their courses
    h = hashlib.blake2b(f"ce-fl-holdout:{uid}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") / 2 ** 64 < fraction


def holdout_students(interactions, fraction: float) -> frozenset[str]:
    return frozenset(s for s in {i.student_id for i in interactions} if in_holdout(s, fraction))
