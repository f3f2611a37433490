"""Detached Ed25519 signatures over ``course.json``.

The manifest lists the sha256 of every asset, so signing its exact bytes signs the whole bundle.
``course.json.sig`` holds the 64-byte signature base64-encoded on one line (raw 64 bytes are accepted
too). Public keys are configured as base64 of the raw 32-byte key (``content.trusted_keys``); private
keys are stored as base64 of the raw 32-byte seed in a file readable only by its owner.
"""
from __future__ import annotations

import base64
import binascii

from appliance.ed25519 import (  # noqa: F401 - the key helpers are part of this module's API
    SIGNATURE_BYTES,
    generate_keypair,
    key_id,
    public_key_of,
    read_private_key,
    signer,
    write_private_key,
)
from appliance.ed25519 import sign as _sign
from appliance.errors import IntegrityError


def sign(manifest: bytes, private_b64: str) -> bytes:
    """The contents of ``course.json.sig`` for ``manifest``."""
    return base64.b64encode(_sign(manifest, private_b64)) + b"\n"


def decode_signature(sig: bytes) -> bytes:
    if len(sig) == SIGNATURE_BYTES:
        return sig
    try:
        raw = base64.b64decode(sig.strip(), validate=True)
    except binascii.Error:
        raw = b""
    if len(raw) != SIGNATURE_BYTES:
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
    who = signer(decode_signature(sig), manifest, trusted_keys, "content.trusted_keys")
    if who is None:
        raise IntegrityError("the bundle's signature does not match any trusted key: it was changed or signed by someone else.")
    return who
