import hashlib
import json

import pytest
from content_bundles import SVG, course, manifest_bytes, pack, rows

from appliance.content import signing
from appliance.content.bundle import MANIFEST
from appliance.errors import ImportRejected, IntegrityError
from appliance.store import now_iso


def _course_rows(services, cid="mini"):
    return {
        "course": rows(services, "SELECT version, title FROM courses WHERE id = ?", (cid,)),
        "lessons": rows(services, "SELECT id, title, body FROM lessons WHERE course_id = ? ORDER BY position", (cid,)),
        "exercises": rows(services, "SELECT id, prompt, spec FROM exercises WHERE course_id = ? ORDER BY position", (cid,)),
        "assets": rows(services, "SELECT name, sha256 FROM course_assets WHERE course_id = ? ORDER BY name", (cid,)),
    }


@pytest.mark.parametrize("fmt", ["zip", "dir"])
def test_import_zip_and_directory(importer, content, tmp_path, fmt):
    doc, files = course()
    path = pack(tmp_path / ("b.zip" if fmt == "zip" else "b"), doc, files)
    seen = []
    result = importer.run(path, progress=lambda d, t, s: seen.append((d, t, s)))
    assert (result.status, result.course_id, result.lessons, result.exercises, result.assets) == ("installed", "mini", 2, 3, 2)
    got = _course_rows(content)
    assert got["course"] == [("1.0.0", "Mini")]
    assert [r[0] for r in got["exercises"]] == ["e1", "e2", "e3"]
    body = got["lessons"][0][2]
    sha = hashlib.sha256(SVG).hexdigest()
    assert "<h2>Hello</h2>" in body and "<strong>bold</strong>" in body
    assert f'src="/content/mini/assets/square.svg?v={sha[:16]}"' in body and 'alt="A blue square"' in body
    media = json.loads(rows(content, "SELECT media FROM lessons WHERE id = 'l2'")[0][0])
    assert media[0]["kind"] == "audio" and media[0]["asset"] == "clip.wav"
    # The lesson's skills default to those of its exercises.
    assert json.loads(rows(content, "SELECT skills FROM lessons WHERE id = 'l2'")[0][0]) == ["a", "b"]
    blobs = content.get("blobs")
    assert blobs.path(sha).read_bytes() == SVG
    assert rows(content, "SELECT pinned FROM blobs WHERE sha256 = ?", (sha,)) == [(1,)]
    # Progress goes forward, ends complete, and names its stages.
    assert seen[-1][0] == seen[-1][1] and seen[-1][2] == "done"
    assert [d for d, _, _ in seen] == sorted(d for d, _, _ in seen)
    assert {"checking", "verifying", "committing"} <= {s for _, _, s in seen}


def test_wrong_hash_is_rejected_and_nothing_is_visible(importer, content, tmp_path):
    doc, files = course()
    manifest = manifest_bytes(doc, files)
    sha = hashlib.sha256(SVG).hexdigest()
    path = tmp_path / "bad"
    pack(path, doc, files)
    # Same size, different bytes: only the hash can tell.
    tampered = SVG.replace(b"#2b6cb0", b"#ff0000")
    (path / "assets" / sha).write_bytes(tampered)
    assert (path / MANIFEST).read_bytes() == manifest
    with pytest.raises(IntegrityError, match="square.svg.*sha256"):
        importer.run(path)
    assert _course_rows(content)["course"] == []
    assert rows(content, "SELECT count(*) FROM blobs") == [(0,)]
    assert not any(p.is_file() for p in content.get("blobs").root.rglob("*") if p.name != ".lock")


def test_failed_upgrade_leaves_the_old_version_intact(importer, content, tmp_path):
    doc, files = course()
    importer.run(pack(tmp_path / "v1.zip", doc, files))
    before = _course_rows(content)
    doc2, files2 = course(version="1.1.0", assets={"square.svg": (SVG + b"<!-- v2 -->", "image/svg+xml"),
                                                    "clip.wav": files["clip.wav"]})
    doc2["lessons"][0]["title"] = "One, revised"
    path = pack(tmp_path / "v2", doc2, files2)
    new_sha = hashlib.sha256(SVG + b"<!-- v2 -->").hexdigest()
    (path / "assets" / new_sha).write_bytes(b"x" * len(SVG + b"<!-- v2 -->"))
    with pytest.raises(IntegrityError):
        importer.run(path)
    assert _course_rows(content) == before
    assert not content.get("blobs").path(new_sha).exists()


