"""The box's own model-signing key: what this box builds itself is signed by it.

With ``inference.trusted_keys`` set, the engine serves only signed versions. Without a key of its
own, the box would then refuse the default models it built from PyPI packages at install time (and
every ``models quantize`` an admin runs on it), and grading, search and Next up would stop until
someone signed them by hand. So the builders sign with a key made once per repository, and the
serving side (``Repository.for_serving``) trusts its public half next to the configured keys.

What the signature means is "built on this box"; it protects against what arrives from outside (a
hub version, a copied folder), not against someone who can already write as the service user. The
private key is owner-only; the public key sits next to it, readable, because the web service only
needs that half (a root-run ``models build`` still leaves the service able to verify).
"""
from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from appliance.ed25519 import generate_keypair, public_key_of, read_private_key

log = logging.getLogger(__name__)

# Dot files: a model name can never start with a dot (``NAME_RE``), so they are never listed as models.
PRIVATE_FILE = ".own-signing-key"
PUBLIC_FILE = ".own-signing-key.pub"


def own_public_key(repo_root: str | os.PathLike) -> str | None:
    """The public half of this repository's key, or None before anything was built here."""
    try:
        return (Path(repo_root) / PUBLIC_FILE).read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


def _give_to_owner_of(root: Path, path: Path) -> None:
    """A key made by ``sudo classroom-edge models ...`` belongs to whoever owns the repository (the
    service user): root-owned and 0600, every later build by the service would fail to read it."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        st = root.stat()
        os.chown(path, st.st_uid, st.st_gid)


def _write_new(root: Path, path: Path, text: str) -> None:
    """Create ``path`` (owner-only; FileExistsError if it is there) with ``text``, durably: a power cut
    must not leave an empty key that every later build fails on."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    _give_to_owner_of(root, path)


def _create(root: Path, path: Path, private: str) -> None:
    """Put a new key in place only if no key is there yet: two builders starting at once agree on the
    first. Written whole under a temporary name and linked; a file system without hard links (a FAT
    stick) takes it by exclusive create instead, under the same rule."""
    tmp = root / f"{PRIVATE_FILE}.tmp-{secrets.token_hex(8)}"
    try:
        _write_new(root, tmp, private + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            return
        except OSError:  # no hard links on this file system
            try:
                _write_new(root, path, private + "\n")
            except FileExistsError:
                return
        log.info("made this box's model-signing key (%s)", path)
        dir_fd = os.open(root, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    finally:
        tmp.unlink(missing_ok=True)


def own_private_key(repo_root: str | os.PathLike) -> str:
    """The key that signs what this box builds, made on first use. Two builders starting at once
    agree on one key: each writes its own and links it into place only if none is there yet. The
    public half is written (again) from the private one, so a crash between the two never leaves a
    public key that signs nothing."""
    root = Path(repo_root)
    path = root / PRIVATE_FILE
    if not path.exists():
        root.mkdir(parents=True, exist_ok=True)
        _create(root, path, generate_keypair()[0])
    private = read_private_key(path)
    public = public_key_of(private)
    if own_public_key(root) != public:
        from appliance.inference.manifest import write_atomic

        write_atomic(root / PUBLIC_FILE, public + "\n")
    return private
