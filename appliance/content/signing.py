"""Detached Ed25519 signatures over ``course.json``.

The manifest lists the sha256 of every asset, so signing its exact bytes signs the whole bundle.
``course.json.sig`` holds the 64-byte signature base64-encoded on one line (raw 64 bytes are accepted
too). Public keys are configured as base64 of the raw 32-byte key (``content.trusted_keys``); private
keys are stored as base64 of the raw 32-byte seed in a file readable only by its owner.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import os
from pathlib import Path

from appliance.errors import ConfigError, IntegrityError


def _ed25519():
    # Lazy: most processes never sign or verify anything.
    from cryptography.hazmat.primitives.asymmetric import ed25519

    return ed25519


def key_id(public_b64: str) -> str:
    """A short fingerprint for logs and the admin page (first 16 hex of sha256 of the raw key)."""
    return hashlib.sha256(base64.b64decode(public_b64)).hexdigest()[:16]


def generate_keypair() -> tuple[str, str]:
    """``(private_b64, public_b64)`` of a fresh key."""
    from cryptography.hazmat.primitives import serialization as ser

    ed = _ed25519()
    priv = ed.Ed25519PrivateKey.generate()
    raw_priv = priv.private_bytes(ser.Encoding.Raw, ser.PrivateFormat.Raw, ser.NoEncryption())
    raw_pub = priv.public_key().public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw)
    return base64.b64encode(raw_priv).decode(), base64.b64encode(raw_pub).decode()


def public_key_of(private_b64: str) -> str:
    from cryptography.hazmat.primitives import serialization as ser

    priv = _load_private(private_b64)
    return base64.b64encode(priv.public_key().public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw)).decode()


def write_private_key(path: str | os.PathLike, private_b64: str) -> None:
    p = Path(path)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(private_b64 + "\n")


def read_private_key(path: str | os.PathLike) -> str:
    text = Path(path).read_text().strip()
    _load_private(text)  # fail here, with the file name, rather than at signing time
    return text


def _load_private(private_b64: str):
    try:
        raw = base64.b64decode(private_b64, validate=True)
        return _ed25519().Ed25519PrivateKey.from_private_bytes(raw)
    except (binascii.Error, ValueError):
        raise ConfigError("the signing key is not a base64 Ed25519 private key (32 raw bytes).") from None


def sign(manifest: bytes, private_b64: str) -> bytes:
    """The contents of ``course.json.sig`` for ``manifest``."""
    return base64.b64encode(_load_private(private_b64).sign(manifest)) + b"\n"


def decode_signature(sig: bytes) -> bytes:
    if len(sig) == 64:
        return sig
    try:
        raw = base64.b64decode(sig.strip(), validate=True)
    except binascii.Error:
        raw = b""
    if len(raw) != 64:
        raise IntegrityError("course.json.sig is not an Ed25519 signature (64 bytes, base64-encoded).")
    return raw


def verify(manifest: bytes, sig: bytes | None, trusted_keys: list[str]) -> str | None:
    """Check ``sig`` against the trusted keys; return the signer's key id.

    With no trusted keys configured nothing is required and None is returned. With keys configured a
    missing or non-matching signature is an ``IntegrityError``.
    """
    if not trusted_keys:
        return None
    if sig is None:
        raise IntegrityError(
            "this bundle is not signed, and this box only accepts courses signed by a trusted key "
            "(content.trusted_keys)."
        )
    from cryptography.exceptions import InvalidSignature

    raw_sig = decode_signature(sig)
    ed = _ed25519()
    for pub in trusted_keys:
        try:
            key = ed.Ed25519PublicKey.from_public_bytes(base64.b64decode(pub, validate=True))
        except (binascii.Error, ValueError):
            raise ConfigError(f"content.trusted_keys holds {pub[:12]!r}..., which is not a base64 Ed25519 public key.") from None
        try:
            key.verify(raw_sig, manifest)
            return key_id(pub)
        except InvalidSignature:
            continue
    raise IntegrityError("the bundle's signature does not match any trusted key: it was changed or signed by someone else.")
