"""Each student's ``LearnerState`` per course, kept in the ``learner_state`` table.

The learner model needs a summary of the student's history (counts per skill, last practice, recent
accuracy). Keeping it up to date after every answer makes an answer cost one row read and one row
write. When a row is missing (answers given before this feature existed, or a teacher changed a
grade) the state is rebuilt from the graded attempts, oldest first, which is also what a teacher's
override does, so the summary always equals a replay of the stored grades.
"""
from __future__ import annotations

import json
import logging
import sqlite3
from dataclasses import dataclass
from datetime import datetime

from appliance.learning.features import LearnerState

log = logging.getLogger(__name__)


@dataclass
class StoredState:
    state: LearnerState
    version: int | None  # answers folded in; None when no row exists yet (the state was rebuilt)


def epoch_of(iso: str) -> float:
    """Seconds since the epoch of a stored ISO-8601 UTC timestamp ('...Z' or '+00:00')."""
    return datetime.fromisoformat(iso).timestamp()


def load(conn: sqlite3.Connection, student_id: int, course_id: str, exclude_uid: str | None = None) -> StoredState:
    row = conn.execute("SELECT state, version FROM learner_state WHERE student_id = ? AND course_id = ?",
                       (student_id, course_id)).fetchone()
    if row is not None:
        try:
            return StoredState(LearnerState.from_dict(json.loads(row["state"])), int(row["version"]))
        except (ValueError, TypeError) as exc:
            # A damaged row is not worth an error page: the attempts are the truth, rebuild from them.
            log.warning("learner state of student %s in %s unreadable (%s); rebuilding", student_id, course_id, exc)
    return StoredState(rebuild(conn, student_id, course_id, exclude_uid), None)


def rebuild(conn: sqlite3.Connection, student_id: int, course_id: str, exclude_uid: str | None = None) -> LearnerState:
    """Replay the student's graded attempts in ``course_id`` (answers waiting for a teacher are skipped)."""
    state = LearnerState()
    rows = conn.execute(
        "SELECT a.attempt_uid, a.exercise_id, a.correct, a.created_at, e.skills FROM attempts a"
        " LEFT JOIN exercises e ON e.course_id = a.course_id AND e.id = a.exercise_id"
        " WHERE a.student_id = ? AND a.course_id = ? AND a.graded_by != 'pending' ORDER BY a.id",
        (student_id, course_id))
    for r in rows:
        if r["attempt_uid"] == exclude_uid or r["skills"] is None:
            continue  # the answer being recorded now, or an exercise a course upgrade removed
        state.observe(r["exercise_id"], json.loads(r["skills"]), bool(r["correct"]), epoch_of(r["created_at"]))
    return state


def save(conn: sqlite3.Connection, student_id: int, course_id: str, state: LearnerState, version: int,
         now: str) -> None:
    conn.execute(
        "INSERT INTO learner_state (student_id, course_id, state, version, updated_at) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (student_id, course_id) DO UPDATE SET state = excluded.state, version = excluded.version,"
        " updated_at = excluded.updated_at",
        (student_id, course_id, json.dumps(state.to_dict(), separators=(",", ":")), version, now))


def current_version(conn: sqlite3.Connection, student_id: int, course_id: str) -> int | None:
    row = conn.execute("SELECT version FROM learner_state WHERE student_id = ? AND course_id = ?",
                       (student_id, course_id)).fetchone()
    return None if row is None else int(row[0])
