"""Downlink announcements: what the hub publishes retained on ``ce/v1/global/{models|content}/{name}``.

An announcement is a signed manifest (JSON)::

    {"kind": "model", "name": "mastery", "version": "7", "sha256": "<whole payload>", "size": 123,
     "chunk_size": 262144, "chunks": ["<sha256 of chunk 0>", ...], "created_at": "...", "meta": {...},
     "signature": "<base64 Ed25519 over the canonical JSON of every other field>"}

The payload travels in retained chunks on ``<announcement topic>/chunks/<version>/<index>``, each checked
against its hash in the (signed) manifest as it arrives, and the whole against ``sha256`` before anyone
gets to use it. Everything here is input from the network: every field is checked.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import asdict, dataclass, field

from appliance import jsonsafe
from appliance.ed25519 import load_public, signed_by
from appliance.errors import IntegrityError

KINDS = {"model": "models", "content": "content"}
TOPIC_ROOT = "ce/v1/global"
CHUNK_SIZE = 256 * 1024
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")


class Rejected(IntegrityError):
    """A downlink message that must not be used (malformed, oversized, unsigned, wrongly signed)."""

    code = "downlink_rejected"


@dataclass(frozen=True)
class Manifest:
    kind: str
    name: str
    version: str
    sha256: str
    size: int
    chunk_size: int
    chunks: tuple[str, ...]
    created_at: str = ""
    meta: dict = field(default_factory=dict)
    signature: str = ""

    @property
    def topic(self) -> str:
        return announcement_topic(self.kind, self.name)

    def chunk_topic(self, idx: int) -> str:
        return f"{self.topic}/chunks/{self.version}/{idx}"

    def chunk_length(self, idx: int) -> int:
        return min(self.chunk_size, self.size - idx * self.chunk_size)

    def unsigned_doc(self) -> dict:
        doc = asdict(self)
        doc.pop("signature")
        doc["chunks"] = list(self.chunks)
        return doc

    def to_bytes(self) -> bytes:
        return json.dumps({**self.unsigned_doc(), "signature": self.signature}, sort_keys=True,
                          separators=(",", ":")).encode()


def announcement_topic(kind: str, name: str) -> str:
    return f"{TOPIC_ROOT}/{KINDS[kind]}/{name}"


def canonical(doc: dict) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def load_public_keys(keys: list[str], where: str = "sync.trusted_keys"):
    return [load_public(k, where) for k in keys]


def sign(doc: dict, private_key) -> str:
    return base64.b64encode(private_key.sign(canonical(doc))).decode()


def parse(topic: str, payload: bytes, *, max_bytes: int, max_size: int, public_keys) -> Manifest:
    """Check an announcement completely; raises ``Rejected`` with the reason."""
    if len(payload) > max_bytes:
        raise Rejected(f"announcement of {len(payload)} bytes exceeds {max_bytes}")
    try:
        doc = jsonsafe.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Rejected(f"announcement is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise Rejected("announcement is not a JSON object")
    sig = doc.pop("signature", None)
    if not sig:
        raise Rejected("announcement is unsigned")
    if not public_keys:
        raise Rejected("no trusted keys configured (sync.trusted_keys): every update is refused")
    try:
        raw_sig = base64.b64decode(sig, validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise Rejected("signature is not base64") from None
    if signed_by(raw_sig, canonical(doc), public_keys) is None:
        raise Rejected("announcement signature does not match any trusted key")
    m = _validate(doc, sig, max_size)
    if m.topic != topic:
        raise Rejected(f"announcement for {m.kind} {m.name!r} arrived on the wrong topic {topic!r}")
    return m


def _validate(doc: dict, sig: str, max_size: int) -> Manifest:
    kind, name, version = doc.get("kind"), doc.get("name"), doc.get("version")
    if kind not in KINDS:
        raise Rejected(f"unknown kind {kind!r}")
    for what, val in (("name", name), ("version", version)):
        if not isinstance(val, str) or not NAME_RE.match(val):
            raise Rejected(f"bad {what} {val!r}")
    size, chunk_size, chunks = doc.get("size"), doc.get("chunk_size"), doc.get("chunks")
    if not isinstance(size, int) or isinstance(size, bool) or not 0 < size <= max_size:
        raise Rejected(f"size {size!r} outside 1..{max_size}")
    if not isinstance(chunk_size, int) or not 1024 <= chunk_size <= CHUNK_SIZE:
        raise Rejected(f"chunk_size {chunk_size!r} outside 1 KiB..256 KiB")
    if not isinstance(chunks, list) or len(chunks) != -(-size // chunk_size):
        raise Rejected("chunk list does not match size / chunk_size")
    if not isinstance(doc.get("sha256"), str) or not HEX64.match(doc["sha256"]):
        raise Rejected("bad sha256")
    if not all(isinstance(c, str) and HEX64.match(c) for c in chunks):
        raise Rejected("bad chunk hash")
    meta = doc.get("meta", {})
    if not isinstance(meta, dict):
        raise Rejected("meta must be an object")
    extra = set(doc) - {"kind", "name", "version", "sha256", "size", "chunk_size", "chunks", "created_at", "meta"}
    if extra:
        raise Rejected(f"unknown fields {sorted(extra)}")
    return Manifest(kind, name, version, doc["sha256"], size, chunk_size, tuple(chunks),
                    str(doc.get("created_at", "")), meta, sig)


def build(kind: str, name: str, version: str, data_path, private_key, *, created_at: str = "",
          meta: dict | None = None, chunk_size: int = CHUNK_SIZE) -> Manifest:
    """Hash a payload file chunk by chunk and sign the manifest (the hub's publisher uses this)."""
    if kind not in KINDS or not NAME_RE.match(name) or not NAME_RE.match(version):
        raise Rejected(f"bad kind/name/version {kind!r} {name!r} {version!r}")
    whole = hashlib.sha256()
    chunks, size = [], 0
    with open(data_path, "rb") as fh:
        while block := fh.read(chunk_size):
            whole.update(block)
            chunks.append(hashlib.sha256(block).hexdigest())
            size += len(block)
    m = Manifest(kind, name, version, whole.hexdigest(), size, chunk_size, tuple(chunks), created_at, meta or {})
    return Manifest(**{**asdict(m), "chunks": tuple(chunks), "signature": sign(m.unsigned_doc(), private_key)})
