"""Course uploads from the browser, handed to the content engine's ``ImportJobs``.

The upload is streamed to a file under the data directory (same filesystem as the blob store, so the
importer's staging and rename stay cheap) and queued with ``delete_after=True``: the job removes it
whether the import succeeds or is refused. The page then polls ``GET /api/v1/imports/<id>``.
"""
from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path

from flask_babel import gettext as _

from appliance.errors import BadRequest, NotFound, Unavailable

log = logging.getLogger(__name__)
CHUNK = 1 << 20


def import_jobs(services):
    jobs = services.get("imports")
    if jobs is None:
        raise Unavailable(_("Course import is not available: the content engine is not running on this box."))
    return jobs


def save_upload(services, storage, subdir: str, suffixes: tuple[str, ...]) -> Path:
    """Stream an uploaded file to ``<data_dir>/<subdir>/``; return its path."""
    if storage is None or not storage.filename:
        raise BadRequest(_("Please choose a file."))
    if not storage.filename.lower().endswith(suffixes):
        raise BadRequest(_("Please choose a %(kinds)s file.", kinds=" / ".join(suffixes)))
    folder = Path(services.data_dir) / subdir
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / f"{uuid.uuid4().hex}{Path(storage.filename).suffix.lower()}"
    try:
        with open(dest, "wb") as out:
            while True:
                chunk = storage.stream.read(CHUNK)
                if not chunk:
                    break
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return dest


def start_import(services, storage, force: bool = False) -> str:
    jobs = import_jobs(services)
    path = save_upload(services, storage, "uploads", (".zip",))
    try:
        return jobs.submit(path, force=force, delete_after=True, label=Path(storage.filename).name)
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def job_status(services, job_id: str) -> dict:
    job = import_jobs(services).get(job_id)
    if job is None:
        raise NotFound(_("There is no such import."))
    return job
