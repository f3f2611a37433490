"""The shared blob store: one copy per asset, pins for installed courses, LRU eviction within quota."""
import hashlib
import os

import pytest
from content_bundles import course, pack, rows

from appliance.content.importer import Importer
from appliance.errors import ImportRejected

KB = 1024


def picture_course(cid: str, version: str, pictures: dict[str, bytes]):
    """A course whose one lesson shows every picture given."""
    doc, _ = course(course_id=cid, version=version)
    doc["lessons"] = [{"id": "l1", "title": "Pictures",
                       "blocks": [{"type": "image", "asset": n, "alt": n} for n in pictures] or
                                 [{"type": "text", "markdown": "none"}]},
                      {"id": "l2", "title": "More", "blocks": []}]
    return doc, {n: (data, "image/png") for n, data in pictures.items()}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_same_asset_is_stored_once_across_courses(importer, content, tmp_path):
    shared = os.urandom(10 * KB)
    importer.run(pack(tmp_path / "x.zip", *picture_course("x", "1.0", {"logo.png": shared, "x.png": b"x" * 100})))
    importer.run(pack(tmp_path / "y.zip", *picture_course("y", "1.0", {"same-logo.png": shared})))
    store = content.get("blobs")
    assert rows(content, "SELECT count(*) FROM blobs WHERE sha256 = ?", (sha(shared),)) == [(1,)]
    assert rows(content, "SELECT course_id, name FROM course_assets WHERE sha256 = ? ORDER BY course_id", (sha(shared),)) == [
        ("x", "logo.png"), ("y", "same-logo.png")]
    files = [p for p in store.root.rglob("*") if p.is_file() and p.name != ".lock"]
    assert len(files) == 2
    # y stops using it; x still does, so it stays pinned.
    importer.run(pack(tmp_path / "y2.zip", *picture_course("y", "2.0", {})))
    assert rows(content, "SELECT pinned FROM blobs WHERE sha256 = ?", (sha(shared),)) == [(1,)]
    assert store.usage()["used_bytes"] == len(shared) + 100


def test_lru_eviction_respects_pins_and_quota(content, tmp_path):
    cfg = content.cfg.replace(content={"blob_quota_mb": 1})
    store = content.get("blobs")
    store.quota_bytes = 1024 * KB
    importer = Importer(content.db, store, cfg)
    a1, a2, b1, c1, d1 = (os.urandom(300 * KB) for _ in range(5))

    importer.run(pack(tmp_path / "a.zip", *picture_course("a", "1.0", {"a1.png": a1, "a2.png": a2})))
    importer.run(pack(tmp_path / "b.zip", *picture_course("b", "1.0", {"b1.png": b1})))
    # 900 KB pinned: a course needing 300 KB more cannot fit, and nothing pinned may be evicted.
    with pytest.raises(ImportRejected, match="not enough room.*quota is 1 MB"):
        importer.run(pack(tmp_path / "c.zip", *picture_course("c", "1.0", {"c1.png": c1})))
    assert {r[0] for r in rows(content, "SELECT sha256 FROM blobs")} == {sha(a1), sha(a2), sha(b1)}

    # Upgrades drop a2 and b1: they stay on disk (no need to evict yet) but are unpinned now.
    importer.run(pack(tmp_path / "a2.zip", *picture_course("a", "2.0", {"a1.png": a1})))
    importer.run(pack(tmp_path / "b2.zip", *picture_course("b", "2.0", {})))
    assert dict(rows(content, "SELECT sha256, pinned FROM blobs")) == {sha(a1): 1, sha(a2): 0, sha(b1): 0}
    # a2 is read again (someone still has an old lesson open), so b1 is the least recently used.
    store.touch(sha(a2))
    store.flush_access()

    importer.run(pack(tmp_path / "c.zip", *picture_course("c", "1.0", {"c1.png": c1})))
    have = {r[0] for r in rows(content, "SELECT sha256 FROM blobs")}
    assert have == {sha(a1), sha(a2), sha(c1)}
    assert not store.path(sha(b1)).exists() and store.path(sha(a2)).exists()
    assert store.usage()["used_bytes"] <= store.quota_bytes

    # The next one needs a2's room as well; the pinned a1 and c1 are never touched.
    importer.run(pack(tmp_path / "d.zip", *picture_course("d", "1.0", {"d1.png": d1})))
    assert {r[0] for r in rows(content, "SELECT sha256 FROM blobs")} == {sha(a1), sha(c1), sha(d1)}
    for data in (a1, c1, d1):
        assert store.path(sha(data)).read_bytes() == data


def test_recover_cleans_staging_and_forgets_missing_unpinned(importer, content, tmp_path):
    store = content.get("blobs")
    importer.run(pack(tmp_path / "a.zip", *picture_course("a", "1.0", {"a.png": b"a" * 50, "b.png": b"b" * 50})))
    importer.run(pack(tmp_path / "a2.zip", *picture_course("a", "2.0", {"a.png": b"a" * 50})))
    (store.root / ".staging" / "left-by-a-crash").mkdir(parents=True)
    (store.root / ".staging" / "left-by-a-crash" / "x").write_bytes(b"partial")
    store.path(sha(b"b" * 50)).unlink()  # unpinned and gone: the row is stale
    store.path(sha(b"a" * 50)).unlink()  # pinned and gone: reported, never hidden
    report = store.recover()
    assert report == {"orphans_removed": 0, "missing_pinned": 1}
    assert not any((store.root / ".staging").iterdir())
    assert rows(content, "SELECT sha256 FROM blobs") == [(sha(b"a" * 50),)]


def test_gzip_copy_is_deterministic_and_cached(importer, content, tmp_path):
    import gzip

    importer.run(pack(tmp_path / "a.zip", *course()))
    store = content.get("blobs")
    svg_sha = rows(content, "SELECT sha256 FROM course_assets WHERE name = 'square.svg'")[0][0]
    first = store.gzipped(svg_sha)
    data = first.read_bytes()
    assert gzip.decompress(data) == store.path(svg_sha).read_bytes()
    first.unlink()
    assert store.gzipped(svg_sha).read_bytes() == data


def test_recover_leaves_a_running_imports_staging_alone(content):
    store = content.get("blobs")
    with store.staging() as live:
        (live.dir / "partial").write_bytes(b"still being written")
        (store.root / ".staging" / "dead").mkdir()
        store.recover()
        assert (live.dir / "partial").exists()
        assert not (store.root / ".staging" / "dead").exists()
    assert not live.dir.exists()
