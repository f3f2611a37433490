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

from appliance.ed25519 import sign, signer
from appliance.errors import IntegrityError


def canonical_bytes(manifest: dict) -> bytes:
    body = {k: v for k, v in manifest.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sign_manifest(manifest: dict, private_key_b64: str) -> dict:
    """A copy of ``manifest`` with its signature set (used by the hub and ``models import --sign-key``)."""
    signed = dict(manifest)
    signed["signature"] = {"alg": "ed25519", "value": base64.b64encode(sign(canonical_bytes(manifest), private_key_b64)).decode()}
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
    if signer(raw, canonical_bytes(manifest), trusted_keys, "inference.trusted_keys") is None:
        raise IntegrityError(f"{where}: the signature does not match any trusted key (the model or its manifest was changed, or it was signed by someone else)")


def signed_by_one_of(manifest: dict, keys: list[str]) -> bool:
    """One of ``keys`` signed this manifest (False with no keys: nothing vouches for it)."""
    if not keys:
        return False
    try:
        verify_manifest(manifest, keys, "model.json")
    except IntegrityError:
        return False
    return True
