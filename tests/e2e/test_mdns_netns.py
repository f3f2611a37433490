"""mDNS end to end, only inside network namespaces made here: a box, a student device, a switch.

Each test builds its own network (``netns.Lab``), runs the real ``DiscoveryService`` in the box
namespace and a python-zeroconf browser in the student namespace, and tears everything down after.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time

import netns
import pytest
from netns import PYTHON, REPO, wait_for

pytestmark = [pytest.mark.root, pytest.mark.slow]


@pytest.fixture
def netns_lab():
    yield from netns.lab_for_test()

BOX_IP, BOX_IP2, STUDENT_IP = "10.77.0.1", "10.77.0.9", "10.77.0.2"
PAGE = "<h1>Classroom Edge LMS page 7f3a</h1>"


def _box_and_student(lab):
    box, student = lab.namespace("box"), lab.namespace("student")
    lab.link(box, "eth0", student, "eth0", a_cidr=f"{BOX_IP}/24", b_cidr=f"{STUDENT_IP}/24")
    return box, student


def _names_seen(agent) -> dict[str, dict]:
    return {s["name"]: s for s in agent.call("mdns_ops:student_services")}


def test_student_finds_box_by_service_and_name_then_opens_the_lms(netns_lab, tmp_path):
    box_ns, student_ns = _box_and_student(netns_lab)
    box, student = netns_lab.agent(box_ns), netns_lab.agent(student_ns)
    student.call("mdns_ops:student_start", interfaces_ips=[STUDENT_IP])

    # The advertiser starts before the web service: it must not announce a box nobody can open.
    box.call("mdns_ops:advertise", data_dir=str(tmp_path / "box"), hostname="room12", interfaces=["eth0"],
             port=8080, room="Room 12", site="school-a", device="box-a")
    assert box.call("mdns_ops:box_wait_ready", wait_s=2.0, timeout=10)["ready"] is False
    assert box.call("mdns_ops:box_status")["state"] == "waiting-for-web"
    assert _names_seen(student) == {}
    status_file = json.loads((tmp_path / "box" / "mdns-status.json").read_text())
    assert status_file["state"] == "waiting-for-web"

    box.call("serve_http", port=8080, body=PAGE)
    ready = box.call("mdns_ops:box_wait_ready", wait_s=20, timeout=30)
    assert ready["ready"], ready
    assert ready["status"]["label"] == "room12" and ready["status"]["hostname"] == "room12.local"
    assert ready["status"]["addresses"] == [BOX_IP]

    seen = wait_for(lambda: (s := _names_seen(student)) and len(s) == 2 and s, 15, what="both services")
    http = seen["room12._http._tcp.local."]
    assert set(seen) == {"room12._http._tcp.local.", "room12._classroom-edge._tcp.local."}
    assert http["server"] == "room12.local." and http["port"] == 8080 and http["addresses"] == [BOX_IP]
    assert http["txt"] == {"id": "box-a", "ver": "0.1.0", "room": "Room 12", "site": "school-a",
                           "path": "/", "api": "/v2"}
    assert seen["room12._classroom-edge._tcp.local."]["txt"] == http["txt"]

    assert student.call("mdns_ops:student_resolve", host="room12.local.") == [BOX_IP]
    page = student.call("mdns_ops:student_fetch", host="room12.local.", port=8080, path=http["txt"]["path"])
    assert page == {"status": 200, "body": PAGE, "address": BOX_IP}

    status_file = json.loads((tmp_path / "box" / "mdns-status.json").read_text())
    assert status_file["state"] == "advertising" and status_file["hostname"] == "room12.local"


def _advertising_box(lab, tmp_path):
    box_ns, student_ns = _box_and_student(lab)
    # As systemd's sysctl defaults do on a Debian box: removing the first address of a subnet keeps
    # the others (without this the kernel drops every address of that subnet with it).
    box_ns.set_sysctl("net.ipv4.conf.all.promote_secondaries", "1")
    box_ns.set_sysctl("net.ipv4.conf.eth0.promote_secondaries", "1")
    box, student = lab.agent(box_ns), lab.agent(student_ns)
    box.call("serve_http", port=8080, body=PAGE)
    student.call("mdns_ops:student_start", interfaces_ips=[STUDENT_IP])
    box.call("mdns_ops:advertise", data_dir=str(tmp_path / "box"), hostname="room12", interfaces=["eth0"],
             port=8080, poll_interval_s=0.5)
    assert box.call("mdns_ops:box_wait_ready", wait_s=20, timeout=30)["ready"]
    wait_for(lambda: student.call("mdns_ops:student_resolve", host="room12.local.") == [BOX_IP], 15,
             what="first address")
    return box_ns, box, student


def _student_follows(box, student, address):
    wait_for(lambda: box.call("mdns_ops:box_status")["addresses"] == [address], 15, what="box re-announce")
    wait_for(lambda: student.call("mdns_ops:student_resolve", host="room12.local.") == [address], 15,
             what="student resolving the new address only")
    wait_for(lambda: all(s["addresses"] == [address] for s in _names_seen(student).values()), 15,
             what="services at the new address")
    page = student.call("mdns_ops:student_fetch", host="room12.local.", port=8080)
    assert page == {"status": 200, "body": PAGE, "address": address}
    status = box.call("mdns_ops:box_status")
    assert status["state"] == "advertising" and status["label"] == "room12"


def test_address_change_is_followed_by_the_student(netns_lab, tmp_path):
    box_ns, box, student = _advertising_box(netns_lab, tmp_path)
    # A DHCP renewal gives the box another address, then takes the old one away.
    box_ns.add_address("eth0", f"{BOX_IP2}/24")
    box_ns.del_address("eth0", f"{BOX_IP}/24")
    _student_follows(box, student, BOX_IP2)


def test_box_that_loses_its_address_comes_back_with_the_new_one(netns_lab, tmp_path):
    box_ns, box, student = _advertising_box(netns_lab, tmp_path)
    box_ns.del_address("eth0", f"{BOX_IP}/24")
    wait_for(lambda: box.call("mdns_ops:box_status")["state"] == "waiting-for-network", 15,
             what="box noticing it has no address")
    assert box.call("mdns_ops:box_status")["label"] is None
    box_ns.add_address("eth0", f"{BOX_IP2}/24")
    _student_follows(box, student, BOX_IP2)


def _school(lab, boxes: int, with_switch: bool = False):
    """``boxes`` box namespaces and one student on a switch: 10.77.0.1x for boxes, .2 for the student."""
    sw = lab.switch()
    box_nss, ports = [], []
    for i in range(boxes):
        ns = lab.namespace(f"box{i + 1}")
        ports.append(sw.plug(ns, "eth0", f"10.77.0.{11 + i}/24"))
        box_nss.append(ns)
    student = lab.namespace("student")
    sw.plug(student, "eth0", f"{STUDENT_IP}/24")
    return (box_nss, student, sw, ports) if with_switch else (box_nss, student)


def _start_box(lab, ns, tmp_path, i, wait=True):
    agent = lab.agent(ns)
    agent.call("serve_http", port=8080, body=f"<p>box {i}</p>")
    agent.call("mdns_ops:advertise", data_dir=str(tmp_path / f"box{i}"), hostname="room12",
               interfaces=["eth0"], port=8080, room=f"Room {i}", device=f"box-{i}", poll_interval_s=0.5)
    if wait:
        assert agent.call("mdns_ops:box_wait_ready", wait_s=30, timeout=40)["ready"]
    return agent


def _assert_both_reachable(student, names_seen):
    for host, body in names_seen.items():
        page = student.call("mdns_ops:student_fetch", host=f"{host}.local.", port=8080)
        assert page["status"] == 200 and page["body"] == body, (host, page)


def test_two_boxes_with_one_name_end_up_under_distinct_names(netns_lab, tmp_path):
    (ns1, ns2), student_ns = _school(netns_lab, 2)
    student = netns_lab.agent(student_ns)
    student.call("mdns_ops:student_start", interfaces_ips=[STUDENT_IP])
    box1 = _start_box(netns_lab, ns1, tmp_path, 1)
    box2 = _start_box(netns_lab, ns2, tmp_path, 2)

    s1, s2 = box1.call("mdns_ops:box_status"), box2.call("mdns_ops:box_status")
    assert s1["label"] == "room12" and s1["renamed"] is False
    assert s2["label"] == "room12-2" and s2["renamed"] is True and s2["hostname"] == "room12-2.local"

    want = {"room12._http._tcp.local.", "room12-2._http._tcp.local.",
            "room12._classroom-edge._tcp.local.", "room12-2._classroom-edge._tcp.local."}
    seen = wait_for(lambda: (s := _names_seen(student)) and set(s) == want and s, 20, what="four services")
    assert seen["room12._http._tcp.local."]["addresses"] == ["10.77.0.11"]
    assert seen["room12-2._http._tcp.local."]["addresses"] == ["10.77.0.12"]
    _assert_both_reachable(student, {"room12": "<p>box 1</p>", "room12-2": "<p>box 2</p>"})

    # Each box lists the other one for its admin page.
    peers1 = wait_for(lambda: box1.call("mdns_ops:box_status")["peers"], 15, what="box1 peers")
    peers2 = wait_for(lambda: box2.call("mdns_ops:box_status")["peers"], 15, what="box2 peers")
    assert [(p["name"], p["box_id"], p["room"], p["addresses"]) for p in peers1] == [
        ("room12-2", "box-2", "Room 2", ["10.77.0.12"])]
    assert [(p["name"], p["box_id"], p["url"]) for p in peers2] == [
        ("room12", "box-1", "http://room12.local:8080/")]


def test_boxes_switched_on_together_settle_on_distinct_names(netns_lab, tmp_path):
    # Both probe into silence at the same moment, so only the clash watch after registration can
    # separate them; the box with the lower address gives way.
    (ns1, ns2), student_ns = _school(netns_lab, 2)
    student = netns_lab.agent(student_ns)
    student.call("mdns_ops:student_start", interfaces_ips=[STUDENT_IP])
    boxes = [netns_lab.agent(ns) for ns in (ns1, ns2)]
    for i, agent in enumerate(boxes, 1):
        agent.call("serve_http", port=8080, body=f"<p>box {i}</p>")
    for i, agent in enumerate(boxes, 1):
        agent.call("mdns_ops:advertise", data_dir=str(tmp_path / f"box{i}"), hostname="room12",
                   interfaces=["eth0"], port=8080, device=f"box-{i}", poll_interval_s=0.5)

    def distinct():
        names_ = [a.call("mdns_ops:box_status")["label"] for a in boxes]
        return None in names_ or len(set(names_)) != 2 or names_

    names_ = wait_for(lambda: (n := distinct()) is not True and n, 40, what="distinct names")
    assert sorted(names_) == ["room12", "room12-2"]
    want = {f"{n}.{t}" for n in names_ for t in ("_http._tcp.local.", "_classroom-edge._tcp.local.")}
    wait_for(lambda: set(_names_seen(student)) == want, 30, what="student seeing both boxes")
    _assert_both_reachable(student, {n: f"<p>box {i}</p>" for i, n in enumerate(names_, 1)})


def test_boxes_that_could_not_hear_each_other_sort_out_the_clash_later(netns_lab, tmp_path):
    # Both boxes claim room12 while box 2's cable is out; once plugged in, the first query that makes
    # both answer shows each the other's claim. Box 1 has the lower address, so it is the one to move.
    (ns1, ns2), student_ns, sw, ports = _school(netns_lab, 2, with_switch=True)
    sw.set_port(ports[1], up=False)
    box1 = _start_box(netns_lab, ns1, tmp_path, 1)
    box2 = _start_box(netns_lab, ns2, tmp_path, 2)
    assert box1.call("mdns_ops:box_status")["label"] == box2.call("mdns_ops:box_status")["label"] == "room12"

    sw.set_port(ports[1], up=True)
    student = netns_lab.agent(student_ns)  # a student device joins and asks who is there
    student.call("mdns_ops:student_start", interfaces_ips=[STUDENT_IP])

    wait_for(lambda: box1.call("mdns_ops:box_status")["label"] == "room12-2", 30, what="box 1 moving")
    assert box2.call("mdns_ops:box_status")["label"] == "room12"
    want = {f"{n}.{t}" for n in ("room12", "room12-2") for t in ("_http._tcp.local.", "_classroom-edge._tcp.local.")}
    seen = wait_for(lambda: (s := _names_seen(student)) and set(s) == want and s, 30, what="both boxes")
    assert seen["room12._http._tcp.local."]["addresses"] == ["10.77.0.12"]
    assert seen["room12-2._http._tcp.local."]["addresses"] == ["10.77.0.11"]
    wait_for(lambda: student.call("mdns_ops:student_resolve", host="room12.local.") == ["10.77.0.12"], 15,
             what="room12.local pointing at box 2 only")
    _assert_both_reachable(student, {"room12": "<p>box 2</p>", "room12-2": "<p>box 1</p>"})
    status1 = box1.call("mdns_ops:box_status")
    assert status1["renamed"] is True and status1["hostname"] == "room12-2.local"


def test_two_networks_joined_later_are_sorted_out_by_the_periodic_self_check(netns_lab, tmp_path):
    # Two classrooms on their own switches, then someone cables the switches together: no box sees a
    # link change and nobody asks, so only the boxes' own periodic query for their name finds the clash.
    sw1, sw2 = netns_lab.switch(), netns_lab.switch()
    ns1, ns2 = netns_lab.namespace("box1"), netns_lab.namespace("box2")
    sw1.plug(ns1, "eth0", "10.77.0.11/24")
    sw2.plug(ns2, "eth0", "10.77.0.12/24")
    boxes = []
    for i, ns in enumerate((ns1, ns2), 1):
        agent = netns_lab.agent(ns)
        agent.call("serve_http", port=8080, body=f"<p>box {i}</p>")
        agent.call("mdns_ops:advertise", data_dir=str(tmp_path / f"box{i}"), hostname="room12",
                   interfaces=["eth0"], port=8080, device=f"box-{i}", poll_interval_s=0.5, recheck_s=2.0)
        assert agent.call("mdns_ops:box_wait_ready", wait_s=20, timeout=30)["ready"]
        boxes.append(agent)
    assert [b.call("mdns_ops:box_status")["label"] for b in boxes] == ["room12", "room12"]

    netns_lab.link(sw1.ns, "uplink", sw2.ns, "uplink")
    sw1.ns.ip("link", "set", "uplink", "master", "br0")
    sw2.ns.ip("link", "set", "uplink", "master", "br0")

    wait_for(lambda: boxes[0].call("mdns_ops:box_status")["label"] == "room12-2", 30, what="box 1 moving")
    assert boxes[1].call("mdns_ops:box_status")["label"] == "room12"
    student_ns = netns_lab.namespace("student")
    sw2.plug(student_ns, "eth0", f"{STUDENT_IP}/24")
    student = netns_lab.agent(student_ns)
    student.call("mdns_ops:student_start", interfaces_ips=[STUDENT_IP])
    _assert_both_reachable(student, {"room12": "<p>box 2</p>", "room12-2": "<p>box 1</p>"})


@pytest.fixture
def netns_lab_v6():
    yield from netns.lab_for_test(ipv6=True)


def test_ip_version_all_announces_ipv6_addresses_too(netns_lab_v6, tmp_path):
    lab = netns_lab_v6
    box_ns, student_ns = _box_and_student(lab)
    box_ns.add_address("eth0", "fd00:77::1/64")
    student_ns.add_address("eth0", "fd00:77::2/64")
    box, student = lab.agent(box_ns), lab.agent(student_ns)
    box.call("serve_http", port=8080, body=PAGE)
    student.call("mdns_ops:student_start", interfaces_ips=[STUDENT_IP],
                 ipv6_ifindex=student.call("mdns_ops:ifindex", name="eth0"))
    box.call("mdns_ops:advertise", data_dir=str(tmp_path / "box"), hostname="room12", interfaces=["eth0"],
             port=8080, ip_version="all")
    status = box.call("mdns_ops:box_wait_ready", wait_s=20, timeout=30)["status"]
    assert status["addresses"][0] == BOX_IP and "fd00:77::1" in status["addresses"]

    wait_for(lambda: "fd00:77::1" in student.call("mdns_ops:student_resolve6", host="room12.local."), 15,
             what="AAAA record")
    assert student.call("mdns_ops:student_resolve", host="room12.local.") == [BOX_IP]
    seen = wait_for(lambda: (s := _names_seen(student)) and len(s) == 2 and s, 15, what="both services")
    assert {"10.77.0.1", "fd00:77::1"} <= set(seen["room12._http._tcp.local."]["addresses"])


def test_stopping_the_box_withdraws_its_records(netns_lab, tmp_path):
    box_ns, student_ns = _box_and_student(netns_lab)
    box, student = netns_lab.agent(box_ns), netns_lab.agent(student_ns)
    box.call("serve_http", port=8080, body=PAGE)
    student.call("mdns_ops:student_start", interfaces_ips=[STUDENT_IP])
    box.call("mdns_ops:advertise", data_dir=str(tmp_path / "box"), hostname="room12", interfaces=["eth0"],
             port=8080)
    assert box.call("mdns_ops:box_wait_ready", wait_s=20, timeout=30)["ready"]
    wait_for(lambda: len(_names_seen(student)) == 2, 15, what="both services")

    stopped = box.call("mdns_ops:box_stop", wait_s=15, timeout=30)
    assert stopped["clean"] and stopped["failed"] is None and stopped["status"]["state"] == "stopped"
    # Records have a 120 s / 75 min TTL: only goodbye packets can make them vanish this quickly.
    wait_for(lambda: _names_seen(student) == {}, 5, what="services withdrawn")
    assert student.call("mdns_ops:student_resolve", host="room12.local.", timeout_ms=1500) == []
    # The web page is still there (only the announcement stopped); the student just cannot find it.
    assert student.call("http_get", url=f"http://{BOX_IP}:8080/")["status"] == 200


class _NotifySocket:
    """A NOTIFY_SOCKET like systemd's, collecting what the service sends."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.messages: list[str] = []

    def collect(self):
        try:
            while True:
                self.messages.append(self.sock.recv(4096).decode())
        except (TimeoutError, BlockingIOError):
            pass
        return self.messages

    def has(self, key):
        return any(key in m.split("\n") for m in self.collect())


