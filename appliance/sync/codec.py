"""The uplink wire format for event batches.

A batch is ``MAGIC`` followed by one zstd frame (with its content size) holding compact JSON::

    {"v": 1, "events": [[event_id, type, schema, ts, priority, payload], ...]}

Rows instead of objects drop the repeated keys, and zstd removes most of the rest: a typical batch of
attempt events is about 15% of the same events as plain JSON (``bench/sync.py`` measures it). The
payload is the outbox's JSON text spliced in unchanged, so encoding never parses events.

Decoding is for input from the network: the size is bounded before and after decompression (a zstd
bomb cannot blow up memory) and the structure is checked field by field.
"""
from __future__ import annotations

import json
from collections.abc import Iterable

import zstandard

from appliance import jsonsafe
from appliance.errors import BadRequest

MAGIC = b"CEB\x01"
CONTENT_TYPE = "application/vnd.classroom-edge.batch+zstd"
CODEC_NAME = "zstd-json-1"
MAX_DECODED_BYTES = 4 * 1024 * 1024
_MAX_ID = 128


class CodecError(BadRequest):
    code = "bad_batch"


def encode_rows(rows: Iterable, level: int = 3) -> tuple[bytes, int]:
    """Encode outbox rows (``outbox.Row``); returns (wire bytes, uncompressed size)."""
    dumps = json.dumps
    parts = [
        f'[{dumps(r.event_id)},{dumps(r.type)},{int(r.schema)},{dumps(r.ts)},{int(r.priority)},{r.payload}]'
        for r in rows
    ]
    body = ('{"v":1,"events":[' + ",".join(parts) + "]}").encode("utf-8")
    return MAGIC + zstandard.ZstdCompressor(level=level, write_content_size=True).compress(body), len(body)


def encode_events(events: Iterable[dict], level: int = 3) -> bytes:
    """Encode event dicts (``event_id, type, schema, ts, priority, payload``): tests and the bench."""
    rows = [[e["event_id"], e["type"], e["schema"], e["ts"], e["priority"], e["payload"]] for e in events]
    body = json.dumps({"v": 1, "events": rows}, separators=(",", ":")).encode("utf-8")
    return MAGIC + zstandard.ZstdCompressor(level=level, write_content_size=True).compress(body)


def decode(data: bytes, max_decoded: int = MAX_DECODED_BYTES) -> list[dict]:
    """Wire bytes -> list of event dicts. Raises ``CodecError`` for anything malformed or too large."""
    if not isinstance(data, (bytes, bytearray)) or not data.startswith(MAGIC):
        raise CodecError("not a Classroom Edge batch (bad magic)")
    frame = bytes(data[len(MAGIC):])
    try:
        params = zstandard.get_frame_parameters(frame)
    except zstandard.ZstdError as exc:
        raise CodecError(f"not a zstd frame: {exc}") from None
    if params.content_size > max_decoded:  # also true for "unknown" (a huge sentinel value)
        raise CodecError(f"batch declares {params.content_size} bytes; at most {max_decoded} are accepted")
    try:
        body = zstandard.ZstdDecompressor().decompress(frame, max_output_size=max_decoded)
    except zstandard.ZstdError as exc:
        raise CodecError(f"corrupt batch: {exc}") from None
    try:
        doc = jsonsafe.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CodecError(f"batch is not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("v") != 1 or not isinstance(doc.get("events"), list):
        raise CodecError("batch has no version 1 'events' list")
    return [_event(i, row) for i, row in enumerate(doc["events"])]


def _event(i: int, row) -> dict:
    if not isinstance(row, list) or len(row) != 6:
        raise CodecError(f"event {i}: expected 6 fields")
    event_id, type_, schema, ts, priority, payload = row
    for name, val in (("event_id", event_id), ("type", type_), ("ts", ts)):
        if not isinstance(val, str) or not 0 < len(val) <= _MAX_ID:
            raise CodecError(f"event {i}: bad {name}")
    for name, val in (("schema", schema), ("priority", priority)):
        if not isinstance(val, int) or isinstance(val, bool) or not 0 <= val < 1000:
            raise CodecError(f"event {i}: bad {name}")
    if not isinstance(payload, dict):
        raise CodecError(f"event {i}: payload must be an object")
    return {"event_id": event_id, "type": type_, "schema": schema, "ts": ts, "priority": priority,
            "payload": payload}
