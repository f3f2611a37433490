"""Store-and-forward figures on a real Mosquitto, real SQLite and real hub worker processes.

``python -m bench.sync [--quick]`` prints JSON (also written to bench/out/sync.json):

* ``drain``: a backlog of 100,000 realistic events (attempts and lesson progress, random UUIDs) drains end
  to end -- box outbox -> relay -> Mosquitto -> hub worker (own process) -> commit -> ack -> rows deleted;
  seconds and events/s, next to the enqueue rate of the LMS side.
* ``wire``: bytes the relay published vs the same events as plain JSON (target <= 40%).
* ``hub_ingest``: events/s stored by 1 and by 2 hub worker processes sharing the subscription.
* ``relay_rss``: peak resident memory of the relay process (``classroom-edge sync``) draining a backlog
  of 1,000,000 events (target <= 100 MB).
* ``downlink_cut``: a payload cut at 50% through a throttled link: bytes delivered / payload (<= 1.1).

``--quick`` uses 20,000 / 20,000 / 100,000 events and an 8 MiB payload (32 MiB otherwise).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from bench.common import emit

REPO = Path(__file__).resolve().parents[1]


def _load(name: str, rel: str):
    """Test helpers (the Mosquitto fixture, the TCP proxy) are shared with the bench, loaded by path."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / rel)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


def synthetic_events(n: int, seed: int = 7):
    """(type, payload) pairs shaped like the LMS's events: 70% attempts, 30% lesson progress."""
    rng = random.Random(seed)
    students = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(30)]
    for i in range(n):
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(1_700_000_000 + i)) + f".{rng.randint(0, 999):03d}Z"
        if rng.random() < 0.7:
            yield "attempt", {"attempt_uid": str(uuid.UUID(int=rng.getrandbits(128))), "student": rng.choice(students),
                              "course": "fractions-101", "exercise": f"ex-{rng.randint(1, 80):03d}",
                              "correct": rng.random() < 0.6, "score": round(rng.random(), 2), "confidence": 1.0,
                              "graded_by": "rule", "duration_ms": rng.randint(1500, 90000),
                              "answer": {"choice": rng.randint(0, 3)}, "created_at": ts}
        else:
            yield "lesson_progress", {"student": rng.choice(students), "course": "fractions-101",
                                      "lesson": f"l-{rng.randint(1, 20):02d}",
                                      "status": rng.choice(["started", "completed"]), "updated_at": ts}


def _enqueue(db, n: int) -> float:
    """Through ``outbox.enqueue`` (limits and all), 1,000 per transaction; returns events/s."""
    from appliance.sync import outbox

    events = list(synthetic_events(n))
    t0 = time.perf_counter()
    for i in range(0, n, 1000):
        part = events[i:i + 1000]
        db.write(lambda c, part=part: [outbox.enqueue(c, t, p) for t, p in part])
    return n / (time.perf_counter() - t0)


