import pytest
from mqtt_broker import box_sections, load

from appliance.errors import BadRequest, Unavailable
from appliance.services import Services
from appliance.sync import limits, outbox


@pytest.fixture
def db(tmp_path):
    s = Services.open(load(box_sections(tmp_path / "box", None)))
    yield s.db
    s.close()


def _set_limits(db, cap, min_free=0.0):
    db.write(lambda c: limits.configure(c, cap, min_free))


def _status(db):
    with db.read() as c:
        return limits.status(c)


def test_event_and_fact_commit_together_or_not_at_all(db):
    def fact_then_fail(conn):
        conn.execute("INSERT INTO kv (key, value) VALUES ('fact', '1')")
        outbox.enqueue(conn, "attempt", {"x": 1})
        raise RuntimeError("the request failed after enqueue")

    with pytest.raises(RuntimeError):
        db.write(fact_then_fail)
    with db.read() as c:
        assert c.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0
        assert c.execute("SELECT count(*) FROM kv").fetchone()[0] == 0
    assert _status(db)["events"] == 0


def test_totals_follow_inserts_and_deletes(db):
    ids = db.write(lambda c: [outbox.enqueue(c, "attempt", {"i": i}) for i in range(10)])
    db.write(lambda c: outbox.enqueue(c, "telemetry", {"cpu": 3}, priority=outbox.TELEMETRY))
    st = _status(db)
    with db.read() as c:
        total = c.execute("SELECT sum(size), count(*) FROM outbox").fetchone()
        learner = c.execute("SELECT sum(size) FROM outbox WHERE priority = 0").fetchone()[0]
    assert (st["bytes"], st["events"], st["learner_bytes"]) == (total[0], 11, learner)
    db.write(lambda c: outbox.delete_range(c, 1, 5))
    assert _status(db)["events"] == 6
    assert len(set(ids)) == 10


def test_an_oversized_event_is_refused(db):
    with pytest.raises(BadRequest, match="at most"):
        db.write(lambda c: outbox.enqueue(c, "attempt", {"blob": "x" * (outbox.MAX_EVENT_BYTES + 1)}))


def test_over_the_cap_telemetry_is_refused_and_evicted_but_learner_events_are_kept(db):
    _set_limits(db, cap=4000)
    tel = db.write(lambda c: [outbox.enqueue(c, "cpu", {"pad": "t" * 150}, priority=outbox.TELEMETRY)
                              for _ in range(30)])
    accepted = [t for t in tel if t]
    assert 0 < len(accepted) < 30, "telemetry must be refused once the cap is reached"
    assert _status(db)["refused_telemetry"] == 30 - len(accepted)
    learner = db.write(lambda c: [outbox.enqueue(c, "attempt", {"pad": "l" * 150}) for _ in range(40)])
    assert all(learner), "learner events are never refused for the cap"
    with db.read() as c:
        kept = {r[0] for r in c.execute("SELECT event_id FROM outbox WHERE priority = 0")}
        tel_left = c.execute("SELECT count(*) FROM outbox WHERE priority = 1").fetchone()[0]
    assert kept == set(learner)
    assert tel_left == 0, "telemetry is evicted to make room for learner events"
    st = _status(db)
    assert st["evicted_telemetry"] == len(accepted)
    assert st["state"] == "alarm" and "learner events are kept" in st["message"]


def test_disk_reserve_refuses_the_learner_fact_and_event_together(db):
    _set_limits(db, cap=10**9, min_free=100.0)   # no disk can have more than 100% free

    def fact(conn):
        conn.execute("INSERT INTO kv (key, value) VALUES ('fact', '1')")
        outbox.enqueue(conn, "attempt", {"x": 1})

    with pytest.raises(Unavailable, match="disk is almost full"):
        db.write(fact)
    assert db.write(lambda c: outbox.enqueue(c, "cpu", {}, priority=outbox.TELEMETRY)) is None
    with db.read() as c:
        assert c.execute("SELECT count(*) FROM kv").fetchone()[0] == 0
    st = _status(db)
    assert st["state"] == "alarm" and "disk" in st["message"]


def test_blobs_are_chunked_counted_and_refused_over_the_cap(db):
    data = bytes(range(256)) * 4096  # 1 MiB
    eid = db.write(lambda c: outbox.enqueue_blob(c, "fl_update", data, {"round": 3}))
    with db.read() as c:
        blob = outbox.next_blob(c)
        chunks = [outbox.blob_chunk(c, blob.id, i) for i in range(blob.chunks)]
    assert blob.event_id == eid and blob.chunks == 4 and b"".join(chunks) == data
    assert _status(db)["blob_bytes"] == len(data)
    _set_limits(db, cap=len(data) + 10)
    with pytest.raises(Unavailable, match="outbox is full"):
        db.write(lambda c: outbox.enqueue_blob(c, "fl_update", data))
    db.write(lambda c: outbox.delete_blob(c, eid))
    with db.read() as c:
        assert c.execute("SELECT count(*) FROM sync_blob_chunks").fetchone()[0] == 0
    assert _status(db)["blob_bytes"] == 0


def test_read_batch_respects_event_and_byte_limits(db):
    db.write(lambda c: [outbox.enqueue(c, "attempt", {"pad": "x" * 900}) for _ in range(50)])
    with db.read() as c:
        assert len(outbox.read_batch(c, 0, 20, 1 << 20)) == 20
        by_bytes = outbox.read_batch(c, 0, 500, 10_000)
        assert 1 <= len(by_bytes) < 50 and sum(r.size for r in by_bytes) <= 10_000
        after = outbox.read_batch(c, by_bytes[-1].seq, 500, 1 << 20)
        assert after[0].seq == by_bytes[-1].seq + 1


def test_acknowledged_rows_count_once_with_the_bytes_they_took_on_the_uplink(db):
    from appliance.sync.uplink import delete_acknowledged

    db.write(lambda c: [outbox.enqueue(c, "attempt", {"i": i}) for i in range(10)])
    eid = db.write(lambda c: outbox.enqueue_blob(c, "fl_update", b"u" * 5000))
    with db.read() as c:
        seqs = [r[0] for r in c.execute("SELECT seq FROM outbox ORDER BY seq")]
    lo, hi = seqs[0], seqs[-1]
    db.write(lambda c: delete_acknowledged(c, [(lo, lo + 3, 700), (lo + 4, hi, 900)], [(eid, 5000)]))
    # The same acks again (a resent batch acknowledged twice): nothing more is counted.
    db.write(lambda c: delete_acknowledged(c, [(lo, lo + 3, 700)], [(eid, 5000)]))
    with db.read() as c:
        done = outbox.delivered(c)
    assert done["events"] == 11 and done["bytes"] == 700 + 900 + 5000 and done["last_at"]