def test_crash_before_commit_keeps_old_course_and_recover_removes_orphans(importer, content, tmp_path, monkeypatch):
    doc, files = course()
    importer.run(pack(tmp_path / "v1.zip", doc, files))
    before = _course_rows(content)
    new_svg = SVG + b"<!-- v2 -->"
    doc2, files2 = course(version="2.0.0", assets={"square.svg": (new_svg, "image/svg+xml"), "clip.wav": files["clip.wav"]})

    def power_cut(fn, timeout=60.0):
        raise RuntimeError("power cut")

    monkeypatch.setattr(content.db, "write", power_cut)
    with pytest.raises(RuntimeError, match="power cut"):
        importer.run(pack(tmp_path / "v2.zip", doc2, files2))
    monkeypatch.undo()
    assert _course_rows(content) == before
    store = content.get("blobs")
    orphan = store.path(hashlib.sha256(new_svg).hexdigest())
    assert orphan.exists()  # placed before the (failed) commit, referenced by nothing
    assert store.recover()["orphans_removed"] == 1
    assert not orphan.exists()
    assert store.path(hashlib.sha256(SVG).hexdigest()).exists()


def test_upgrade_keeps_learners_progress(importer, content, tmp_path):
    doc, files = course()
    importer.run(pack(tmp_path / "v1.zip", doc, files))

    def progress(conn):
        conn.execute("INSERT INTO users (role, display_name, uid, created_at) VALUES ('student', 'Ana', 'u-ana', ?)", (now_iso(),))
        sid = conn.execute("SELECT id FROM users WHERE uid = 'u-ana'").fetchone()[0]
        conn.execute("INSERT INTO attempts (attempt_uid, student_id, course_id, exercise_id, answer, correct, score, graded_by, created_at)"
                     " VALUES ('a1', ?, 'mini', 'e1', '{\"choice\": 1}', 1, 1.0, 'rule', ?)", (sid, now_iso()))
        conn.execute("INSERT INTO lesson_progress VALUES (?, 'mini', 'l1', 'completed', ?)", (sid, now_iso()))
        conn.execute("INSERT INTO mastery (student_id, course_id, skill_id, successes, p_mastery) VALUES (?, 'mini', 'a', 3, 0.8)", (sid,))

    content.db.write(progress)
    doc2, files2 = course(version="1.1.0")
    doc2["exercises"][0]["prompt"] = "Pick one (new wording)"
    doc2["exercises"].pop()  # e3 removed in the new version
    doc2["exercises"].append({"id": "e4", "lesson": "l1", "kind": "free_text", "prompt": "Why?", "skills": ["a"],
                              "spec": {"references": ["Because."], "threshold": 0.7}})
    result = importer.run(pack(tmp_path / "v2.zip", doc2, files2))
    assert (result.status, result.previous_version, result.version) == ("upgraded", "1.0.0", "1.1.0")
    assert rows(content, "SELECT exercise_id FROM attempts") == [("e1",)]
    assert rows(content, "SELECT lesson_id, status FROM lesson_progress") == [("l1", "completed")]
    assert rows(content, "SELECT skill_id, successes FROM mastery") == [("a", 3)]
    assert rows(content, "SELECT id, prompt FROM exercises WHERE course_id = 'mini' ORDER BY position") == [
        ("e1", "Pick one (new wording)"), ("e2", "1/2 + 1/4?"), ("e4", "Why?")]


