"""The simulated district for ``bench/federated.py``: classrooms, their answers by night, baselines.

Every classroom comes from the student simulator with its own pace, ability and curriculum order
(non-IID), on one shared curriculum (classrooms that share a model share a course). Each classroom's
students are split into
- test students: never on any box; the held-out AUC of every method is measured on them;
- box students: their answers go into the box's database night by night (``rounds`` chunks in time).
A box keeps its own hash-chosen holdout among its students (for judging global models) and trains on
the rest; the centralized and local-only baselines train on exactly those same rows.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import sparse

from appliance.federated.data import Interaction, holdout_students
from appliance.federated.local_train import Rows
from appliance.learning.features import FeatureSpec
from appliance.learning.learner_train import auc, params_to_vector, train
from appliance.learning.simulator import make_curriculum, simulate_classroom

COURSE = "sim"
ORDERS = ("topological", "shuffled", "random")


@dataclass
class Classroom:
    index: int
    pace: float
    ability: float
    order: str
    nights: list[list] = field(default_factory=list)      # simulator attempts written to the box each night
    test_rows: Rows | None = None
    train_rows: Rows | None = None                         # every box answer (features need whole histories)
    train_night: np.ndarray | None = None                  # night each row arrives
    train_mask: np.ndarray | None = None                   # rows the box trains on (not its own holdout)


def lms_ids(attempts) -> list[Interaction]:
    """Attempts with the ids a box's training sees for them (student ``<uid>/<course>``, item = exercise id)."""
    return [Interaction(f"{a.student_id}/{COURSE}", exercise_id(a.item_id), tuple(a.skills), int(a.correct),
                        float(round(a.timestamp, 3))) for a in attempts]


def exercise_id(item_id: str) -> str:
    return item_id.replace("/", "-")


def make_world(n: int, students: int, test_students: int, sessions: int, nights: int, seed: int,
               holdout_fraction: float) -> list[Classroom]:
    rng = np.random.default_rng(seed)
    curriculum = make_curriculum(seed)
    spec = FeatureSpec()
    rooms = []
    for c in range(n):
        room = Classroom(c, float(np.exp(rng.normal(0, 0.5))), float(rng.normal(0, 0.8)), ORDERS[c % 3])
        attempts = simulate_classroom(seed * 1000 + c, n_students=students + test_students, pace=room.pace,
                                      ability_mean=room.ability, curriculum_order=room.order,
                                      curriculum=curriculum, sessions=sessions, student_prefix=f"room{c:02d}")
        ids = sorted({a.student_id for a in attempts})
        test_ids = set(ids[students:])
        box = [a for a in attempts if a.student_id not in test_ids]
        room.test_rows = Rows.build(lms_ids([a for a in attempts if a.student_id in test_ids]), spec)
        stamps = np.sort(np.fromiter((a.timestamp for a in box), dtype=np.float64))
        edges = np.quantile(stamps, np.linspace(0, 1, nights + 1)[1:-1])
        night_of = {id(a): int(np.searchsorted(edges, a.timestamp, side="right")) for a in box}
        room.nights = [[a for a in box if night_of[id(a)] == k] for k in range(nights)]
        inter = lms_ids(box)
        room.train_rows = Rows.build(inter, spec)
        by_key = {(i.student_id, i.timestamp): night_of[id(a)] for i, a in zip(inter, box)}
        room.train_night = np.fromiter((by_key[(o, t)] for o, t in zip(room.train_rows.owners, room.train_rows.seqs)),
                                       dtype=np.int64, count=len(room.train_rows.owners))
        room.train_mask = room.train_rows.mask(exclude=holdout_students(inter, holdout_fraction))
        rooms.append(room)
    return rooms


def describe(rooms: list[Classroom]) -> list[dict]:
    return [{"classroom": r.index, "pace": round(r.pace, 2), "ability_mean": round(r.ability, 2), "order": r.order,
             "answers": int(sum(len(n) for n in r.nights)), "test_answers": int(r.test_rows.y.size)} for r in rooms]


class Evaluator:
    """Held-out AUC on the test students of every classroom, pooled."""

    def __init__(self, rooms: list[Classroom]):
        self.rooms = rooms
        self.X = sparse.vstack([r.test_rows.X for r in rooms]).tocsr()
        self.y = np.concatenate([r.test_rows.y for r in rooms])

    def global_auc(self, params: np.ndarray) -> float:
        p = params.astype(np.float64)
        return auc(self.y, self.X @ p[:-1] + p[-1])

    def per_room_auc(self, params_by_room: list[np.ndarray]) -> float:
        scores = [np.asarray(r.test_rows.X @ p[:-1].astype(np.float64) + p[-1]) for r, p in zip(self.rooms, params_by_room)]
        return auc(self.y, np.concatenate(scores))