def _bulk_fill(db, n: int) -> None:
    """A huge backlog quickly: plain INSERTs (the triggers keep the totals right), no per-event checks."""
    def job(conn, part):
        rows = []
        for t, p in part:
            body = json.dumps(p, separators=(",", ":"), sort_keys=True)
            rows.append((str(uuid.uuid4()), t, 1, p.get("created_at") or p.get("updated_at"), 0, body, len(body)))
        conn.executemany("INSERT INTO outbox (event_id, type, schema, ts, priority, payload, size) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    gen = synthetic_events(n)
    while True:
        part = [e for _, e in zip(range(20_000), gen)]
        if not part:
            break
        db.write(lambda c, part=part: job(c, part))


def _plain_json_bytes(db) -> int:
    """The same events as a plain JSON array of objects (what a naive uplink would send)."""
    total, last = 2, 0
    while True:
        with db.read() as c:
            rows = c.execute("SELECT seq, event_id, type, schema, ts, priority, payload FROM outbox WHERE seq > ? "
                             "ORDER BY seq LIMIT 5000", (last,)).fetchall()
        if not rows:
            return total
        for r in rows:
            total += len(json.dumps({"event_id": r[1], "type": r[2], "schema": r[3], "ts": r[4], "priority": r[5],
                                     "payload": json.loads(r[6])}).encode()) + 2
        last = rows[-1][0]


def _outbox_count(db) -> int:
    with db.read() as c:
        return c.execute("SELECT events FROM sync_totals").fetchone()[0]


class Stack:
    """Mosquitto plus hub worker processes, in a scratch directory."""

    def __init__(self, root: Path):
        mb = _load("mqtt_broker", "tests/mqtt_broker.py")
        self.mb = mb
        self.root = root
        self.broker = mb.Broker(root / "broker", users={"box1": "box1-secret", "hub": "hub-secret"}).start()
        self.procs: list[subprocess.Popen] = []

    def hub_workers(self, name: str, n: int):
        sections = self.mb.hub_sections(self.root / name, self.broker)
        conf = self.mb.write_config(self.root / f"{name}.toml", sections)
        for i in range(n):
            with open(self.root / f"{name}-{i}.log", "wb") as log:
                self.procs.append(subprocess.Popen([sys.executable, "-m", "appliance", "--config", str(conf), "hub",
                                                    "--worker", str(i)], stdout=log, stderr=subprocess.STDOUT))
        self._probe()
        return self.mb.load(sections)

    def _probe(self, timeout: float = 30.0) -> None:
        """Until a hub worker acks a one-event batch: the shared subscription is in place."""
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        from appliance.sync import codec

        acked = threading.Event()
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"probe-{uuid.uuid4().hex[:6]}", protocol=mqtt.MQTTv5)
        c.username_pw_set("box1", "box1-secret")
        c.on_message = lambda *a: acked.set()
        c.connect(self.broker.host, self.broker.port)
        c.subscribe("ce/v1/bench/probe/down/ack", qos=1)
        c.loop_start()
        data = codec.encode_events([{"event_id": f"probe-{uuid.uuid4()}", "type": "probe", "schema": 1,
                                     "ts": "2024-01-01T00:00:00.000Z", "priority": 1, "payload": {}}])
        props = Properties(PacketTypes.PUBLISH)
        props.UserProperty = [("batch", "probe")]
        deadline = time.monotonic() + timeout
        try:
            while not acked.wait(0.5):
                if time.monotonic() > deadline:
                    raise RuntimeError("no hub worker answered the probe batch")
                c.publish("ce/v1/bench/probe/up/events", data, qos=1, properties=props)
        finally:
            c.loop_stop()
            c.disconnect()

    def stop_workers(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        self.procs.clear()

    def close(self) -> None:
        self.stop_workers()
        self.broker.stop()


def bench_drain(stack: Stack, n: int) -> dict:
    from appliance.services import Services
    from appliance.sync.service import SyncService

    hub_cfg = stack.hub_workers("hub-drain", 1)
    cfg = stack.mb.load(stack.mb.box_sections(stack.root / "box-drain", stack.broker))
    services = Services.open(cfg)
    try:
        enqueue_rate = _enqueue(services.db, n)
        plain = _plain_json_bytes(services.db)
        relay = SyncService(cfg, services.db)
        t0 = time.perf_counter()
        relay.start()
        while _outbox_count(services.db):
            time.sleep(0.02)
        drain_s = time.perf_counter() - t0
        st = relay.status_dict()
        relay.stop(15)
    finally:
        services.close()
    stack.stop_workers()
    from appliance.hub.store import HubStore

    store = HubStore(hub_cfg).open()
    stored = store.query("SELECT count(*) FROM hub_events WHERE type != 'probe'")[0][0]
    store.close()
    return {
        "drain": {"events": n, "stored_at_hub": stored, "seconds": round(drain_s, 2),
                  "events_per_s": round(n / drain_s), "target_s": 10.0 * n / 100_000,
                  "batches": st["batches_sent"], "resends": st["resends"],
                  "lms_enqueue_events_per_s": round(enqueue_rate)},
        "wire": {"bytes_sent": st["bytes_sent"], "compact_json_bytes": st["json_bytes_sent"],
                 "plain_json_bytes": plain, "ratio_vs_plain_json": round(st["bytes_sent"] / plain, 3),
                 "bytes_per_event": round(st["bytes_sent"] / n, 1), "target_ratio": 0.40},
    }


def bench_ingest(stack: Stack, n: int, workers: int) -> dict:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    from appliance.hub.store import HubStore
    from appliance.sync import codec

    hub_cfg = stack.hub_workers(f"hub-ingest-{workers}", workers)
    events = [{"event_id": str(uuid.uuid4()), "type": t, "schema": 1, "ts": "2024-01-01T00:00:00.000Z",
               "priority": 0, "payload": p} for t, p in synthetic_events(n, seed=workers)]
    batches = [codec.encode_events(events[i:i + 500]) for i in range(0, n, 500)]
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{workers}", protocol=mqtt.MQTTv5)
    c.username_pw_set("box1", "box1-secret")
    c.max_inflight_messages_set(20)
    c.connect(stack.broker.host, stack.broker.port)
    c.loop_start()
    store = HubStore(hub_cfg).open()
    base = store.event_count()
    t0 = time.perf_counter()
    for i, data in enumerate(batches):
        props = Properties(PacketTypes.PUBLISH)
        props.UserProperty = [("batch", f"bench-{workers}-{i}")]
        c.publish(f"ce/v1/bench/box{i % 8}/up/events", data, qos=1, properties=props)
    while store.event_count() - base < n:
        time.sleep(0.05)
    seconds = time.perf_counter() - t0
    store.close()
    c.loop_stop()
    c.disconnect()
    stack.stop_workers()
    return {"workers": workers, "events": n, "seconds": round(seconds, 2), "events_per_s": round(n / seconds),
            "database": "sqlite"}


def bench_rss(stack: Stack, n: int) -> dict:
    from appliance.services import Services

    stack.hub_workers("hub-rss", 2)
    sections = stack.mb.box_sections(stack.root / "box-rss", stack.broker)
    services = Services.open(stack.mb.load(sections))
    try:
        t0 = time.perf_counter()
        _bulk_fill(services.db, n)
        fill_s = time.perf_counter() - t0
        db_mb = services.db.size_bytes() / 2**20
        conf = stack.mb.write_config(stack.root / "box-rss.toml", sections)
        with open(stack.root / "relay-rss.log", "wb") as log:
            relay = subprocess.Popen([sys.executable, "-m", "appliance", "--config", str(conf), "sync"],
                                     stdout=log, stderr=subprocess.STDOUT)
        peak, samples, t0 = 0.0, 0, time.perf_counter()
        try:
            while _outbox_count(services.db) and time.perf_counter() - t0 < 600:
                status = Path(f"/proc/{relay.pid}/status").read_text()
                for line in status.splitlines():
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]) / 1024)
                samples += 1
                time.sleep(0.2)
            drain_s = time.perf_counter() - t0
            left = _outbox_count(services.db)
        finally:
            relay.terminate()
            relay.wait(30)
    finally:
        services.close()
    stack.stop_workers()
    return {"backlog_events": n, "backlog_db_mb": round(db_mb, 1), "fill_s": round(fill_s, 1),
            "relay_peak_rss_mb": round(peak, 1), "target_mb": 100, "drained_events": n - left,
            "drain_s": round(drain_s, 1), "events_per_s": round((n - left) / drain_s), "rss_samples": samples}


