"""Throw-away network namespaces for tests: a "box", a "student", links and switches between them.

Multicast (mDNS) and test servers must never touch the machine's real interfaces, so a test builds its
own little network: ``Lab.namespace()`` makes a namespace (loopback up, IPv6 off unless asked for),
``Lab.link()`` joins two namespaces with a veth pair, ``Lab.switch()`` makes a bridge in a namespace of
its own for three or more hosts. Everything is created *inside* the namespaces (``ip -n NS link add``),
so interface names never clash with the host's, and names carry the test process id so parallel runs
never collide. ``Lab.close()`` (or a fixture built on ``lab_for_test``) kills what runs inside and deletes
every namespace, also after a failed test; namespaces left by a killed run are swept on the next start.

Code runs inside a namespace either as a one-shot command (``Namespace.run``) or as a long-lived
``Agent`` (``tests/e2e/ns_agent.py``) driven by JSON lines, with every call bounded by a timeout.
"""
from __future__ import annotations

import itertools
import json
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Self

import pytest

PREFIX = "cetest"
REPO = Path(__file__).resolve().parents[2]
AGENT = Path(__file__).with_name("ns_agent.py")
PYTHON = sys.executable
_counter = itertools.count(1)


class NetnsError(RuntimeError):
    pass


def unavailable_reason() -> str | None:
    """Why namespaces cannot be made here (None when they can)."""
    if os.geteuid() != 0:
        return "network namespace tests need root (ip netns add); run them as root or in CI"
    if shutil.which("ip") is None:
        return "iproute2 'ip' command not found"
    return None


def sh(argv: list[str], *, check: bool = True, timeout: float = 15.0, input: str | None = None) -> str:
    """Run a command on the host (for ``ip`` itself); stdout, or NetnsError with stderr."""
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=input, check=False)
    if check and proc.returncode != 0:
        raise NetnsError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale() -> list[str]:
    """Delete namespaces that an earlier, killed test run (its pid gone) left behind."""
    removed = []
    for line in sh(["ip", "netns", "list"], check=False).splitlines():
        name = line.split()[0] if line.split() else ""
        parts = name.split("-")
        if len(parts) >= 3 and parts[0] == PREFIX and parts[1].isdigit() and not _pid_alive(int(parts[1])):
            _delete_namespace(name)
            removed.append(name)
    return removed


def _delete_namespace(name: str) -> None:
    # Processes still inside would keep the namespace (and its multicast) alive: end them first.
    for pid in sh(["ip", "netns", "pids", name], check=False).split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    sh(["ip", "netns", "del", name], check=False)


class Namespace:
    """One network namespace; ``run``/``popen`` execute commands inside it."""

    def __init__(self, name: str, role: str) -> None:
        self.name = name
        self.role = role

    def __repr__(self) -> str:
        return f"<Namespace {self.role} {self.name}>"

    def ip(self, *args: str, check: bool = True) -> str:
        return sh(["ip", "-n", self.name, *args], check=check)

    def run(self, argv: list[str], *, check: bool = True, timeout: float = 15.0, input: str | None = None) -> str:
        return sh(["ip", "netns", "exec", self.name, *argv], check=check, timeout=timeout, input=input)

    def popen(self, argv: list[str], **kw) -> subprocess.Popen:
        return subprocess.Popen(["ip", "netns", "exec", self.name, *argv], **kw)

    def python(self, code: str, timeout: float = 30.0) -> str:
        return self.run([PYTHON, "-c", code], timeout=timeout)

    def set_sysctl(self, key: str, value: str) -> None:
        # Written from inside the namespace: /proc/sys/net is per namespace.
        path = "/proc/sys/" + key.replace(".", "/")
        self.run(["sh", "-c", f"echo {value} > {path}"])

    def add_address(self, dev: str, cidr: str) -> None:
        self.ip("addr", "add", cidr, "dev", dev)

    def del_address(self, dev: str, cidr: str) -> None:
        self.ip("addr", "del", cidr, "dev", dev)

    def addresses(self, dev: str) -> list[str]:
        data = json.loads(self.ip("-j", "addr", "show", "dev", dev) or "[]")
        return [f"{a['local']}/{a['prefixlen']}" for link in data for a in link.get("addr_info", [])]