def baselines(rooms: list[Classroom], ev: Evaluator, nights: int, l2: float) -> dict:
    """Centralized (every box's training rows in one place) and local-only, after each night."""
    spec = FeatureSpec()
    central, local = [], []
    theta_c = None
    theta_l: list = [None] * len(rooms)
    for k in range(nights):
        Xs, ys = [], []
        for i, r in enumerate(rooms):
            m = r.train_mask & (r.train_night <= k)
            Xs.append(r.train_rows.X[m])
            ys.append(r.train_rows.y[m])
            if m.sum() and len(np.unique(ys[-1])) == 2:
                theta_l[i] = params_to_vector(train(Xs[-1], ys[-1], spec, l2=l2, init=theta_l[i]))
        zero = np.zeros(spec.n_features + 1, dtype=np.float32)
        local.append(ev.per_room_auc([t if t is not None else zero for t in theta_l]))
        theta_c = params_to_vector(train(sparse.vstack(Xs).tocsr(), np.concatenate(ys), spec, l2=l2, init=theta_c))
        central.append(ev.global_auc(theta_c))
    return {"centralized": central, "local_only": local}


class Mosquitto:
    """Debian's mosquitto in the foreground on 127.0.0.1 and an ephemeral port (anonymous, bench only)."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="ce-bench-mosquitto-"))
        os.chmod(self.dir, 0o755)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        conf = [f"listener {self.port} 127.0.0.1", "allow_anonymous true", "persistence false",
                "max_queued_messages 100000", "log_dest stderr", "log_type error", "log_type warning"]
        if os.geteuid() == 0:
            conf.append("user mosquitto")
        (self.dir / "mosquitto.conf").write_text("\n".join(conf) + "\n")
        self.proc = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def __enter__(self):
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(exe).exists():
            raise RuntimeError("Debian's mosquitto is not installed (apt-get install mosquitto)")
        self.log = open(self.dir / "mosquitto.log", "wb")
        self.proc = subprocess.Popen([exe, "-c", str(self.dir / "mosquitto.conf")], stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not start: {(self.dir / 'mosquitto.log').read_text()[-2000:]}")

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(10)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def seed_night(db, attempts) -> None:
    """One night's answers into a box database, as LMS rows (course, exercises, students, attempts)."""
    from appliance.store.database import now_iso

    def iso(ts: float) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{round(ts * 1000) % 1000:03d}Z"

    def job(conn):
        conn.execute("INSERT OR IGNORE INTO courses (id, version, title, language, manifest, bundle_sha256, "
                     "imported_at) VALUES (?, '1', 'Simulated', 'en', '{}', 'bench', ?)", (COURSE, now_iso()))
        for a in attempts:
            conn.execute("INSERT OR IGNORE INTO exercises (course_id, id, lesson_id, position, kind, prompt, spec, "
                         "skills) VALUES (?, ?, 'l', 0, 'single_choice', 'q', '{}', ?)",
                         (COURSE, exercise_id(a.item_id), json.dumps(list(a.skills))))
            conn.execute("INSERT OR IGNORE INTO users (role, display_name, uid, created_at) VALUES ('student', ?, ?, ?)",
                         (a.student_id, a.student_id, now_iso()))
        ids = dict(conn.execute("SELECT uid, id FROM users WHERE role = 'student'").fetchall())
        conn.executemany(
            "INSERT INTO attempts (attempt_uid, student_id, course_id, exercise_id, answer, correct, score, graded_by, "
            "created_at) VALUES (?, ?, ?, ?, '{}', ?, ?, 'rule', ?)",
            [(f"{a.student_id}-{a.timestamp:.3f}-{i}", ids[a.student_id], COURSE, exercise_id(a.item_id),
              int(a.correct), float(a.correct), iso(a.timestamp)) for i, a in enumerate(attempts)])

    db.write(job)


def _config(sections: dict):
    from appliance.config import load_config

    env = {f"CLASSROOM_EDGE_{sec.upper()}__{k.upper()}": str(v) for sec, keys in sections.items() for k, v in keys.items()}
    return load_config(env=env)


def box_config(data_dir: Path, broker_url: str, device: str, hub_public_key: str, noise_multiplier: float = 0.0):
    return _config({"storage": {"data_dir": data_dir}, "content": {"install_demo": "false"},
                    "sync": {"broker_url": broker_url, "site": "district", "device": device,
                             "trusted_keys": hub_public_key},
                    "federated": {"holdout_fraction": 0.2, "noise_multiplier": noise_multiplier}})


def hub_config(data_dir: Path, broker_url: str, key_file: Path, *, strategy: str, buffer_size: int):
    return _config({"storage": {"data_dir": data_dir}, "content": {"install_demo": "false"},
                    "hub": {"broker_url": broker_url, "signing_key_file": key_file},
                    "federated": {"strategy": strategy, "buffer_size": buffer_size, "initial_model": "zeros",
                                  "hub_poll_s": 0.5}})
