"""Boot test: a Debian box built with mmdebstrap, provisioned by the playbook over SSH, booted in
systemd-nspawn. Proves: the playbook applies and is idempotent (second run changed=0), every service
reaches active, the LMS answers inside and through the firewall from the classroom LAN (SSH only from
the admin address), logs reach journald with structured fields, a hung web server is killed by the
watchdog and restarted, the box comes back after a reboot, and stopping the target stops everything
cleanly.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from nspawn_box import (
    ADMIN_IP,
    BOX_IP,
    REPO,
    STUDENT_IP,
    Box,
    Lan,
    build_wheel,
    rootfs_tarball,
    run,
    wheelhouse,
)

from appliance.people.passwords import hash_password

SERVICES = ["classroom-edge-web.service", "classroom-edge-sync.service", "classroom-edge-mdns.service"]
ACTIVE_UNITS = [*SERVICES, "classroom-edge-train.timer", "classroom-edge.target"]
HTTP_PORT = 80
ARTIFACTS = REPO / "tests/artifacts/nspawn"

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(1800)]


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces, systemd-nspawn)"
    for tool in ("systemd-nspawn", "mmdebstrap", "nsenter", "ip", "ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install systemd-container mmdebstrap openssh-client)"
    return None


def recap(output: str) -> dict[str, int]:
    m = re.search(r"^box\s*:\s*(.*)$", output, re.MULTILINE)
    assert m, f"no PLAY RECAP for the box in:\n{output[-3000:]}"
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(1))}


def playbook(lan: Lan, inventory: Path, log: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, ANSIBLE_HOST_KEY_CHECKING="False", ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    out = lan.in_lan([str(REPO / ".venv/bin/ansible-playbook"), "-i", str(inventory), "site.yml"],
                     cwd=REPO / "provisioning", env=env, timeout=1200, check=False)
    log.write_text(out.stdout + out.stderr)
    return out


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    reason = _missing()
    if reason:
        pytest.skip(reason)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    work = tmp_path_factory.mktemp("nspawn")
    tarball, house = rootfs_tarball(), wheelhouse()
    wheel = build_wheel(work / "dist")
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(work / "id_ed25519")])
    lan = Lan(str(os.getpid()))
    box = Box(work / "root", lan, ARTIFACTS)
    inventory = work / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"classroom_edge": {"hosts": {"box": {
        "ansible_host": BOX_IP,
        "ansible_user": "root",
        "ansible_ssh_private_key_file": str(work / "id_ed25519"),
        "ansible_ssh_common_args": "-o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no",
        "ce_site": "test-site",
        "ce_hostname": "room12",
        "ce_room": "Room 12",
        "ce_wheel": str(wheel),
        "ce_wheelhouse_dir": str(house),
        "ce_admin_networks": [f"{ADMIN_IP}/32"],
        "ce_lan_networks": [f"{BOX_IP.rsplit('.', 1)[0]}.0/24"],
        "ce_apt_update_cache": False,  # the image holds every package; the box has no mirror
        "ce_install_demo": True,
        "ce_admin_password_hash": hash_password("correct horse battery"),
        # No broker listens there: the relay must come up anyway and keep retrying, as on a box
        # whose uplink is down.
        "ce_uplink_broker_url": f"mqtt://{ADMIN_IP}:1883",
    }}}}))
    try:
        lan.up()
        box.extract(tarball, (work / "id_ed25519.pub").read_text())
        box.boot()
        box.wait_ssh()
        box.runs = [playbook(lan, inventory, ARTIFACTS / f"ansible-run{i}.log") for i in (1, 2)]
        yield box
    finally:
        if box.proc is not None:
            try:
                # Every boot (the playbook makes the journal persistent), for diagnosing any test.
                box.sh("journalctl --no-pager -o short-precise > /var/tmp/journal.txt", check=False)
                shutil.copy(box.root / "var/tmp/journal.txt", ARTIFACTS / "journal.txt")
            except (OSError, RuntimeError, subprocess.SubprocessError):
                pass
        box.poweroff()
        lan.down()
        shutil.rmtree(work / "root", ignore_errors=True)


def provisioned(box: Box) -> None:
    if recap(box.runs[0].stdout)["failed"] or box.runs[0].returncode:
        pytest.fail(f"the first playbook run failed; see {ARTIFACTS}/ansible-run1.log")


def test_playbook_applies_then_changes_nothing(box):
    first, second = (recap(r.stdout) for r in box.runs)
    assert box.runs[0].returncode == 0 and first["failed"] == 0 and first["unreachable"] == 0, \
        f"see {ARTIFACTS}/ansible-run1.log"
    assert first["changed"] > 0
    assert box.runs[1].returncode == 0 and second["failed"] == 0
    assert second["changed"] == 0, f"second run changed something; see {ARTIFACTS}/ansible-run2.log"


def test_every_unit_active_and_nothing_failed(box):
    provisioned(box)
    states = box.sh(f"systemctl is-active {' '.join(ACTIVE_UNITS)}", check=False).stdout.split()
    assert dict(zip(ACTIVE_UNITS, states)) == {u: "active" for u in ACTIVE_UNITS}
    assert box.sh("systemctl list-units --failed --plain --no-legend").stdout.strip() == ""
    assert box.sh("cat /etc/hostname").stdout.strip() == "room12"
    user = box.sh("ps -o user= -p $(systemctl show -P MainPID classroom-edge-web)").stdout.strip()
    assert user == "classroom-edge"
    staff = json.loads(box.sh("runuser -u classroom-edge -- /opt/classroom-edge/venv/bin/classroom-edge "
                              "--config /etc/classroom-edge/appliance.toml users list").stdout)
    assert [(u["username"], u["role"]) for u in staff] == [("admin", "admin")]


def test_units_verify_clean_and_score_on_the_box(box):
    """On the box the real ExecStart= binary exists, so verify checks everything it can."""
    provisioned(box)
    units = " ".join(f"/etc/systemd/system/{u}" for u in (*SERVICES, "classroom-edge-train.service",
                                                        "classroom-edge-train.timer", "classroom-edge.target"))
    out = box.sh(f"systemd-analyze verify {units}", check=False)
    assert (out.returncode, out.stdout, out.stderr) == (0, "", "")
    for unit in (*SERVICES, "classroom-edge-train.service"):
        score = box.sh(f"systemd-analyze security --no-pager {unit} | tail -n 1").stdout
        assert float(re.search(r": (\d+\.\d+)", score).group(1)) <= 2.0, score


def test_lms_answers_inside_and_from_the_classroom(box):
    provisioned(box)
    health = json.loads(box.sh(f"curl -fsS http://127.0.0.1:{HTTP_PORT}/api/v1/health").stdout)
    assert health["status"] in ("ok", "degraded") and health["version"]
    # What a student's browser does: open the address, follow the redirect to the sign-in page.
    page = box.lan.in_lan(["curl", "-fsSL", "--max-time", "20", "--interface", STUDENT_IP, "-o", "/dev/null",
                           "-w", "%{http_code} %{num_redirects}", f"http://{BOX_IP}:{HTTP_PORT}/"], timeout=30)
    assert page.stdout.split()[0] == "200"
    # The firewall: SSH from the admin address only; nothing else is open to a student's device.
    assert box.lan.tcp_open(22, ADMIN_IP)
    assert not box.lan.tcp_open(22, STUDENT_IP)
    assert "classroom_edge" in box.sh("nft list tables").stdout


def test_logs_reach_journald_with_structured_fields(box):
    provisioned(box)
    lines = box.sh("journalctl -u classroom-edge-web.service -o json --no-pager").stdout.splitlines()
    entries = [json.loads(line) for line in lines if line.startswith("{")]
    structured = [e for e in entries if e.get("LOGGER", "").startswith("appliance")]
    assert structured, "no entry from the appliance's journald handler"
    assert all(e.get("SYSLOG_IDENTIFIER") == "classroom-edge" and "PRIORITY" in e for e in structured)


def test_hung_web_server_is_killed_by_watchdog_and_restarted(box):
    provisioned(box)
    unit = "classroom-edge-web.service"
    before = box.sh(f"systemctl show -P MainPID {unit}; systemctl show -P NRestarts {unit}").stdout.split()
    pid, restarts = int(before[0]), int(before[1])
    box.sh(f"kill -STOP {pid}")
    box.wait_for(f'test "$(systemctl show -P NRestarts {unit})" -gt {restarts} && '
                 f'test "$(systemctl show -P MainPID {unit})" != {pid} && systemctl is-active -q {unit}',
                 timeout=240, what="the watchdog to restart the web service")
    journal = box.sh(f"journalctl -u {unit} --no-pager -o cat").stdout
    assert "Watchdog timeout" in journal
    box.wait_for(f"curl -fsS --max-time 5 -o /dev/null http://127.0.0.1:{HTTP_PORT}/api/v1/health", timeout=120,
                 what="the LMS to answer again")
    assert box.sh(f"systemctl is-active {unit}").stdout.strip() == "active"


def test_box_comes_back_after_reboot(box):
    provisioned(box)
    assert box.poweroff() == 0
    box.boot()
    box.wait_for(f"systemctl is-active -q {' '.join(ACTIVE_UNITS)}", timeout=300, what="every unit after reboot")
    box.wait_for(f"curl -fsS --max-time 5 -o /dev/null http://127.0.0.1:{HTTP_PORT}/api/v1/health", timeout=120,
                 what="the LMS after reboot")
    assert box.sh("systemctl list-units --failed --plain --no-legend").stdout.strip() == ""


def test_stopping_the_target_stops_everything_cleanly(box):
    provisioned(box)
    box.sh("systemctl stop classroom-edge.target", timeout=180)
    # The stop propagates through PartOf= as separate jobs, in reverse start order (mdns and sync,
    # which start after web, stop before it); wait for all of them, bounded by the units' stop timeouts.
    box.wait_for(f"test -z \"$(systemctl is-active {' '.join(ACTIVE_UNITS)} | grep -vx inactive)\"",
                 timeout=120, what="every unit to stop")
    for unit in SERVICES:
        assert box.sh(f"systemctl show -P Result {unit}").stdout.strip() == "success", unit
    journal = box.sh("journalctl -b --no-pager -o cat -u 'classroom-edge*'").stdout
    # A clean stop: every process left on SIGTERM by itself; systemd had to kill nothing.
    forced = [line for line in journal.splitlines() if "Killing process" in line or "timed out" in line]
    assert not forced, "processes had to be killed on stop:\n" + "\n".join(forced)
    assert box.sh("pgrep -u classroom-edge", check=False).stdout.strip() == ""
