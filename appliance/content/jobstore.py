"""Where import job status lives so every web worker can answer the progress poll.

Gunicorn runs several worker processes; the upload lands in one of them, whose ``ImportJobs`` runs the
import, but the browser's polls go to any worker. So each job's status dict is also written to the
``import_jobs`` table (on every state change, and for progress at most a few times a second). A job
whose owning process has died (crash, restart) would otherwise say "running" forever; ``load`` notices
the owner is gone and reports it as failed.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from appliance.store import Database

log = logging.getLogger(__name__)

ACTIVE = ("queued", "running")


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22 (starttime) follows the command name, which may itself contain spaces and parentheses.
    return stat.rsplit(")", 1)[1].split()[19]


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown-boot"


def process_owner(pid: int | None = None) -> str:
    """An id of a process that a later process with the same pid cannot share."""
    pid = os.getpid() if pid is None else pid
    return f"{_boot_id()}:{pid}:{_start_time(pid)}"


def owner_alive(owner: str) -> bool:
    boot, pid, _ = owner.rsplit(":", 2)
    return boot == _boot_id() and process_owner(int(pid)) == owner


class JobStore:
    def __init__(self, db: Database, keep: int = 50):
        self.db = db
        self.keep = keep
        self.owner = process_owner()

    def save(self, job: dict) -> None:
        self.db.write(lambda c: c.execute(
            "INSERT INTO import_jobs (id, owner, created_at, status) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET status = excluded.status",
            (job["id"], self.owner, job["created_at"], json.dumps(job))))

    def prune(self) -> None:
        self.db.write(lambda c: c.execute(
            "DELETE FROM import_jobs WHERE id NOT IN (SELECT id FROM import_jobs ORDER BY created_at DESC LIMIT ?) "
            "AND json_extract(status, '$.state') NOT IN ('queued', 'running')", (self.keep,)))

    def _decode(self, row) -> dict:
        job = json.loads(row["status"])
        if job["state"] in ACTIVE and row["owner"] != self.owner and not owner_alive(row["owner"]):
            job.update(state="failed", stage="failed", code="interrupted",
                       error="The import was interrupted (the process running it stopped). Nothing was "
                             "half-imported; start it again.")
        return job

    def load(self, job_id: str) -> dict | None:
        with self.db.read() as conn:
            row = conn.execute("SELECT owner, status FROM import_jobs WHERE id = ?", (job_id,)).fetchone()
        return self._decode(row) if row else None

    def recent(self) -> list[dict]:
        with self.db.read() as conn:
            rows = conn.execute("SELECT owner, status FROM import_jobs ORDER BY created_at DESC LIMIT ?",
                                (self.keep,)).fetchall()
        return [self._decode(r) for r in rows]
