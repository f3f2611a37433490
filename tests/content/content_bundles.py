"""Helpers for content tests: a small, fully valid course built in code, packed as zip or folder."""
from __future__ import annotations

import copy
import hashlib
import json
import zipfile
from pathlib import Path

from appliance.content.writer import write_bundle

SVG = b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><rect width="10" height="10" fill="#2b6cb0"/></svg>\n'


def course(course_id="mini", version="1.0.0", assets=None, **extra) -> tuple[dict, dict[str, tuple[bytes, str]]]:
    """A valid course document and its assets {name: (bytes, mime)}; the manifest's asset table is
    filled in by ``pack`` from the bytes, so tests only describe what they change."""
    files = assets if assets is not None else {
        "square.svg": (SVG, "image/svg+xml"),
        "clip.wav": (b"RIFF" + bytes(range(256)) * 64, "audio/wav"),
    }
    doc = {
        "schema_version": 1, "id": course_id, "version": version, "title": "Mini", "language": "en",
        "description": "A tiny course for tests.",
        "skills": [{"id": "a", "name": "A"}, {"id": "b", "name": "B", "prerequisites": ["a"]}],
        "lessons": [
            {"id": "l1", "title": "One", "blocks": [
                {"type": "text", "markdown": "# Hello\n\nSome **bold** text."},
                {"type": "image", "asset": "square.svg", "alt": "A blue square"}]},
            {"id": "l2", "title": "Two", "blocks": [{"type": "audio", "asset": "clip.wav", "title": "Listen"}]},
        ],
        "exercises": [
            {"id": "e1", "lesson": "l1", "kind": "single_choice", "prompt": "Pick", "skills": ["a"],
             "spec": {"choices": ["x", "y"], "answer": 1, "hints": ["think"], "explanation": "y"}},
            {"id": "e2", "lesson": "l2", "kind": "numeric", "prompt": "1/2 + 1/4?", "skills": ["a", "b"],
             "difficulty": 0.3, "spec": {"answer": 0.75, "tolerance": 0}},
            {"id": "e3", "lesson": "l2", "kind": "short_text", "prompt": "Say hi", "skills": ["b"],
             "spec": {"answers": ["hi"], "patterns": ["^h(i|ello)$"]}},
        ],
    }
    doc.update(extra)
    return doc, dict(files)


def manifest_bytes(doc: dict, files: dict) -> bytes:
    doc = copy.deepcopy(doc)
    if "assets" not in doc:
        doc["assets"] = {name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "mime": mime}
                         for name, (data, mime) in files.items()}
    return json.dumps(doc, indent=1).encode()


def pack(out: Path, doc: dict, files: dict, signature: bytes | None = None) -> Path:
    """Write a bundle (``.zip`` or folder) for ``doc`` and ``files``."""
    manifest = manifest_bytes(doc, files)
    blobs = {hashlib.sha256(data).hexdigest(): data for data, _ in files.values()}
    return write_bundle(out, manifest, blobs, signature)


def raw_zip(out: Path, members: list[tuple]) -> Path:
    """A zip written member by member: (name, bytes) or (ZipInfo, bytes), for crafting bad archives."""
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return out


def rows(services, sql, params=()):
    with services.db.read() as conn:
        return [tuple(r) for r in conn.execute(sql, params)]


def make_cfg(data_dir, **env):
    """Like the root conftest's make_config (which the name ``conftest`` cannot reach from here)."""
    from appliance.config import load_config

    base = {"CLASSROOM_EDGE_STORAGE__DATA_DIR": str(data_dir), "CLASSROOM_EDGE_CONTENT__INSTALL_DEMO": "false"}
    base.update({f"CLASSROOM_EDGE_{k.upper()}": str(v) for k, v in env.items()})
    return load_config(env=base)
