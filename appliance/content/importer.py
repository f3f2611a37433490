"""Importing a course bundle: all or nothing.

Order of work, and why:
1. Read ``course.json`` and its signature, verify the signature *before* parsing (an untrusted bundle
   never reaches the JSON parser when keys are configured), then validate the manifest completely.
2. Check every declared asset is present with the declared size, and that the course fits the quota.
3. Stream every asset through sha256 into a staging directory on the blob store's filesystem. A wrong
   hash stops the import here; nothing outside the staging directory has changed.
4. Under the store's lock: make room, rename the staged files into the store (still invisible: no row
   references them), then ONE database transaction upserts the course, its skills, lessons, exercises
   and assets and re-pins blobs. A crash before that commit leaves the old course exactly as it was
   (plus orphan files that ``BlobStore.recover`` removes); after it, every referenced file exists.

Rows are upserted by their stable ids rather than deleted and re-inserted, so nothing keyed by a lesson
or exercise that still exists is touched; learners' attempts, lesson progress and mastery are keyed by
(course_id, id) and survive an upgrade.
"""
from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass

from appliance.content import signing
from appliance.content.archive import Limits, Source, open_source
from appliance.content.blobs import BlobStore
from appliance.content.bundle import (
    MANIFEST,
    SIGNATURE,
    Manifest,
    asset_member,
    is_asset_member,
    load_manifest,
    parse_version,
)
from appliance.content.markup import render_lesson
from appliance.errors import Conflict, ImportRejected, IntegrityError, Unavailable
from appliance.store import Database, now_iso

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]
DEFAULT_DIFFICULTY = 0.5
# How to force an import, for a message read on the command line or on the admin page.
FORCE_HOW = "--force, or on the admin page “Install even if the same or a newer version is already there”"


@dataclass
class ImportResult:
    course_id: str
    title: str
    version: str
    previous_version: str | None
    status: str  # installed | upgraded | downgraded | reinstalled | unchanged
    skills: int
    lessons: int
    exercises: int
    assets: int
    new_bytes: int
    signed_by: str | None

    def to_json(self) -> dict:
        return asdict(self)


