"""Helpers for the federated tests: simulated answers as LMS rows, hub keys, global versions on disk."""
from __future__ import annotations

import base64
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from appliance.federated.artifact import repo_version, write_version_dir
from appliance.learning.features import FeatureSpec

COURSE = "sim"


def keypair() -> tuple[str, str]:
    """(private seed b64, public key b64), the formats of hub.signing_key_file and *.trusted_keys."""
    from cryptography.hazmat.primitives import serialization as ser
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    seed = key.private_bytes(ser.Encoding.Raw, ser.PrivateFormat.Raw, ser.NoEncryption())
    pub = key.public_key().public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw)
    return base64.b64encode(seed).decode(), base64.b64encode(pub).decode()


def iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{round(ts * 1000) % 1000:03d}Z"


def exercise_id(item_id: str) -> str:
    return item_id.replace("/", "-")


def seed_answers(db, attempts, course: str = COURSE) -> int:
    """Write simulator attempts as LMS rows (course, exercises, students, attempts); returns rows added."""
    def job(conn):
        conn.execute("INSERT OR IGNORE INTO courses (id, version, title, language, manifest, bundle_sha256, "
                     "imported_at) VALUES (?, '1', 'Simulated', 'en', '{}', 'test', ?)", (course, iso(time.time())))
        users = {}
        for a in attempts:
            ex = exercise_id(a.item_id)
            conn.execute("INSERT OR IGNORE INTO exercises (course_id, id, lesson_id, position, kind, prompt, spec, "
                         "skills) VALUES (?, ?, 'l', 0, 'single_choice', 'q', '{}', ?)",
                         (course, ex, json.dumps(list(a.skills))))
            if a.student_id not in users:
                conn.execute("INSERT OR IGNORE INTO users (role, display_name, uid, created_at) VALUES "
                             "('student', ?, ?, ?)", (a.student_id, a.student_id, iso(time.time())))
                users[a.student_id] = conn.execute("SELECT id FROM users WHERE uid = ?", (a.student_id,)).fetchone()[0]
        conn.executemany(
            "INSERT INTO attempts (attempt_uid, student_id, course_id, exercise_id, answer, correct, score, graded_by, "
            "created_at) VALUES (?, ?, ?, ?, '{}', ?, ?, 'rule', ?)",
            [(f"{a.student_id}-{a.timestamp:.3f}-{i}", users[a.student_id], course, exercise_id(a.item_id),
              int(a.correct), float(a.correct), iso(a.timestamp)) for i, a in enumerate(attempts)])
        return len(attempts)

    return db.write(job)


def as_lms(attempts, course: str = COURSE):
    """The same attempts with the ids the box's training sees (student ``<uid>/<course>``, item = exercise id)."""
    from appliance.federated.data import Interaction

    return [Interaction(f"{a.student_id}/{course}", exercise_id(a.item_id), tuple(a.skills), int(a.correct),
                        float(round(a.timestamp, 3))) for a in attempts]


def install_version(repo, *, version: int, params: np.ndarray, spec: FeatureSpec, key_b64: str | None,
                    model: str = "learner", tamper=None) -> str:
    """Put a global version into a box repository, as the downlink's import would."""
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "v"
        write_version_dir(d, model=model, version=version, parent=version - 1 if version > 1 else None,
                          params=params, spec=spec, info={"strategy": "fedavg"}, signing_key_b64=key_b64)
        from appliance.inference.repository import Repository

        mv = Repository(repo.root, []).import_version(d, model, repo_version(version))  # import never judges
    if tamper:
        tamper(mv.path)  # changed on disk after the import (damage, or someone with access to the box)
    return repo_version(version)


def install_local(repo, params: np.ndarray, spec: FeatureSpec, model: str = "learner") -> str:
    """A locally built (unsigned, numeric version) learner model, like the install-time default."""
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "v"
        write_version_dir(d, model=model, version=0, parent=None, params=params, spec=spec, info={},
                          signing_key_b64=None)
        meta = json.loads((d / "model.json").read_text())
        meta.pop("federated")
        (d / "model.json").write_text(json.dumps(meta))
        from appliance.inference.repository import Repository

        return Repository(repo.root, []).import_version(d, model).version