def test_mdns_command_notifies_systemd_and_withdraws_on_sigterm(netns_lab, tmp_path):
    box_ns, student_ns = _box_and_student(netns_lab)
    student = netns_lab.agent(student_ns)
    student.call("mdns_ops:student_start", interfaces_ips=[STUDENT_IP])
    box = netns_lab.agent(box_ns)
    notify = _NotifySocket(tmp_path / "notify.sock")
    env = dict(os.environ, NOTIFY_SOCKET=notify.path, PYTHONPATH=str(REPO),
               CLASSROOM_EDGE_STORAGE__DATA_DIR=str(tmp_path / "data"), CLASSROOM_EDGE_MDNS__ENABLED="true",
               CLASSROOM_EDGE_MDNS__HOSTNAME="room12", CLASSROOM_EDGE_MDNS__INTERFACES="eth0",
               CLASSROOM_EDGE_MDNS__POLL_INTERVAL_S="0.5", CLASSROOM_EDGE_WEB__PORT="8080",
               CLASSROOM_EDGE_WEB__HOST="0.0.0.0")
    with open(tmp_path / "mdns.log", "w") as log:
        proc = box_ns.popen([PYTHON, "-m", "appliance", "mdns"], env=env, cwd=str(tmp_path),
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: notify.has("STATUS=waiting-for-web http://127.0.0.1:8080/api/v1/health"), 20,
                 what="waiting status")
        time.sleep(1.0)  # the web service is not up yet: no READY may come in the meantime
        assert not notify.has("READY=1") and _names_seen(student) == {}
        box.call("serve_http", port=8080, body=PAGE)
        wait_for(lambda: notify.has("READY=1"), 20, what="READY=1")
        wait_for(lambda: notify.has("WATCHDOG=1"), 5, what="watchdog pings")
        wait_for(lambda: len(_names_seen(student)) == 2, 15, what="both services")
        status = subprocess.run([PYTHON, "-m", "appliance", "mdns", "--status"], env=env, cwd=str(tmp_path),
                                capture_output=True, text=True, timeout=60, check=False)
        assert status.returncode == 0 and json.loads(status.stdout)["hostname"] == "room12.local"

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert notify.has("STOPPING=1")
        wait_for(lambda: _names_seen(student) == {}, 5, what="goodbyes after SIGTERM")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        notify.sock.close()
        print((tmp_path / "mdns.log").read_text())  # shown by pytest only if the test failed


