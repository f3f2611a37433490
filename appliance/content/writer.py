"""Writing bundles: a deterministic ``.zip`` or an unpacked directory.

Deterministic (sorted members, fixed timestamps and permissions) so the same course always produces
the same bytes: the demo generator's output and an exported course can be compared by sha256.
Written to a temporary name and renamed, so a half-written bundle never sits under the final name.
"""
from __future__ import annotations

import os
import shutil
import uuid
import zipfile
from collections.abc import Mapping
from pathlib import Path

from appliance.content.bundle import MANIFEST, SIGNATURE, asset_member

Blob = bytes | Path
EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip header can hold
# Already-compressed media gain nothing from deflate; storing them keeps Range reads cheap too.
STORED_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"ID3", b"OggS", b"%PDF", b"\x1a\x45\xdf\xa3")


def _head(blob: Blob) -> bytes:
    if isinstance(blob, Path):
        with open(blob, "rb") as fh:
            return fh.read(8)
    return blob[:8]


def _copy_into(blob: Blob, dst) -> None:
    # Files are streamed, never read whole: an exported course may hold a large video.
    if isinstance(blob, Path):
        with open(blob, "rb") as src:
            shutil.copyfileobj(src, dst, 1 << 20)
    else:
        dst.write(blob)


def _zinfo(name: str, compress: bool) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, EPOCH)
    info.create_system = 3
    info.external_attr = (0o100644 << 16)
    info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    return info


def write_zip(out: str | os.PathLike, manifest: bytes, assets: Mapping[str, Blob], signature: bytes | None = None) -> Path:
    """A bundle zip at ``out``; ``assets`` maps sha256 -> bytes or a file path."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex}.tmp")
    try:
        with zipfile.ZipFile(tmp, "w") as zf:
            zf.writestr(_zinfo(MANIFEST, True), manifest)
            if signature is not None:
                zf.writestr(_zinfo(SIGNATURE, False), signature)
            for sha in sorted(assets):
                blob = assets[sha]
                info = _zinfo(asset_member(sha), not _head(blob).startswith(STORED_MAGIC))
                with zf.open(info, "w", force_zip64=True) as dst:
                    _copy_into(blob, dst)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def write_dir(out: str | os.PathLike, manifest: bytes, assets: Mapping[str, Blob], signature: bytes | None = None) -> Path:
    """An unpacked bundle in directory ``out`` (created; replaced if it already holds a bundle)."""
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise FileExistsError(f"{out} is not empty and does not hold a course bundle; refusing to write into it")
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex}.tmp")
    try:
        (tmp / "assets").mkdir(parents=True)
        (tmp / MANIFEST).write_bytes(manifest)
        if signature is not None:
            (tmp / SIGNATURE).write_bytes(signature)
        for sha in sorted(assets):
            with open(tmp / asset_member(sha), "wb") as dst:
                _copy_into(assets[sha], dst)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def write_bundle(out: str | os.PathLike, manifest: bytes, assets: Mapping[str, Blob], signature: bytes | None = None) -> Path:
    """A zip when ``out`` ends in ``.zip``, else a directory."""
    writer = write_zip if str(out).lower().endswith(".zip") else write_dir
    return writer(out, manifest, assets, signature)
