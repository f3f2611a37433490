"""Ed25519 keys and signatures, shared by everything the box verifies (course bundles, models,
federated global versions) and everything the hub or an author signs.

Keys travel as base64 of the raw 32-byte key (public) or seed (private), the form the config's
``trusted_keys`` lists and ``hub keys`` prints. What a signature covers, and how it is stored next
to its file, is the caller's format (``content.signing``, ``inference.signing``); this module only
turns keys and bytes into signatures and back, with one error vocabulary for bad keys.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import os
from pathlib import Path

from appliance.errors import ConfigError

SIGNATURE_BYTES = 64


def _ed25519():
    # Lazy: most processes never sign or verify anything, and cryptography is a large import.
    from cryptography.hazmat.primitives.asymmetric import ed25519

    return ed25519


def key_id(public_b64: str) -> str:
    """A short fingerprint for logs and the admin page (first 16 hex of sha256 of the raw key)."""
    return hashlib.sha256(base64.b64decode(public_b64)).hexdigest()[:16]


def generate_keypair() -> tuple[str, str]:
    """``(private_b64, public_b64)`` of a fresh key."""
    from cryptography.hazmat.primitives import serialization as ser

    priv = _ed25519().Ed25519PrivateKey.generate()
    raw_priv = priv.private_bytes(ser.Encoding.Raw, ser.PrivateFormat.Raw, ser.NoEncryption())
    return base64.b64encode(raw_priv).decode(), public_key_of(base64.b64encode(raw_priv).decode())


def load_private(private_b64: str):
    try:
        raw = base64.b64decode(private_b64, validate=True)
        return _ed25519().Ed25519PrivateKey.from_private_bytes(raw)
    except (binascii.Error, ValueError):
        raise ConfigError("the signing key is not a base64 Ed25519 private key (32 raw bytes).") from None


def load_public(public_b64: str, setting: str):
    """The key, or a ConfigError naming the ``setting`` that holds the bad value."""
    try:
        return _ed25519().Ed25519PublicKey.from_public_bytes(base64.b64decode(public_b64, validate=True))
    except (binascii.Error, ValueError):
        raise ConfigError(f"{setting} holds {public_b64[:12]!r}..., which is not a base64 raw Ed25519 public key.") from None


def public_key_of(private_b64: str) -> str:
    return public_b64(load_private(private_b64))


def sign(message: bytes, private_b64: str) -> bytes:
    """The raw 64-byte signature of ``message``."""
    return load_private(private_b64).sign(message)


def public_b64(private_key) -> str:
    """The base64 public key of a loaded private key."""
    from cryptography.hazmat.primitives import serialization as ser

    return base64.b64encode(private_key.public_key().public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw)).decode()


def signed_by(raw_signature: bytes, message: bytes, public_keys) -> int | None:
    """Index of the loaded public key that made ``raw_signature`` over ``message``, or None."""
    from cryptography.exceptions import InvalidSignature

    for i, key in enumerate(public_keys):
        try:
            key.verify(raw_signature, message)
            return i
        except InvalidSignature:
            continue
    return None


def signer(raw_signature: bytes, message: bytes, trusted_keys: list[str], setting: str) -> str | None:
    """The key id of the trusted key (base64, from ``setting``) that signed ``message``, or None."""
    found = signed_by(raw_signature, message, [load_public(k, setting) for k in trusted_keys])
    return None if found is None else key_id(trusted_keys[found])


def write_private_key(path: str | os.PathLike, private_b64: str) -> None:
    """A new file only its owner can read (never overwrites an existing key)."""
    fd = os.open(Path(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(private_b64 + "\n")


def read_private_key(path: str | os.PathLike) -> str:
    text = Path(path).read_text().strip()
    load_private(text)  # fail here, with the file name, rather than at signing time
    return text