def bench_downlink_cut(stack: Stack, size: int) -> dict:
    from appliance.hub.publisher import Publisher, generate_key
    from appliance.services import Services
    from appliance.sync.service import SyncService

    proxy_mod = _load("tcp_proxy", "tests/sync/tcp_proxy.py")
    key_file = stack.root / "signing.key"
    pub = generate_key(key_file)
    proxy = proxy_mod.TcpProxy(stack.broker.port, rate=8_000_000)
    got = []

    class Keep:
        def on_model(self, *a):
            got.append(a)

        def on_content(self, *a):
            got.append(a)

    sections = stack.mb.box_sections(stack.root / "box-dl", stack.broker, trusted_keys=[pub])
    sections["sync"]["broker_url"] = proxy.url
    cfg = stack.mb.load(sections)
    services = Services.open(cfg)
    relay = SyncService(cfg, services.db, Keep())
    try:
        relay.start()
        while relay.relay.state != "online":
            time.sleep(0.05)
        payload = stack.root / "payload.bin"
        payload.write_bytes(os.urandom(size))
        hub_cfg = stack.mb.load(stack.mb.hub_sections(stack.root / "hub-pub", stack.broker,
                                                      signing_key_file=str(key_file)))
        with Publisher(hub_cfg) as p:
            m = p.publish("content", "bench-course", "1", payload)
        start = proxy.bytes_down
        dl = relay.relay.downlink
        while True:
            t = dl.transfers.get(("content", "bench-course"))
            if t is not None and len(t.missing) <= len(m.chunks) // 2:
                break
            time.sleep(0.005)
        proxy.cut()
        t0 = time.perf_counter()
        while not got:
            time.sleep(0.05)
        resume_s = time.perf_counter() - t0
        return {"payload_bytes": size, "chunks": len(m.chunks), "cut_at_fraction": 0.5,
                "delivered_over_payload": round(dl.stats["chunk_bytes"] / size, 3),
                "wire_over_payload": round((proxy.bytes_down - start) / size, 3),
                "finish_after_cut_s": round(resume_s, 2), "target": 1.1}
    finally:
        relay.stop(15)
        services.close()
        proxy.close()


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(prog="python -m bench.sync")
    p.add_argument("--quick", action="store_true", help="smaller numbers (smoke run)")
    p.add_argument("--only", default="drain,ingest,rss,downlink", help="comma-separated parts to run")
    args = p.parse_args(argv)
    parts = set(args.only.split(","))
    n_drain, n_ingest, n_rss = (20_000, 20_000, 100_000) if args.quick else (100_000, 100_000, 1_000_000)
    dl_size = (8 if args.quick else 32) * 2**20
    mb = _load("mqtt_broker", "tests/mqtt_broker.py")
    root = mb.broker_dir("ce-bench-sync-")
    stack = Stack(root)
    try:
        result = {"quick": args.quick, "cpus": os.cpu_count()}
        if "drain" in parts:
            result.update(bench_drain(stack, n_drain))
        if "ingest" in parts:
            result["hub_ingest"] = [bench_ingest(stack, n_ingest, w) for w in (1, 2)]
        if "rss" in parts:
            result["relay_rss"] = bench_rss(stack, n_rss)
        if "downlink" in parts:
            result["downlink_cut"] = bench_downlink_cut(stack, dl_size)
    finally:
        stack.close()
        shutil.rmtree(root, ignore_errors=True)
    return emit("sync", result)


if __name__ == "__main__":
    main()