class Importer:
    def __init__(self, db: Database, blobs: BlobStore, cfg):
        self.db = db
        self.blobs = blobs
        self.limits = Limits.from_config(cfg)
        self.trusted_keys = list(cfg.content.trusted_keys)

    def run(self, path: str | os.PathLike, *, force: bool = False, progress: Progress | None = None) -> ImportResult:
        report = progress or (lambda done, total, stage: None)
        with open_source(path, self.limits) as src:
            return self._run(src, force, report)

    def _run(self, src: Source, force: bool, report: Progress) -> ImportResult:
        if MANIFEST not in src.sizes:
            nested = sorted(n for n in src.sizes if n.endswith("/" + MANIFEST))
            hint = f" (found {nested[0]}: bundle the contents of that folder, not the folder)" if nested else ""
            raise ImportRejected(f"{src.label} has no {MANIFEST} at its top level{hint}.")
        raw = src.read(MANIFEST, self.limits.max_manifest_bytes)
        sig = src.read(SIGNATURE, 4096) if SIGNATURE in src.sizes else None
        signed_by = signing.verify(raw, sig, self.trusted_keys)
        manifest = load_manifest(raw)
        wanted = manifest.unique_blobs()
        total = len(raw) + sum(wanted.values())
        done = len(raw)
        report(done, total, "checking")
        self._check_members(src, manifest)

        previous = self._installed(manifest.course_id)
        manifest_sha = hashlib.sha256(raw).hexdigest()
        status = self._decide(manifest, previous, manifest_sha, force)
        if status == "unchanged":
            report(total, total, "done")
            return self._result(manifest, previous, status, 0, signed_by)
        self.blobs.check_room(manifest.course_id, wanted)

        present = self.blobs.known(wanted)
        names = {a["sha256"]: name for name, a in sorted(manifest.assets.items())}
        with self.blobs.staging() as staging:
            def count(n: int) -> None:
                nonlocal done
                done += n
                report(done, total, "verifying")

            for sha, size in sorted(wanted.items()):
                staging.put(src.iter_bytes(asset_member(sha)), sha, size, names[sha], count, keep=sha not in present)
            rows = build_rows(manifest)
            report(done, total, "committing")
            new_bytes = sum(wanted[s] for s in staging.files)
            with self.blobs.locked():
                missing = set(wanted) - set(staging.files) - self.blobs.known(wanted)
                if missing:
                    raise Unavailable("the content store changed while this course was being checked; import it again.")
                self.blobs.evict_to_fit(new_bytes, keep=wanted)
                self.blobs.place(staging.files)
                sig_row = _signature_row(sig, signed_by)
                self.db.write(lambda c: _replace_course(c, manifest, manifest_sha, rows, previous, sig_row))
                try:
                    self.blobs.evict_to_fit(0)  # blobs only the old version used are unpinned now
                except Exception:
                    log.exception("course %s is installed, but evicting its unpinned blobs failed", manifest.course_id)
        log.info("imported course %s %s (%s, %d new bytes)", manifest.course_id, manifest.version, status, new_bytes)
        report(total, total, "done")
        return self._result(manifest, previous, status, new_bytes, signed_by)

    def _check_members(self, src: Source, manifest: Manifest) -> None:
        for name, asset in sorted(manifest.assets.items()):
            member = asset_member(asset["sha256"])
            if member not in src.sizes:
                raise ImportRejected(f"asset '{name}' is listed in {MANIFEST} but {member} is missing from the bundle.")
            if src.sizes[member] != asset["size"]:
                raise IntegrityError(f"asset '{name}' is {src.sizes[member]} bytes in the bundle but "
                                     f"{MANIFEST} declares {asset['size']}.")
        declared = {asset_member(s) for s in manifest.unique_blobs()}
        extra = [n for n in src.sizes if n not in declared and n not in (MANIFEST, SIGNATURE)]
        if extra:
            # Harmless (never read), but worth a line: an author may have forgotten to list them.
            stray = [n for n in extra if is_asset_member(n)]
            log.warning("%s: ignoring %d files not listed in %s%s", src.label, len(extra), MANIFEST,
                        f" ({len(stray)} under assets/)" if stray else "")

    def _installed(self, course_id: str) -> dict | None:
        with self.db.read() as conn:
            row = conn.execute("SELECT version, bundle_sha256 FROM courses WHERE id = ?", (course_id,)).fetchone()
        return dict(row) if row else None

    @staticmethod
    def _decide(manifest: Manifest, previous: dict | None, manifest_sha: str, force: bool) -> str:
        if previous is None:
            return "installed"
        old, new = parse_version(previous["version"]), parse_version(manifest.version)
        if new > old:
            return "upgraded"
        if new < old:
            if not force:
                raise ImportRejected(
                    f"course '{manifest.course_id}' version {manifest.version} is older than the installed "
                    f"version {previous['version']}; refusing to downgrade unless the import is forced ({FORCE_HOW}).")
            return "downgraded"
        if previous["bundle_sha256"] == manifest_sha:
            return "reinstalled" if force else "unchanged"
        if not force:
            raise ImportRejected(
                f"course '{manifest.course_id}' version {manifest.version} is already installed with different "
                f"content; give the new bundle a higher version (or force the import: {FORCE_HOW}).")
        return "reinstalled"

    @staticmethod
    def _result(manifest: Manifest, previous: dict | None, status: str, new_bytes: int, signed_by) -> ImportResult:
        d = manifest.data
        return ImportResult(d["id"], d["title"], d["version"], previous["version"] if previous else None, status,
                            len(d["skills"]), len(d["lessons"]), len(d["exercises"]), len(d["assets"]),
                            new_bytes, signed_by)


def _signature_row(sig: bytes | None, signed_by: str | None) -> tuple[str | None, str] | None:
    if sig is None:
        return None
    try:
        raw = signing.decode_signature(sig)
    except IntegrityError:
        return None  # unverifiable junk on a box without keys: not worth keeping
    return (signed_by, base64.b64encode(raw).decode())


