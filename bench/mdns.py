"""How fast students' devices see the box, follow it, and see it go (mDNS, in test namespaces only).

Each round builds a throw-away network (``tests/e2e/netns.py``: box, student, a switch), runs the real
``DiscoveryService`` in the box namespace and a python-zeroconf browser in the student namespace, and
times, from the student's side:

- ``discover_s``: advertiser started (web already up) -> student sees both services;
- ``readdress_s``: box address replaced -> student resolves ``room12.local`` to the new address only;
- ``clash_s``: two boxes that both claimed ``room12`` meet -> both found under distinct names;
- ``withdraw_s``: box stopped -> student's list is empty (goodbye packets, not TTL expiry).

Needs root (network namespaces); prints ``{"skipped": reason}`` otherwise.
``python -m bench.mdns [--quick] [--rounds N]``.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.common import emit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))
import netns

STUDENT = "10.77.0.2"


def _until(predicate, timeout: float) -> float:
    """Seconds until ``predicate()`` holds (polled every 50 ms); raises if it never does."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if predicate():
            return time.monotonic() - t0
        time.sleep(0.05)
    raise RuntimeError(f"not reached within {timeout} s")


def _seen(student) -> set[str]:
    return {s["name"] for s in student.call("mdns_ops:student_services")}


def _box(lab, ns, data: Path, i: int, **kw):
    agent = lab.agent(ns)
    agent.call("serve_http", port=8080, body=f"box {i}")
    agent.call("mdns_ops:advertise", data_dir=str(data / f"box{i}"), hostname="room12", interfaces=["eth0"],
               port=8080, device=f"box-{i}", poll_interval_s=0.5, **kw)
    return agent


def one_round(data: Path) -> dict:
    out = {}
    with netns.Lab() as lab:
        sw = lab.switch()
        ns1, ns2, stu = lab.namespace("box1"), lab.namespace("box2"), lab.namespace("student")
        ns1.set_sysctl("net.ipv4.conf.all.promote_secondaries", "1")
        sw.plug(ns1, "eth0", "10.77.0.11/24")
        port2 = sw.plug(ns2, "eth0", "10.77.0.12/24")
        sw.plug(stu, "eth0", f"{STUDENT}/24")
        sw.set_port(port2, up=False)
        student = lab.agent(stu)
        student.call("mdns_ops:student_start", interfaces_ips=[STUDENT])

        t0 = time.monotonic()
        box1 = _box(lab, ns1, data, 1)
        _until(lambda: len(_seen(student)) == 2, 30)
        out["discover_s"] = time.monotonic() - t0

        ns1.add_address("eth0", "10.77.0.21/24")
        ns1.del_address("eth0", "10.77.0.11/24")
        out["readdress_s"] = _until(
            lambda: student.call("mdns_ops:student_resolve", host="room12.local.") == ["10.77.0.21"], 30)

        box2 = _box(lab, ns2, data, 2)
        assert box2.call("mdns_ops:box_wait_ready", wait_s=30, timeout=40)["ready"]
        t0 = time.monotonic()
        sw.set_port(port2, up=True)
        _until(lambda: len(_seen(student)) == 4, 60)
        out["clash_s"] = time.monotonic() - t0

        # After the clash box 1 is room12 or room12-2: wait for exactly its instance names to go.
        prefix = box1.call("mdns_ops:box_status")["label"] + "."
        t0 = time.monotonic()
        box1.call("mdns_ops:box_stop", wait_s=15, timeout=30)
        _until(lambda: not any(n.startswith(prefix) for n in _seen(student)), 30)
        out["withdraw_s"] = time.monotonic() - t0
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(prog="bench.mdns")
    ap.add_argument("--quick", action="store_true", help="one round")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)
    reason = netns.unavailable_reason()
    if reason:
        return emit("mdns", {"skipped": reason})
    rounds = 1 if args.quick else max(1, args.rounds)
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-mdns-") as tmp:
        for i in range(rounds):
            runs.append(one_round(Path(tmp) / f"r{i}"))
    summary = {
        key: {"median": round(statistics.median(r[key] for r in runs), 3),
              "min": round(min(r[key] for r in runs), 3), "max": round(max(r[key] for r in runs), 3)}
        for key in runs[0]
    }
    return emit("mdns", {"rounds": rounds, "poll_interval_s": 0.5, "seconds": summary})


if __name__ == "__main__":
    main()
