"""The box at a glance, for the admin status page and ``GET /api/v1/status``."""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from appliance import __version__


def _dir_bytes(path: Path, limit: int = 20000) -> int | None:
    """Size of a cache directory; None when it is too big to walk on every page view."""
    if not path.is_dir():
        return 0
    total, seen = 0, 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            seen += 1
            if seen > limit:
                return None
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def device_status(services) -> dict:
    disk = shutil.disk_usage(services.data_dir)
    blobs = services.get("blobs")
    usage = blobs.usage() if blobs is not None and hasattr(blobs, "usage") else None
    if usage is None:
        with services.db.read() as conn:
            n, used = conn.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM blobs").fetchone()
        usage = {"blobs": n, "used_bytes": used, "quota_bytes": services.cfg.content.blob_quota_mb * 1024 * 1024}
    with services.db.read() as conn:
        counts = {name: conn.execute(sql).fetchone()[0] for name, sql in (
            ("students", "SELECT COUNT(*) FROM users WHERE role = 'student' AND disabled = 0"),
            ("staff", "SELECT COUNT(*) FROM users WHERE role != 'student' AND disabled = 0"),
            ("classes", "SELECT COUNT(*) FROM classes"),
            ("courses", "SELECT COUNT(*) FROM courses"),
            ("attempts", "SELECT COUNT(*) FROM attempts"),
            ("outbox_pending", "SELECT COUNT(*) FROM outbox"),
        )}
    parts = [p.to_json() for p in services.statuses()]
    return {
        "version": __version__,
        "uptime_s": round(time.time() - services.started_at, 1),
        "disk": {"path": str(services.data_dir), "free_bytes": disk.free, "total_bytes": disk.total},
        "database_bytes": services.db.size_bytes(),
        "content_cache": usage,
        "cache_dir_bytes": _dir_bytes(services.cache_dir),
        "counts": counts,
        "parts": parts,
    }


def human_bytes(n: int | None) -> str:
    """'1.2 MB' in the page's language (decimal comma in Spanish)."""
    from flask_babel import format_decimal

    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{format_decimal(size, '#,##0' if unit == 'B' else '#,##0.0')} {unit}"
        size /= 1024
    return f"{n} B"


def human_duration(seconds: float) -> str:
    """'3 hours' / '3 horas': Babel words the uptime in the page's language."""
    from datetime import timedelta

    from flask_babel import format_timedelta

    return format_timedelta(timedelta(seconds=seconds), granularity="minute")