def test_downgrade_and_same_version_rules(importer, content, tmp_path):
    doc, files = course(version="2.0.0")
    v2 = pack(tmp_path / "v2.zip", doc, files)
    importer.run(v2)
    assert importer.run(v2).status == "unchanged"
    assert importer.run(v2, force=True).status == "reinstalled"
    old, files1 = course(version="1.9.9")
    with pytest.raises(ImportRejected, match="older than the installed version 2.0.0.*--force"):
        importer.run(pack(tmp_path / "v1.zip", old, files1))
    assert rows(content, "SELECT version FROM courses") == [("2.0.0",)]
    assert importer.run(tmp_path / "v1.zip", force=True).status == "downgraded"
    same, files3 = course(version="1.9.9", title="Different")
    with pytest.raises(ImportRejected, match="already installed with different content"):
        importer.run(pack(tmp_path / "same.zip", same, files3))
    # Versions compare as numbers, not text: 1.10 is newer than 1.9.9.
    newer, files4 = course(version="1.10")
    assert importer.run(pack(tmp_path / "newer.zip", newer, files4)).status == "upgraded"


def test_missing_asset_and_size_mismatch(importer, content, tmp_path):
    doc, files = course()
    path = pack(tmp_path / "b", doc, files)
    wav_sha = hashlib.sha256(files["clip.wav"][0]).hexdigest()
    (path / "assets" / wav_sha).unlink()
    with pytest.raises(ImportRejected, match="clip.wav.*missing"):
        importer.run(path)
    path = pack(tmp_path / "c", doc, files)
    with open(path / "assets" / wav_sha, "ab") as fh:
        fh.write(b"extra")
    with pytest.raises(IntegrityError, match="clip.wav.*declares"):
        importer.run(path)
    assert _course_rows(content)["course"] == []


def test_nested_folder_gets_a_helpful_message(importer, tmp_path):
    doc, files = course()
    pack(tmp_path / "outer" / "inner", doc, files)
    with pytest.raises(ImportRejected, match="found inner/course.json"):
        importer.run(tmp_path / "outer")


@pytest.fixture
def keys():
    return signing.generate_keypair()


def _signed_importer(content, public):
    from appliance.content.importer import Importer

    cfg = content.cfg.replace(content={"trusted_keys": [public]})
    return Importer(content.db, content.get("blobs"), cfg)


def test_signatures_when_trusted_keys_are_configured(content, tmp_path, keys):
    private, public = keys
    importer = _signed_importer(content, public)
    doc, files = course()
    with pytest.raises(IntegrityError, match="not signed"):
        importer.run(pack(tmp_path / "unsigned.zip", doc, files))
    other_private, _ = signing.generate_keypair()
    forged = signing.sign(manifest_bytes(doc, files), other_private)
    with pytest.raises(IntegrityError, match="does not match any trusted key"):
        importer.run(pack(tmp_path / "forged.zip", doc, files, forged))
    # A valid signature over different bytes (the manifest was edited after signing) fails too.
    good = signing.sign(manifest_bytes(doc, files), private)
    edited = dict(doc, title="Edited after signing")
    with pytest.raises(IntegrityError, match="does not match"):
        importer.run(pack(tmp_path / "edited.zip", edited, files, good))
    with pytest.raises(IntegrityError, match="not an Ed25519 signature"):
        importer.run(pack(tmp_path / "junk.zip", doc, files, b"hello"))
    assert rows(content, "SELECT count(*) FROM courses") == [(0,)]
    result = importer.run(pack(tmp_path / "signed.zip", doc, files, good))
    assert result.signed_by == signing.key_id(public)
    assert rows(content, "SELECT key_id FROM course_signatures") == [(signing.key_id(public),)]


def test_export_round_trip_keeps_manifest_and_signature(content, tmp_path, keys):
    from appliance.content.archive import Limits, open_source
    from appliance.content.exporter import export_course

    private, public = keys
    importer = _signed_importer(content, public)
    doc, files = course()
    sig = signing.sign(manifest_bytes(doc, files), private)
    original = pack(tmp_path / "signed.zip", doc, files, sig)
    importer.run(original)
    out = export_course(content.db, content.get("blobs"), "mini", tmp_path / "export.zip")
    # Deterministic writer + byte-exact manifest + kept signature: the export is the same file.
    assert out.read_bytes() == original.read_bytes()
    with open_source(out, Limits.from_config(content.cfg)) as src:
        assert src.read(MANIFEST, 1 << 20) == manifest_bytes(doc, files)