def build_rows(manifest: Manifest) -> dict[str, list[tuple]]:
    """The database rows of a course (everything rendered, nothing written yet)."""
    d = manifest.data
    cid = d["id"]
    ex_skills: dict[str, list[str]] = {}
    for ex in d["exercises"]:
        bucket = ex_skills.setdefault(ex["lesson"], [])
        bucket.extend(s for s in ex["skills"] if s not in bucket)
    lessons = []
    for pos, lesson in enumerate(d["lessons"]):
        body, media = render_lesson(cid, lesson["blocks"], d["assets"])
        skills = lesson.get("skills") or ex_skills.get(lesson["id"], [])
        lessons.append((cid, lesson["id"], pos, lesson["title"], body, json.dumps(media), json.dumps(skills)))
    skills = [(cid, s["id"], s["name"], s.get("description", ""), json.dumps(s.get("prerequisites", [])))
              for s in d["skills"]]
    exercises = [(cid, ex["id"], ex["lesson"], pos, ex["kind"], ex["prompt"], json.dumps(ex["spec"], ensure_ascii=False),
                  json.dumps(ex["skills"]), float(ex.get("difficulty", DEFAULT_DIFFICULTY)))
                 for pos, ex in enumerate(d["exercises"])]
    assets = [(cid, name, a["sha256"], a["mime"]) for name, a in sorted(d["assets"].items())]
    return {"skills": skills, "lessons": lessons, "exercises": exercises, "assets": assets}


_UPSERTS = {
    "skills": (
        ("INSERT INTO skills (course_id, id, name, description, prerequisites) VALUES (?, ?, ?, ?, ?) "
         "ON CONFLICT (course_id, id) DO UPDATE SET name = excluded.name, description = excluded.description, "
         "prerequisites = excluded.prerequisites"),
        "id"),
    "lessons": (
        ("INSERT INTO lessons (course_id, id, position, title, body, media, skills) VALUES (?, ?, ?, ?, ?, ?, ?) "
         "ON CONFLICT (course_id, id) DO UPDATE SET position = excluded.position, title = excluded.title, "
         "body = excluded.body, media = excluded.media, skills = excluded.skills"),
        "id"),
    "exercises": (
        ("INSERT INTO exercises (course_id, id, lesson_id, position, kind, prompt, spec, skills, difficulty) "
         "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (course_id, id) DO UPDATE SET "
         "lesson_id = excluded.lesson_id, position = excluded.position, kind = excluded.kind, "
         "prompt = excluded.prompt, spec = excluded.spec, skills = excluded.skills, difficulty = excluded.difficulty"),
        "id"),
    "course_assets": (
        ("INSERT INTO course_assets (course_id, name, sha256, mime) VALUES (?, ?, ?, ?) "
         "ON CONFLICT (course_id, name) DO UPDATE SET sha256 = excluded.sha256, mime = excluded.mime"),
        "name"),
}


def _replace_course(conn, manifest: Manifest, manifest_sha: str, rows: dict, previous: dict | None, sig_row) -> None:
    d = manifest.data
    cid = d["id"]
    now_row = conn.execute("SELECT version, bundle_sha256 FROM courses WHERE id = ?", (cid,)).fetchone()
    if (dict(now_row) if now_row else None) != previous:
        raise Conflict(f"course '{cid}' was changed by another import at the same time; import it again.")
    conn.execute(
        "INSERT INTO courses (id, version, title, language, description, manifest, bundle_sha256, imported_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET version = excluded.version, "
        "title = excluded.title, language = excluded.language, description = excluded.description, "
        "manifest = excluded.manifest, bundle_sha256 = excluded.bundle_sha256, imported_at = excluded.imported_at",
        (cid, d["version"], d["title"], d["language"], d.get("description", ""), manifest.raw.decode("utf-8"),
         manifest_sha, now_iso()))
    for table, key_rows in (("skills", rows["skills"]), ("lessons", rows["lessons"]),
                            ("exercises", rows["exercises"]), ("course_assets", rows["assets"])):
        sql, key = _UPSERTS[table]
        conn.executemany(sql, key_rows)
        keep = json.dumps([r[1] for r in key_rows])
        conn.execute(f"DELETE FROM {table} WHERE course_id = ? AND {key} NOT IN (SELECT value FROM json_each(?))",
                     (cid, keep))
    conn.execute("DELETE FROM course_signatures WHERE course_id = ?", (cid,))
    if sig_row is not None:
        conn.execute("INSERT INTO course_signatures (course_id, key_id, signature) VALUES (?, ?, ?)", (cid, *sig_row))
    BlobStore.register(conn, {a["sha256"]: (a["size"], a["mime"]) for a in d["assets"].values()})
