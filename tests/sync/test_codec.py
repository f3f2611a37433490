import json
import random
import uuid

import pytest
import zstandard

from appliance.sync import codec
from appliance.sync.outbox import Row


def realistic_rows(n: int, seed: int = 1) -> list[Row]:
    """Attempt and lesson-progress events shaped like the LMS writes them (random UUIDs included)."""
    rng = random.Random(seed)
    students = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(30)]
    rows = []
    for i in range(n):
        ts = f"2024-03-0{1 + i % 9}T10:{i % 60:02d}:{(i * 7) % 60:02d}.{rng.randint(0, 999):03d}Z"
        if rng.random() < 0.7:
            payload = {"attempt_uid": str(uuid.UUID(int=rng.getrandbits(128))), "student": rng.choice(students),
                       "course": "fractions-101", "exercise": f"ex-{rng.randint(1, 80):03d}",
                       "correct": rng.random() < 0.6, "score": round(rng.random(), 2), "graded_by": "rule",
                       "duration_ms": rng.randint(1500, 90000), "answer": {"choice": rng.randint(0, 3)}, "at": ts}
            type_ = "attempt"
        else:
            payload = {"student": rng.choice(students), "course": "fractions-101", "lesson": f"l-{rng.randint(1, 20)}",
                       "status": rng.choice(["started", "completed"]), "at": ts}
            type_ = "lesson_progress"
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True)
        rows.append(Row(i + 1, str(uuid.UUID(int=rng.getrandbits(128))), type_, 1, ts, 0, body, len(body)))
    return rows


def plain_json(rows) -> bytes:
    return json.dumps([{"event_id": r.event_id, "type": r.type, "schema": r.schema, "ts": r.ts,
                        "priority": r.priority, "payload": json.loads(r.payload)} for r in rows]).encode()


def test_round_trip_keeps_every_field():
    rows = realistic_rows(200)
    data, raw = codec.encode_rows(rows)
    events = codec.decode(data)
    assert [e["event_id"] for e in events] == [r.event_id for r in rows]
    assert events[5] == {"event_id": rows[5].event_id, "type": rows[5].type, "schema": 1, "ts": rows[5].ts,
                         "priority": 0, "payload": json.loads(rows[5].payload)}
    assert raw > len(data)


def test_a_full_batch_is_at_most_40_percent_of_plain_json():
    rows = realistic_rows(500)
    data, _ = codec.encode_rows(rows)
    ratio = len(data) / len(plain_json(rows))
    assert ratio <= 0.40, ratio


def test_unicode_and_quotes_in_fields_survive():
    body = json.dumps({"text": 'say "hi" \u00e9\u4e2d'}, separators=(",", ":"))
    rows = [Row(1, "id-1", 'type"with"quotes', 1, "2024-01-01T00:00:00.000Z", 1, body, len(body))]
    (event,) = codec.decode(codec.encode_rows(rows)[0])
    assert event["type"] == 'type"with"quotes' and event["payload"]["text"] == 'say "hi" \u00e9\u4e2d'


def _frame(doc, content_size=True) -> bytes:
    raw = json.dumps(doc).encode() if not isinstance(doc, bytes) else doc
    return codec.MAGIC + zstandard.ZstdCompressor(write_content_size=content_size).compress(raw)


@pytest.mark.parametrize("data, reason", [
    (b"", "magic"),
    (b"PK\x03\x04whatever", "magic"),
    (codec.MAGIC + b"not zstd", "zstd"),
    (_frame({"v": 1, "events": []}, content_size=False), "declares"),   # size unknown: refused
    (_frame(b"{not json"), "not JSON"),
    (_frame(b"[" * 200_000 + b"]" * 200_000), "not JSON"),  # RecursionError: a poison batch, not a crash
    (_frame({"v": 2, "events": []}), "version 1"),
    (_frame({"v": 1, "events": [["a", "b"]]}), "6 fields"),
    (_frame({"v": 1, "events": [["", "t", 1, "ts", 0, {}]]}), "event_id"),
    (_frame({"v": 1, "events": [["a", "t", "1", "ts", 0, {}]]}), "schema"),
    (_frame({"v": 1, "events": [["a", "t", 1, "ts", True, {}]]}), "priority"),
    (_frame({"v": 1, "events": [["a", "t", 1, "ts", 0, [1]]]}), "payload"),
])
def test_malformed_batches_are_refused_with_a_reason(data, reason):
    with pytest.raises(codec.CodecError) as exc:
        codec.decode(data)
    assert reason in exc.value.message


def test_a_decompression_bomb_is_refused_before_inflating():
    bomb = _frame(b"[" + b" " * (8 * 1024 * 1024) + b"]")
    assert len(bomb) < 2000
    with pytest.raises(codec.CodecError, match="declares"):
        codec.decode(bomb, max_decoded=4 * 1024 * 1024)
