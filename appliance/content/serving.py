"""Serving course assets from the blob store: ``/content/<course_id>/assets/<name>``.

The ETag is the blob's sha256, so revalidation is a string compare and never reads the file. Lesson
HTML links assets with ``?v=<sha prefix>``; when that matches, the URL names exactly one byte sequence
and may be cached for a year as ``immutable``. Without it (or with a stale one after an upgrade) the
response must be revalidated. ``Range`` serves one byte range for video seeking; text types are sent
gzip-compressed (from a cached compressed copy) to clients that accept it. Every response carries
``nosniff``, and types that render as documents (SVG, text) a sandboxing CSP, because an SVG opened on
its own could otherwise run script as the box.
"""
from __future__ import annotations

import logging
import re

from flask import Blueprint, Response, current_app, request

from appliance.errors import NotFound, Unavailable
from appliance.web.security import requires

log = logging.getLogger(__name__)

bp = Blueprint("content", __name__)

CHUNK = 1 << 16
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "public, no-cache"
COMPRESSIBLE = {"image/svg+xml", "text/plain", "text/html", "text/css", "text/javascript", "application/javascript",
                "application/json", "text/csv", "text/vtt"}
# Types a browser renders as a document when opened on their own: sandboxed, so an SVG with a
# <script> cannot act as the box. Not PDF (the sandbox would block the browser's PDF viewer) nor media.
SCRIPTABLE = {"image/svg+xml", "text/plain", "text/csv", "text/vtt", "application/json"}
SANDBOX = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; sandbox"
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _store():
    blobs = current_app.extensions["ce"].get("blobs")
    if blobs is None:
        raise Unavailable("The content store is not started.")
    return blobs


def _etag_matches(header: str, etags: set[str]) -> bool:
    for tag in (t.strip() for t in header.split(",")):
        if tag == "*" or tag.removeprefix("W/") in etags:
            return True
    return False


def parse_range(header: str, size: int) -> tuple[int, int] | None | str:
    """``(start, end_inclusive)``, None to ignore the header (serve everything), or ``"unsatisfiable"``."""
    m = _RANGE.match(header.strip().replace(" ", ""))
    if m is None:
        return None  # other units, several ranges or bad syntax: RFC 9110 lets us send the whole file
    first, last = m.groups()
    if first == "" and last == "":
        return None
    if first == "":
        n = int(last)
        if n == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - n), size - 1
    start = int(first)
    if start >= size:
        return "unsatisfiable"
    end = int(last) if last else size - 1
    if end < start:
        return None  # "bytes=9-3" is invalid syntax, not an unsatisfiable range
    return start, min(end, size - 1)


def _stream(path, start: int, length: int):
    with open(path, "rb") as fh:
        fh.seek(start)
        left = length
        while left > 0:
            chunk = fh.read(min(CHUNK, left))
            if not chunk:
                break
            left -= len(chunk)
            yield chunk


@bp.get("/content/<course_id>/assets/<name>")
@requires("student", "teacher", "admin")
def asset(course_id: str, name: str):
    services = current_app.extensions["ce"]
    with services.db.read() as conn:
        row = conn.execute(
            "SELECT a.sha256, a.mime, b.size FROM course_assets a JOIN blobs b ON b.sha256 = a.sha256 "
            "WHERE a.course_id = ? AND a.name = ?", (course_id, name)).fetchone()
    if row is None:
        raise NotFound("That file is not part of this course.")
    sha, mime, size = row["sha256"], row["mime"], row["size"]
    store = _store()
    path = store.path(sha)
    if not path.is_file():
        log.error("blob %s of %s/%s is missing from the store", sha, course_id, name)
        raise NotFound("That file is missing from this box; ask an administrator to import the course again.")

    compressible = mime in COMPRESSIBLE
    gzip_ok = compressible and "Range" not in request.headers and request.accept_encodings["gzip"] > 0
    etag = f"{sha}-gz" if gzip_ok else sha
    headers = {
        "ETag": f'"{etag}"',
        "Cache-Control": IMMUTABLE if request.args.get("v") == sha[:16] else REVALIDATE,
        "X-Content-Type-Options": "nosniff",
        "Accept-Ranges": "bytes",
    }
    if mime in SCRIPTABLE:
        headers["Content-Security-Policy"] = SANDBOX
    if compressible:
        headers["Vary"] = "Accept-Encoding"
    store.touch(sha)

    inm = request.headers.get("If-None-Match")
    if inm and _etag_matches(inm, {f'"{sha}"', f'"{sha}-gz"'}):
        return Response(status=304, headers=headers)

    if gzip_ok:
        gz = store.gzipped(sha)
        length = gz.stat().st_size
        headers.update({"Content-Encoding": "gzip", "Content-Length": str(length)})
        return Response(_stream(gz, 0, length), 200, headers=headers, content_type=mime, direct_passthrough=True)

    status, start, length = 200, 0, size
    rng = request.headers.get("Range")
    if_range = request.headers.get("If-Range")
    if rng and (if_range is None or if_range.strip() == f'"{sha}"'):
        parsed = parse_range(rng, size)
        if parsed == "unsatisfiable":
            headers["Content-Range"] = f"bytes */{size}"
            return Response(status=416, headers=headers)
        if parsed is not None:
            start, end = parsed
            status, length = 206, end - start + 1
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(length)
    return Response(_stream(path, start, length), status, headers=headers, content_type=mime, direct_passthrough=True)