class Agent:
    """A Python process inside a namespace, driven by JSON lines (see ``ns_agent.py``)."""

    def __init__(self, ns: Namespace, log_dir: Path, env: dict | None = None) -> None:
        self.ns = ns
        self.log_path = log_dir / f"agent-{ns.role}-{next(_counter)}.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in close()
        full_env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1", **(env or {}))
        self.proc = ns.popen([PYTHON, str(AGENT)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=self._log, env=full_env, cwd=str(REPO))
        self._sel = selectors.DefaultSelector()
        self._sel.register(self.proc.stdout, selectors.EVENT_READ)
        self._buf = b""
        self._ids = itertools.count(1)

    def call(self, op: str, timeout: float = 20.0, **args):
        """Run ``op`` (``name`` or ``module:function``) in the agent; its result, or NetnsError."""
        req_id = next(self._ids)
        line = json.dumps({"id": req_id, "op": op, "args": args}) + "\n"
        try:
            self.proc.stdin.write(line.encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise NetnsError(f"agent in {self.ns} is gone; log:\n{self.log_tail()}") from None
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_line(deadline)
            if reply is None:
                raise NetnsError(f"{op} in {self.ns} did not answer within {timeout} s; log:\n{self.log_tail()}")
            msg = json.loads(reply)
            if msg.get("id") != req_id:
                continue  # a late answer to an earlier call that timed out
            if not msg.get("ok"):
                raise NetnsError(f"{op} in {self.ns} failed: {msg.get('error')}")
            return msg.get("result")

    def _read_line(self, deadline: float) -> str | None:
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not self._sel.select(left):
                return None
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                return None
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode()

    def log_tail(self, n: int = 40) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def close(self, timeout: float = 15.0) -> int | None:
        """Ask the agent to clean up and exit; terminate, then kill, if it does not in time."""
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(b'{"id": 0, "op": "exit", "args": {}}\n')
                self.proc.stdin.close()
            except (BrokenPipeError, ValueError):
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                try:
                    self.proc.wait(3)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(3)
        self._sel.close()
        self.proc.stdout.close()
        self._log.close()
        return self.proc.returncode


class Switch:
    """A bridge in its own namespace; ``plug`` connects a host namespace to it."""

    def __init__(self, lab: Lab, ns: Namespace) -> None:
        self._lab = lab
        self.ns = ns
        self._ports = itertools.count(1)
        ns.ip("link", "add", "br0", "type", "bridge")
        # 224.0.0.251 is link-local and flooded anyway; no snooping keeps it so on every kernel.
        ns.ip("link", "set", "br0", "type", "bridge", "mcast_snooping", "0")
        ns.ip("link", "set", "br0", "up")

    def plug(self, host: Namespace, dev: str = "eth0", cidr: str | None = None) -> str:
        """Connect ``host`` (its interface ``dev``) to the bridge; returns the switch port's name."""
        port = f"p{next(self._ports)}"
        self._lab.link(self.ns, port, host, dev, b_cidr=cidr)
        self.ns.ip("link", "set", port, "master", "br0")
        return port

    def set_port(self, port: str, up: bool) -> None:
        """Pull or plug the cable at the switch (the host keeps its address, as a real box does)."""
        self.ns.ip("link", "set", port, "up" if up else "down")


class Lab:
    """All namespaces and agents of one test; ``close()`` removes every trace."""

    def __init__(self, ipv6: bool = False) -> None:
        reason = unavailable_reason()
        if reason:
            raise NetnsError(reason)
        sweep_stale()
        self.ipv6 = ipv6
        self.token = secrets.token_hex(3)
        self.namespaces: list[Namespace] = []
        self.agents: list[Agent] = []
        self.log_dir = Path(tempfile.mkdtemp(prefix="netns-lab-"))

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def namespace(self, role: str) -> Namespace:
        name = f"{PREFIX}-{os.getpid()}-{self.token}-{next(_counter)}-{role}"
        sh(["ip", "netns", "add", name])
        ns = Namespace(name, role)
        self.namespaces.append(ns)
        ns.ip("link", "set", "lo", "up")
        if not self.ipv6:
            # Fewer moving parts: no duplicate address detection, no IPv6 multicast chatter.
            ns.set_sysctl("net.ipv6.conf.all.disable_ipv6", "1")
            ns.set_sysctl("net.ipv6.conf.default.disable_ipv6", "1")
        else:
            # Addresses usable at once: duplicate address detection only makes tests wait (and the
            # namespace cannot hold a duplicate anyway).
            ns.set_sysctl("net.ipv6.conf.default.accept_dad", "0")
        return ns

    def link(self, a: Namespace, a_dev: str, b: Namespace, b_dev: str,
             a_cidr: str | None = None, b_cidr: str | None = None) -> None:
        """A veth pair ``a_dev`` (in a) <-> ``b_dev`` (in b), both up, with optional addresses."""
        a.ip("link", "add", a_dev, "type", "veth", "peer", "name", b_dev, "netns", b.name)
        for ns, dev, cidr in ((a, a_dev, a_cidr), (b, b_dev, b_cidr)):
            if cidr:
                ns.add_address(dev, cidr)
            ns.ip("link", "set", dev, "up")

    def switch(self) -> Switch:
        return Switch(self, self.namespace("switch"))

    def agent(self, ns: Namespace, env: dict | None = None) -> Agent:
        agent = Agent(ns, self.log_dir, env)
        self.agents.append(agent)
        agent.call("ping", timeout=30)  # the interpreter is up and the pipe works
        return agent

    def close(self) -> None:
        for agent in reversed(self.agents):
            agent.close()
            # pytest shows captured output only for a failed test: the agents' logs explain it.
            print(f"----- log of the agent in {agent.ns} -----\n{agent.log_path.read_text(errors='replace')}",
                  file=sys.stderr)
        self.agents.clear()
        for ns in reversed(self.namespaces):
            _delete_namespace(ns.name)
        self.namespaces.clear()
        shutil.rmtree(self.log_dir, ignore_errors=True)


def lab_for_test(ipv6: bool = False):
    """Body of a test fixture: yields a ``Lab`` and tears it down; skips (with the reason) when not root.

    Use it as ``@pytest.fixture def lab(): yield from netns.lab_for_test()``.
    """
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    lab = Lab(ipv6=ipv6)
    try:
        yield lab
    finally:
        lab.close()


def wait_for(predicate, timeout: float, interval: float = 0.2, what: str = "condition"):
    """Poll ``predicate`` until it returns something truthy; that value, or AssertionError."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; last value: {last!r}")
