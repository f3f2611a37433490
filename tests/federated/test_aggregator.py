"""FedBuff aggregation: buffers, staleness weights and refusal, sender checks, and replay idempotence."""
from __future__ import annotations

import math

import numpy as np
import pytest

from appliance.federated.aggregator import (
    Aggregator,
    AggregatorSettings,
    staleness_factor,
)
from appliance.federated.schema import MIGRATIONS
from appliance.federated.update import (
    ModelUpdate,
    UpdateKey,
    decode,
    encode,
    new_update_id,
)
from appliance.learning.features import FeatureSpec
from appliance.store.database import Database
from appliance.store.migrations import apply_migrations

SPEC = FeatureSpec(item_buckets=64, skill_buckets=8)
N = SPEC.n_features + 1


@pytest.fixture
def make_db(tmp_path):
    opened = []

    def make(name="hub.db"):
        path = tmp_path / name
        apply_migrations(path, MIGRATIONS)
        db = Database(path)
        opened.append(db)
        return db

    yield make
    for db in opened:
        db.close()


def _agg(k=3, **kw):
    return Aggregator(AggregatorSettings(buffer_size=k, **kw))


def _update(box: str, base: int, seed: int, samples: int = 100, scale: float = 0.1) -> bytes:
    rng = np.random.default_rng(seed)
    delta = rng.normal(0, scale, size=N).astype(np.float32)
    return encode(ModelUpdate(UpdateKey(box, base, new_update_id()), "learner", samples, delta), 32, rng)


def _start(db, agg, params=None):
    params = np.zeros(N, dtype=np.float32) if params is None else params
    return db.write(lambda c: agg.bootstrap(c, params, SPEC))


def _submit(db, agg, payload, sender=None):
    return db.write(lambda c: agg.submit(c, payload, sender=sender))


def _current(db, agg):
    with db.read() as conn:
        return agg.current(conn)


def test_a_version_every_k_updates_with_the_weighted_mean(make_db):
    db, agg = make_db(), _agg(k=3)
    assert _start(db, agg) == 1
    payloads = [_update(f"s/b{i}", 1, i, samples=100 * (i + 1)) for i in range(3)]
    outs = [_submit(db, agg, p) for p in payloads]
    assert [o.status for o in outs] == ["buffered"] * 3
    assert [o.new_version for o in outs] == [None, None, 2]
    want = sum(100 * (i + 1) * decode(p).delta.astype(np.float64) for i, p in enumerate(payloads)) / 600
    assert np.allclose(_current(db, agg).params, want.astype(np.float32), atol=1e-7)
    with db.read() as conn:
        statuses = {r[0] for r in conn.execute("SELECT status FROM fl_updates")}
        payload_left = conn.execute("SELECT count(*) FROM fl_updates WHERE payload IS NOT NULL").fetchone()[0]
    assert statuses == {"applied"} and payload_left == 0


def test_staleness_lowers_the_weight_and_too_stale_is_refused(make_db):
    db, agg = make_db(), _agg(k=1, max_staleness=2)
    _start(db, agg)
    for i in range(3):  # versions 2, 3, 4
        assert _submit(db, agg, _update(f"s/b{i}", 1 + i, i)).new_version == 2 + i
    ok = _submit(db, agg, _update("s/late", 2, 10))   # 2 behind: accepted
    late = _submit(db, agg, _update("s/old", 1, 11))  # 3 behind: refused (version 5 now)
    assert ok.status == "buffered" and ok.staleness == 2
    assert late.status == "refused" and "too stale" in late.reason
    future = _submit(db, agg, _update("s/x", 99, 12))
    assert future.status == "refused" and "unknown" in future.reason
    with db.read() as conn:
        w = conn.execute("SELECT weight FROM fl_updates WHERE box = 's/late'").fetchone()[0]
    assert w == pytest.approx(100 / math.sqrt(3))
    assert staleness_factor(0) == 1.0 and staleness_factor(3) == pytest.approx(0.5)


def test_stale_updates_count_less_in_the_mean(make_db):
    db, agg = make_db(), _agg(k=1)
    _start(db, agg)
    _submit(db, agg, _update("s/a", 1, 1))                         # -> version 2
    base = _current(db, agg).params.astype(np.float64)
    agg2 = Aggregator(AggregatorSettings(buffer_size=2))
    fresh, stale = _update("s/f", 2, 2), _update("s/s", 1, 3)       # staleness 0 and 1, same samples
    _submit(db, agg2, fresh)
    _submit(db, agg2, stale)
    wf, ws = 100.0, 100.0 / math.sqrt(2)
    # Combined in key order (box "s/f" before "s/s"), as the aggregator does.
    want = base + (wf * decode(fresh).delta.astype(np.float64) + ws * decode(stale).delta) / (wf + ws)
    assert np.allclose(_current(db, agg2).params, want.astype(np.float32), atol=1e-7)


