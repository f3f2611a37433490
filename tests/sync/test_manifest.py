import base64
import json

import pytest
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appliance.errors import ConfigError
from appliance.sync import manifest as mf


def _pub(key) -> str:
    return base64.b64encode(key.public_key().public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw)).decode()


@pytest.fixture
def signed(tmp_path):
    key = Ed25519PrivateKey.generate()
    payload = tmp_path / "payload.bin"
    payload.write_bytes(bytes(range(256)) * 3000)  # 768000 bytes: 3 chunks
    m = mf.build("model", "mastery", "7", payload, key, created_at="2024-01-01T00:00:00Z", meta={"auc": 0.8})
    return m, key, mf.load_public_keys([_pub(key)])


def _parse(topic, data, keys, max_bytes=1 << 20):
    return mf.parse(topic, data, max_bytes=max_bytes, max_size=1 << 30, public_keys=keys)


def test_a_signed_manifest_round_trips(signed):
    m, _, keys = signed
    got = _parse("ce/v1/global/models/mastery", m.to_bytes(), keys)
    assert got == m and len(got.chunks) == 3 and got.chunk_length(2) == 768000 - 2 * mf.CHUNK_SIZE
    assert got.chunk_topic(1) == "ce/v1/global/models/mastery/chunks/7/1"


def _tamper(m, **changes) -> bytes:
    doc = json.loads(m.to_bytes())
    doc.update(changes)
    return json.dumps(doc).encode()


@pytest.mark.parametrize("make, reason", [
    (lambda m, k: b"{not json", "not JSON"),
    (lambda m, k: b"[" * 30_000 + b"]" * 30_000, "not JSON"),   # nested past the parser's stack
    (lambda m, k: b"[1, 2]", "not a JSON object"),
    (lambda m, k: _tamper(m, signature=""), "unsigned"),
    (lambda m, k: json.dumps({kk: v for kk, v in json.loads(m.to_bytes()).items() if kk != "signature"}).encode(),
     "unsigned"),
    (lambda m, k: _tamper(m, signature="!!!"), "base64"),
    (lambda m, k: _tamper(m, version="8"), "does not match any trusted key"),   # signed fields changed
    (lambda m, k: mf.build("model", "mastery", "7", k, Ed25519PrivateKey.generate()).to_bytes(),
     "does not match any trusted key"),                                        # someone else's key
])
def test_bad_announcements_are_rejected(signed, tmp_path, make, reason):
    m, _, keys = signed
    other = tmp_path / "other.bin"
    other.write_bytes(b"x" * 5000)
    with pytest.raises(mf.Rejected, match=reason):
        _parse("ce/v1/global/models/mastery", make(m, other), keys)


def test_oversized_wrong_topic_and_no_keys_are_rejected(signed):
    m, _, keys = signed
    with pytest.raises(mf.Rejected, match="exceeds"):
        _parse("ce/v1/global/models/mastery", m.to_bytes(), keys, max_bytes=100)
    with pytest.raises(mf.Rejected, match="wrong topic"):
        _parse("ce/v1/global/models/other", m.to_bytes(), keys)
    with pytest.raises(mf.Rejected, match="no trusted keys"):
        _parse("ce/v1/global/models/mastery", m.to_bytes(), [])


def test_validly_signed_but_inconsistent_manifests_are_rejected(signed):
    m, key, keys = signed
    for change, reason in (({"chunks": m.chunks[:2]}, "chunk list"), ({"size": 0}, "size"),
                           ({"chunk_size": 10 ** 7}, "chunk_size"), ({"name": "../etc"}, "bad name"),
                           ({"kind": "firmware"}, "unknown kind")):
        doc = {**m.unsigned_doc(), **change}
        doc["chunks"] = list(doc["chunks"])
        data = json.dumps({**doc, "signature": mf.sign(doc, key)}).encode()
        with pytest.raises(mf.Rejected, match=reason):
            _parse("ce/v1/global/models/mastery", data, keys)


def test_a_bad_trusted_key_is_a_config_error():
    with pytest.raises(ConfigError, match="sync.trusted_keys"):
        mf.load_public_keys(["not-a-key"])
