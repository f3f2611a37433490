"""Mastery on the pages people read: the learner model's estimate now, not the one stored at the
last answer.

``mastery.p_mastery`` is written after every answer. A skill left unpractised for weeks keeps that
value in the table, while the learner model (which counts the days since practice) expects less of
the student by now, and "Next up" already plans with that. The class grid, a student's history, the
student's own progress page and ``/api/v1/me/progress`` all go through ``refresh`` so they show the
same number "Next up" works from. Without a serving model the stored rule estimates are shown as they
are.
"""
from __future__ import annotations

import logging
from collections import defaultdict

from flask import current_app

log = logging.getLogger(__name__)


def refresh(conn, rows: list[dict], student_id: int | None = None) -> list[dict]:
    """Replace ``p_mastery`` in each row that has one (the skills with answers) by the model's value
    now, for every row or none (one model run for the whole page). Rows carry ``course_id`` and
    ``skill_id`` (and ``student_id`` unless given); changed in place."""
    learner = current_app.extensions["ce"].get("learner")
    if learner is None:
        return rows
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        if r.get("p_mastery") is not None:
            groups[(r["student_id"] if student_id is None else student_id, r["course_id"])].append(r)
    if not groups:
        return rows
    wanted = [(sid, cid, [r["skill_id"] for r in answered]) for (sid, cid), answered in groups.items()]
    now = _ask(learner, conn, wanted)
    if now is None:
        return rows
    for answered, values in zip(groups.values(), now):
        for r in answered:
            r["p_mastery"] = values.get(r["skill_id"], r["p_mastery"])
    return rows


def of_skills(conn, student_id: int, course_id: str, skills: list[str]) -> dict[str, float] | None:
    """The model's estimate now of one student's ``skills`` (None: no model, the stored values stand)."""
    learner = current_app.extensions["ce"].get("learner")
    if learner is None or not skills:
        return None
    now = _ask(learner, conn, [(student_id, course_id, list(skills))])
    return now[0] if now else None


def _ask(learner, conn, wanted: list[tuple[int, str, list[str]]]) -> list[dict[str, float]] | None:
    try:
        return learner.mastery_now(conn, wanted)
    except Exception:  # a page must not fail for the model: the stored values stand
        log.exception("learner mastery for a page of %d students and courses failed", len(wanted))
        return None
