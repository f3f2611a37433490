"""The box's own answers, as the learner model sees them, and the students kept out of training.

Ids follow one convention shared with the LMS's learner hook: an item is ``<course>/<exercise>`` and a
skill ``<course>/<skill>``, so two courses never share a parameter by accident and the ids the model
trains on are the ids it is asked about when serving. Students are named by their stable ``uid``.

The holdout is a fixed, hash-chosen share of students: never trained on by this box, so every global
model can be judged on answers it has not seen, and the same students are held out on every night.
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


def item_key(course_id: str, exercise_id: str) -> str:
    return f"{course_id}/{exercise_id}"


def skill_key(course_id: str, skill_id: str) -> str:
    return f"{course_id}/{skill_id}"


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
        "JOIN users u ON u.id = a.student_id ORDER BY a.created_at, a.id").fetchall()
    out = []
    for uid, course, exercise, correct, created, skills, seq in rows:
        try:
            tags = tuple(skill_key(course, s) for s in json.loads(skills))
            out.append(Interaction(uid, item_key(course, exercise), tags, int(bool(correct)), parse_ts(created),
                                   int(seq)))
        except (ValueError, TypeError) as exc:
            log.warning("skipping attempt on %s/%s: %s", course, exercise, exc)
            continue
    return [i for i in out if i.skills]


def in_holdout(student_id: str, fraction: float) -> bool:
    """Deterministic: the same student is always on the same side (for a given fraction)."""
    if fraction <= 0:
        return False
    h = hashlib.blake2b(f"ce-fl-holdout:{student_id}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") / 2 ** 64 < fraction


def holdout_students(interactions, fraction: float) -> frozenset[str]:
    return frozenset(s for s in {i.student_id for i in interactions} if in_holdout(s, fraction))