def test_the_box_in_the_key_must_be_the_sender(make_db):
    db, agg = make_db(), _agg()
    _start(db, agg)
    out = _submit(db, agg, _update("school1/box1", 1, 1), sender="school1/box2")
    assert out.status == "refused" and "came from" in out.reason


def test_wrong_model_and_size_are_refused(make_db):
    db, agg = make_db(), _agg()
    _start(db, agg)
    rng = np.random.default_rng(0)
    other = encode(ModelUpdate(UpdateKey("s/b", 1, new_update_id()), "mastery", 5, np.ones(N, np.float32)), 32, rng)
    short = encode(ModelUpdate(UpdateKey("s/c", 1, new_update_id()), "learner", 5, np.ones(10, np.float32)), 32, rng)
    assert "model" in _submit(db, agg, other).reason
    assert "values" in _submit(db, agg, short).reason


def _run(db, agg, deliveries):
    _start(db, agg, np.linspace(-1, 1, N).astype(np.float32))
    for p in deliveries:
        _submit(db, agg, p, sender=p and decode(p).key.box)
    with db.read() as conn:
        return [(r[0], bytes(r[1])) for r in conn.execute("SELECT version, params FROM fl_rounds ORDER BY version")]


def test_replaying_updates_any_number_of_times_is_bit_identical(make_db):
    payloads = [_update(f"s/b{i:02d}", 1, i, samples=50 + i) for i in range(6)]
    clean = _run(make_db("a.db"), _agg(k=3), payloads)
    assert len(clean) == 3  # versions 1, 2, 3
    rng = np.random.default_rng(42)
    noisy = []
    for i, p in enumerate(payloads):  # every update 1-4 times, replays of earlier ones in between
        noisy += [p] * int(rng.integers(1, 5))
        noisy += [payloads[int(j)] for j in rng.integers(0, i + 1, size=2)]
    db = make_db("b.db")
    replayed = _run(db, _agg(k=3), noisy)
    assert replayed == clean  # same versions, same bytes
    with db.read() as conn:
        assert conn.execute("SELECT count(*) FROM fl_updates").fetchone()[0] == 6


def test_arrival_order_inside_a_buffer_does_not_change_a_bit(make_db):
    payloads = [_update(f"s/b{i}", 1, i, samples=10 * (i + 1)) for i in range(4)]
    a = _run(make_db("a.db"), _agg(k=4), payloads)
    b = _run(make_db("b.db"), _agg(k=4), [payloads[i] for i in (2, 0, 3, 1)])
    assert a == b and len(a) == 2


def test_same_key_with_different_bytes_is_a_conflict_not_a_change(make_db):
    db, agg = make_db(), _agg(k=5)
    _start(db, agg)
    key = UpdateKey("s/b", 1, new_update_id())
    rng = np.random.default_rng(0)
    first = encode(ModelUpdate(key, "learner", 5, np.ones(N, np.float32)), 32, rng)
    second = encode(ModelUpdate(key, "learner", 5, -np.ones(N, np.float32)), 32, rng)
    assert _submit(db, agg, first).status == "buffered"
    assert _submit(db, agg, second).status == "conflict"
    assert _submit(db, agg, first).status == "duplicate"


def test_an_inflated_sample_count_weighs_no_more_than_the_cap(make_db):
    """A box that claims a million samples counts as max_samples; its claim is still recorded."""
    db, agg = make_db(), _agg(k=2, max_samples=1000)
    _start(db, agg)
    honest, greedy = _update("s/honest", 1, 1, samples=1000), _update("s/greedy", 1, 2, samples=1_000_000)
    _submit(db, agg, honest)
    assert _submit(db, agg, greedy).new_version == 2
    with db.read() as conn:
        rows = dict(conn.execute("SELECT box, weight FROM fl_updates").fetchall())
        claimed = conn.execute("SELECT samples FROM fl_updates WHERE box = 's/greedy'").fetchone()[0]
    assert rows["s/honest"] == rows["s/greedy"] == 1000 and claimed == 1_000_000
    # So the new version is the plain mean of the two deltas, not the greedy box's delta.
    deltas = [decode(p).delta.astype(np.float64) for p in (honest, greedy)]
    assert np.allclose(_current(db, agg).params, (deltas[0] + deltas[1]) / 2, atol=1e-6)
    assert AggregatorSettings(max_samples=0).counted_samples(10**9) == 10**9  # 0: no cap
