"""Course import throughput and the blob store's dedupe, on real files and a real SQLite database.

``python -m bench.content [--quick]`` prints JSON: MB/s importing a bundle of random assets as a zip
and as an unpacked folder (every byte is hashed and fsynced), a re-import of the same bundle (a no-op),
an upgrade that changes only course.json (every asset hash is re-verified, no byte is copied), a second
course sharing every asset (stored once), and the demo generator's time and size.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from bench.common import emit


def _bundle(out: Path, cid: str, version: str, assets: dict[str, bytes]) -> Path:
    from appliance.content.writer import write_bundle

    doc = {
        "schema_version": 1, "id": cid, "version": version, "title": f"Bench {cid}", "language": "en",
        "skills": [{"id": "s", "name": "S"}],
        "lessons": [{"id": "l", "title": "L", "blocks": [{"type": "video", "asset": n, "title": n} for n in assets]}],
        "exercises": [{"id": "e", "lesson": "l", "kind": "numeric", "prompt": "1+1", "skills": ["s"],
                       "spec": {"answer": 2, "tolerance": 0}}],
        "assets": {n: {"sha256": hashlib.sha256(d).hexdigest(), "size": len(d), "mime": "video/mp4"}
                   for n, d in assets.items()},
    }
    blobs = {hashlib.sha256(d).hexdigest(): d for d in assets.values()}
    return write_bundle(out, json.dumps(doc).encode(), blobs)


def _timed(fn, *args):
    t0 = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - t0


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(prog="python -m bench.content")
    p.add_argument("--quick", action="store_true", help="16 MB instead of 128 MB")
    args = p.parse_args(argv)
    from appliance.config import load_config
    from appliance.content import attach, demo
    from appliance.services import Services

    total_mb = 16 if args.quick else 128
    files = 16
    rng_bytes = os.urandom(total_mb * 2**20)  # incompressible, like video
    assets = {f"clip{i:02d}.mp4": rng_bytes[i * len(rng_bytes) // files:(i + 1) * len(rng_bytes) // files]
              for i in range(files)}
    out: dict = {"bundle_mb": total_mb, "assets": files}
    with tempfile.TemporaryDirectory(prefix="ce-bench-content-") as tmp:
        tmp = Path(tmp)
        zip_path = _bundle(tmp / "a.zip", "bench", "1.0", assets)
        dir_path = _bundle(tmp / "a-dir", "bench-dir", "1.0", assets)
        for label, path in (("zip", zip_path), ("dir", dir_path)):
            cfg = load_config(env={"CLASSROOM_EDGE_STORAGE__DATA_DIR": str(tmp / f"data-{label}"),
                                   "CLASSROOM_EDGE_CONTENT__INSTALL_DEMO": "false"})
            services = Services.open(cfg)
            try:
                attach(services)
                importer = services.get("content_importer")
                _, first = _timed(importer.run, path)
                out[f"import_{label}_s"] = round(first, 3)
                out[f"import_{label}_mb_per_s"] = round(total_mb / first, 1)
                if label != "zip":
                    continue
                res, again = _timed(importer.run, path)
                out["reimport_same_s"] = round(again, 4)
                out["reimport_status"] = res.status
                upgraded = _bundle(tmp / "a2.zip", "bench", "1.1", assets)
                res, up = _timed(importer.run, upgraded)
                out["upgrade_manifest_only_s"] = round(up, 3)
                out["upgrade_new_bytes"] = res.new_bytes
                shared = _bundle(tmp / "b.zip", "bench-shared", "1.0", assets)
                res, _ = _timed(importer.run, shared)
                usage = services.get("blobs").usage()
                out["second_course_sharing_assets_new_bytes"] = res.new_bytes
                out["blob_store_used_mb"] = round(usage["used_bytes"] / 2**20, 1)
                out["courses_installed"] = 2
            finally:
                services.close()
        (manifest, blobs), gen = _timed(demo.build, "en")
        out["demo_generate_s"] = round(gen, 3)
        out["demo_course_json_kb"] = round(len(manifest) / 1024, 1)
        out["demo_assets_kb"] = round(sum(len(b) for b in blobs.values()) / 1024, 1)
    out["ratio_zip_vs_dir_time"] = round(out["import_zip_s"] / out["import_dir_s"], 2)
    return emit("content", out)


if __name__ == "__main__":
    main(sys.argv[1:])
