"""The hub's database: idempotent by event id, a batch log, federated updates assembled and verified."""
import hashlib
import os

import pytest
from mqtt_broker import load
from pg_server import fresh_database

from appliance.errors import ConfigError
from appliance.hub.store import BatchIn, HubStore


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    """The same tests against both backends (the SQL is meant to be portable)."""
    hub = {}
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
        hub["database_url"] = fresh_database(url, f"hub_{request.node.name[5:40].lower().replace('[', '_')}"
                                                  .rstrip("]").replace("-", "_"))
    s = HubStore(load({"storage": {"data_dir": str(tmp_path)}, "hub": hub})).open()
    assert s.kind == request.param
    yield s
    s.close()


def _events(ids):
    return [{"event_id": i, "type": "attempt", "schema": 1, "ts": "2024-01-01T00:00:00.000Z", "priority": 0,
             "payload": {"n": i}} for i in ids]


def test_replaying_a_batch_any_number_of_times_stores_it_once(store):
    b = BatchIn("s1", "d1", "nonce-1-3", _events(["a", "b", "c"]))
    assert store.store_batches([b]) == [3]
    assert store.store_batches([b, b]) == [0, 0]
    assert store.store_batches([BatchIn("s1", "d1", "nonce-2-4", _events(["b", "c", "d"]))]) == [1]
    assert store.event_count() == 4
    assert store.query("SELECT deliveries, new_events FROM hub_batches WHERE batch_id = 'nonce-1-3'") == [(3, 3)]
    assert store.query("SELECT payload FROM hub_events WHERE event_id = 'd'") == [('{"n":"d"}',)]


def test_a_failing_group_stores_nothing(store):
    bad = BatchIn("s1", "d1", "x", [{"event_id": "z"}])  # missing fields: KeyError inside the transaction
    with pytest.raises(KeyError):
        store.store_batches([BatchIn("s1", "d1", "ok", _events(["e"])), bad])
    assert store.event_count() == 0


def test_federated_update_chunks_are_assembled_and_verified(store):
    data = os.urandom(600_000)
    sha = hashlib.sha256(data).hexdigest()
    chunk = 256 * 1024
    props = {"event_id": "u1", "type": "fl_update", "chunks": "3", "size": str(len(data)), "sha256": sha,
             "meta": '{"round": 2}'}
    assert not store.store_fl_chunk("s1", "d1", {**props, "idx": "2"}, data[2 * chunk:], 1 << 30)
    assert not store.store_fl_chunk("s1", "d1", {**props, "idx": "0"}, data[:chunk], 1 << 30)
    assert not store.store_fl_chunk("s1", "d1", {**props, "idx": "0"}, data[:chunk], 1 << 30)  # repeat
    assert store.store_fl_chunk("s1", "d1", {**props, "idx": "1"}, data[chunk:2 * chunk], 1 << 30)
    (row,) = store.query("SELECT site, device, meta, size, data FROM hub_fl_updates WHERE event_id = 'u1'")
    assert row[:4] == ("s1", "d1", '{"round": 2}', len(data)) and bytes(row[4]) == data
    assert store.store_fl_chunk("s1", "d1", {**props, "idx": "1"}, data[chunk:2 * chunk], 1 << 30)  # re-ack
    bad = {**props, "event_id": "u2", "sha256": "0" * 64}
    for i in range(3):
        piece = data[i * chunk:(i + 1) * chunk]
        if i < 2:
            assert not store.store_fl_chunk("s1", "d1", {**bad, "idx": str(i)}, piece, 1 << 30)
        else:
            with pytest.raises(ValueError, match="sha256"):
                store.store_fl_chunk("s1", "d1", {**bad, "idx": str(i)}, piece, 1 << 30)
    assert store.query("SELECT count(*) FROM hub_fl_chunks")[0][0] == 0
    with pytest.raises(ValueError, match="bad chunk numbers"):
        store.store_fl_chunk("s1", "d1", {**props, "event_id": "u3", "idx": "7"}, b"x", 1 << 30)


def test_only_postgresql_urls_are_accepted(tmp_path):
    with pytest.raises(ConfigError, match="postgresql"):
        HubStore(load({"storage": {"data_dir": str(tmp_path)}, "hub": {"database_url": "mysql://x"}}))
