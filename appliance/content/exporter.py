"""Exporting an installed course back into a bundle (to copy it to another box or a USB stick).

``course.json`` is written byte-for-byte as it was imported and the original signature is kept, so
the exported bundle verifies on the next box exactly like the one imported here.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from appliance.content import writer
from appliance.content.blobs import BlobStore
from appliance.errors import NotFound
from appliance.store import Database

log = logging.getLogger(__name__)


def export_course(db: Database, blobs: BlobStore, course_id: str, out: str | os.PathLike) -> Path:
    with db.read() as conn:
        row = conn.execute("SELECT manifest FROM courses WHERE id = ?", (course_id,)).fetchone()
        if row is None:
            raise NotFound(f"no course '{course_id}' is installed.")
        shas = [r[0] for r in conn.execute(
            "SELECT DISTINCT sha256 FROM course_assets WHERE course_id = ?", (course_id,))]
        sig = conn.execute("SELECT signature FROM course_signatures WHERE course_id = ?", (course_id,)).fetchone()
    missing = [s for s in shas if not blobs.path(s).is_file()]
    if missing:
        raise NotFound(f"{len(missing)} asset files of '{course_id}' are missing from this box; import the course again.")
    signature = (sig[0] + "\n").encode() if sig else None
    path = writer.write_bundle(out, row[0].encode("utf-8"), {s: blobs.path(s) for s in shas}, signature)
    log.info("exported course %s to %s", course_id, path)
    return path