def test_student_opens_the_real_lms_found_over_mdns(netns_lab, tmp_path):
    # The whole appliance in one process (``classroom-edge run``: web + mDNS parts) in the box
    # namespace; the first start builds the default models, hence the generous timeouts.
    box_ns, student_ns = _box_and_student(netns_lab)
    student = netns_lab.agent(student_ns)
    student.call("mdns_ops:student_start", interfaces_ips=[STUDENT_IP])
    env = dict(os.environ, PYTHONPATH=str(REPO), CLASSROOM_EDGE_MDNS__ENABLED="true",
               CLASSROOM_EDGE_MDNS__HOSTNAME="room12", CLASSROOM_EDGE_MDNS__ROOM="Room 12",
               CLASSROOM_EDGE_MDNS__INTERFACES="eth0", CLASSROOM_EDGE_MDNS__POLL_INTERVAL_S="0.5")
    with open(tmp_path / "run.log", "w") as log:
        proc = box_ns.popen([PYTHON, "-m", "appliance", "run", "--host", "0.0.0.0", "--port", "8080",
                             "--data-dir", str(tmp_path / "data")], env=env, cwd=str(tmp_path),
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        seen = wait_for(lambda: proc.poll() is None and (s := _names_seen(student)) and len(s) == 2 and s,
                        300, interval=1.0, what="the appliance announcing itself")
        txt = seen["room12._http._tcp.local."]["txt"]
        assert txt["room"] == "Room 12" and txt["path"] == "/" and txt["api"] == "/v2"

        home = student.call("mdns_ops:student_fetch", host="room12.local.", port=8080, path=txt["path"])
        assert home["status"] == 302 and home["address"] == BOX_IP  # a fresh box sends people to /setup
        setup = student.call("mdns_ops:student_fetch", host="room12.local.", port=8080, path="/setup")
        assert setup["status"] == 200 and "Classroom Edge" in setup["body"]
        ready = student.call("mdns_ops:student_fetch", host="room12.local.", port=8080,
                             path=txt["api"] + "/health/ready")
        assert ready["status"] == 200 and json.loads(ready["body"]) == {"ready": True}

        def mdns_part(agent, host):
            health = agent.call("http_get", url=f"http://{host}:8080/api/v1/health")
            part = next(p for p in json.loads(health["body"])["parts"] if p["name"] == "mdns")
            return part if part["state"] == "ok" else None

        # The box itself reads the part's details; a student's laptop only whether it works.
        box = netns_lab.agent(box_ns)
        part = wait_for(lambda: mdns_part(box, "127.0.0.1"), 15, what="mdns part ok in /api/v1/health")
        assert part["hostname"] == "room12.local" and part["phase"] == "advertising"
        assert mdns_part(student, BOX_IP) == {"name": "mdns", "state": "ok"}

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        wait_for(lambda: _names_seen(student) == {}, 5, what="goodbyes when the appliance stops")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        print((tmp_path / "run.log").read_text())  # shown by pytest only if the test failed
