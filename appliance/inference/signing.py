"""Ed25519 signatures over a model's manifest (``model.json``).

What is signed is the manifest itself minus its ``signature`` field, as canonical JSON (sorted keys,
no spaces, UTF-8). The manifest carries the sha256 of every file of the version, so one signature
covers the weights, the tokenizer, the declared tensors and the provenance, and nothing can be swapped
without breaking it. Keys are raw 32-byte Ed25519 keys, base64-encoded, as in ``content.trusted_keys``.
"""
from __future__ import annotations

import base64
import binascii
import json

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from appliance.errors import ConfigError, IntegrityError


def canonical_bytes(manifest: dict) -> bytes:
    body = {k: v for k, v in manifest.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def public_key(b64: str) -> Ed25519PublicKey:
    try:
        raw = base64.b64decode(b64, validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError):
        raise ConfigError(f"inference.trusted_keys: {b64[:12]}... is not a base64 raw Ed25519 public key") from None


def sign_manifest(manifest: dict, private_key_b64: str) -> dict:
    """A copy of ``manifest`` with its signature set (used by the hub and ``models import --sign-key``)."""
    try:
        key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(private_key_b64, validate=True))
    except (binascii.Error, ValueError):
        raise ConfigError("the signing key must be a base64 raw 32-byte Ed25519 private key") from None
    signed = dict(manifest)
    signed["signature"] = {"alg": "ed25519", "value": base64.b64encode(key.sign(canonical_bytes(manifest))).decode()}
    return signed


def verify_manifest(manifest: dict, trusted_keys: list[str], where: str) -> None:
    """Raise IntegrityError unless one trusted key signed this manifest. No keys configured: no check."""
    if not trusted_keys:
        return
    sig = manifest.get("signature")
    if not sig:
        raise IntegrityError(f"{where} is not signed, and this box only loads signed models")
    value = sig.get("value") if isinstance(sig, dict) else sig
    if isinstance(sig, dict) and sig.get("alg", "ed25519") != "ed25519":
        raise IntegrityError(f"{where}: unsupported signature algorithm {sig.get('alg')!r}")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise IntegrityError(f"{where}: the signature is not valid base64") from None
    message = canonical_bytes(manifest)
    for key in trusted_keys:
        try:
            public_key(key).verify(raw, message)
            return
        except InvalidSignature:
            continue
    raise IntegrityError(f"{where}: the signature does not match any trusted key (the model or its manifest was changed, or it was signed by someone else)")
