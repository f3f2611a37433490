"""A real Mosquitto (Debian's /usr/sbin/mosquitto) for tests: foreground process, 127.0.0.1, ephemeral port.

Import the fixtures explicitly (``from mqtt_broker import broker_factory, mqtt_broker``); the module is
not a plugin of the root conftest. As root Mosquitto drops to the ``mosquitto`` user, so its data
directory, password file and TLS key are handed to that user.

``Broker.kill()`` (SIGKILL) and ``Broker.start()`` again on the same port let a test crash it; with
persistence on, whatever it autosaved survives, as on a real hub.
"""
from __future__ import annotations

import atexit
import datetime
import ipaddress
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

MOSQUITTO = "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = "/usr/bin/mosquitto_passwd"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _give_to_mosquitto(path: Path) -> None:
    if os.geteuid() != 0:
        return
    pw = pwd.getpwnam("mosquitto")
    os.chown(path, pw.pw_uid, pw.pw_gid)


@dataclass
class Pki:
    """A CA and a server certificate generated for one test (``cryptography``, never from disk)."""

    dir: Path
    ca_file: Path
    cert_file: Path
    key_file: Path
    ca_key_file: Path | None = None   # kept so that client certificates can be issued (issue_client_cert)


def make_pki(directory: Path, ips=("127.0.0.1",), names=("localhost",), cn: str = "Test CA") -> Pki:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    sans = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0] if names else ips[0])]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pki = Pki(directory, directory / "ca.pem", directory / "server.pem", directory / "server.key",
              directory / "ca.key")
    pki.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pki.ca_key_file.write_bytes(ca_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption()))
    os.chmod(pki.ca_key_file, 0o600)  # the broker never needs it: not handed to mosquitto
    pki.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pki.key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    os.chmod(pki.key_file, 0o600)
    for p in (pki.ca_file, pki.cert_file, pki.key_file):
        _give_to_mosquitto(p)
    return pki


def issue_client_cert(pki: Pki, cn: str, directory: Path | None = None) -> tuple[Path, Path]:
    """A client certificate (CN = ``cn``) signed by ``pki``'s CA, for brokers that want mutual TLS.
    Returns (cert_file, key_file); the key is 0600 and stays with the test's user (the client reads it)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    assert pki.ca_key_file is not None, "this Pki was made without its CA key"
    directory = directory or pki.dir
    directory.mkdir(parents=True, exist_ok=True)
    ca = x509.load_pem_x509_certificate(pki.ca_file.read_bytes())
    ca_key = serialization.load_pem_private_key(pki.ca_key_file.read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    cert_file, key_file = directory / f"client-{cn}.pem", directory / f"client-{cn}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    os.chmod(key_file, 0o600)
    return cert_file, key_file


@dataclass
class Broker:
    """One Mosquitto process and its generated configuration."""

    dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    users: dict[str, str] = field(default_factory=dict)   # empty: anonymous allowed
    tls: Pki | None = None
    extra_conf: str = ""
    # Mutual TLS (needs ``tls``): clients must present a certificate from tls's CA; with
    # use_identity_as_username its CN is the MQTT user name that the ACL (``acl``: the file's text) sees.
    require_certificate: bool = False
    use_identity_as_username: bool = False
    acl: str = ""
    netns: str | None = None                              # run inside this network namespace
    proc: subprocess.Popen | None = None

    def __post_init__(self):
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.data_dir = self.dir / "data"
        self.data_dir.mkdir(exist_ok=True)
        _give_to_mosquitto(self.data_dir)
        if not self.port:
            self.port = free_port(self.host) if self.netns is None else 18830
        self.log_file = self.dir / "mosquitto.log"
        self.conf_file = self.dir / "mosquitto.conf"
        self._write_conf()

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    def _write_conf(self) -> None:
        lines = [
            f"listener {self.port} {self.host}",
            "persistence true",
            f"persistence_location {self.data_dir}/",
            "autosave_interval 60",
            # A hub that is down for a while must not lose queued batches at the default of 1000.
            "max_queued_messages 100000",
            "max_inflight_messages 20",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
        ]
        if os.geteuid() == 0:
            lines.append("user mosquitto")
        if self.users:
            pw_file = self.dir / "passwd"
            pw_file.write_text("")
            for user, password in self.users.items():
                subprocess.run([MOSQUITTO_PASSWD, "-b", str(pw_file), user, password], check=True,
                               capture_output=True)
            os.chmod(pw_file, 0o600)
            _give_to_mosquitto(pw_file)
            lines += ["allow_anonymous false", f"password_file {pw_file}"]
        else:
            lines.append("allow_anonymous true")
        if self.tls:
            lines += [f"certfile {self.tls.cert_file}", f"keyfile {self.tls.key_file}", "tls_version tlsv1.2"]
            if self.require_certificate:
                lines += [f"cafile {self.tls.ca_file}", "require_certificate true"]
            if self.use_identity_as_username:
                lines.append("use_identity_as_username true")
        if self.acl:
            acl_file = self.dir / "acl"
            acl_file.write_text(self.acl)
            os.chmod(acl_file, 0o600)
            _give_to_mosquitto(acl_file)  # read after mosquitto dropped to its user, like the password file
            lines.append(f"acl_file {acl_file}")
        self.conf_file.write_text("\n".join(lines) + "\n" + self.extra_conf)

    def start(self, timeout: float = 10.0) -> Broker:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        cmd = [MOSQUITTO, "-c", str(self.conf_file)]
        if self.netns:
            cmd = ["ip", "netns", "exec", self.netns] + cmd
        with open(self.log_file, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}: {self.log_tail()}")
            if self._listening():
                return self
            time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on {self.port}: {self.log_tail()}")

    def _listening(self) -> bool:
        if self.netns:
            out = subprocess.run(["ip", "netns", "exec", self.netns, "ss", "-ltnH", f"sport = :{self.port}"],
                                 capture_output=True, text=True, check=False).stdout
            return bool(out.strip())
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, nothing saved since the last autosave."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-n:]
        except OSError:
            return ""


def require_mosquitto() -> None:
    if not shutil.which(MOSQUITTO) and not Path(MOSQUITTO).exists():
        pytest.skip("Debian's mosquitto is not installed (apt-get install mosquitto)")


def broker_dir(prefix: str = "ce-mosquitto-") -> Path:
    """A directory the dropped-privilege broker can reach (pytest's tmp_path sits under a 0700 dir)."""
    d = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(d, 0o755)
    # Outside pytest's tmp_path, so nothing else would remove it: gone when the test run ends.
    atexit.register(shutil.rmtree, d, True)
    return d


@pytest.fixture
def broker_factory():
    """``make(users=..., tls=..., extra_conf=...)`` -> a started Broker; all are stopped at the end."""
    require_mosquitto()
    root = broker_dir()
    made: list[Broker] = []

    def make(name: str = "broker", **kw) -> Broker:
        b = Broker(root / name, **kw)
        made.append(b)
        return b.start()

    yield make
    for b in made:
        b.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def mqtt_broker(broker_factory):
    """A plain broker with a box user and a hub user (anonymous refused)."""
    return broker_factory(users={"box1": "box1-secret", "hub": "hub-secret"})


# -- configs for the clients of a test broker ---------------------------------------------------------
def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(path: Path, sections: dict[str, dict]) -> Path:
    """A TOML config file for a process under test (``python -m appliance --config PATH ...``)."""
    lines = []
    for name, keys in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in keys.items()]
        lines.append("")
    path.write_text("\n".join(lines))
    return path


def box_sections(data_dir: Path, broker: Broker | None, user: str = "box1", password: str = "box1-secret",
                 **sync) -> dict[str, dict]:
    s = {"site": "school1", "device": user, "username": user, "password": password}
    if broker is not None:
        s["broker_url"] = broker.url
        if broker.tls:
            s["ca_file"] = str(broker.tls.ca_file)
    s.update(sync)
    return {"storage": {"data_dir": str(data_dir)}, "content": {"install_demo": False}, "sync": s}


def hub_sections(data_dir: Path, broker: Broker, user: str = "hub", password: str = "hub-secret", **hub) -> dict:
    h = {"broker_url": broker.url, "username": user, "password": password}
    if broker.tls:
        h["ca_file"] = str(broker.tls.ca_file)
    h.update(hub)
    return {"storage": {"data_dir": str(data_dir)}, "content": {"install_demo": False}, "hub": h}


def load(sections: dict[str, dict]):
    """A Config from sections (through the real loader, so types and names are checked)."""
    from appliance.config import load_config

    env = {f"CLASSROOM_EDGE_{sec.upper()}__{k.upper()}": (",".join(v) if isinstance(v, list) else str(v))
           for sec, keys in sections.items() for k, v in keys.items()}
    return load_config(env=env)


def wait_until(pred, timeout: float = 30.0, interval: float = 0.05, what: str = "condition"):
    """Poll ``pred`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


# -- the clients: box services, relays, hub workers (each stopped at the end of the test) ---------------
@pytest.fixture
def open_services():
    """``open_services(cfg)`` -> Services (migrated); closed at the end."""
    from appliance.services import Services

    opened = []

    def make(cfg):
        s = Services.open(cfg)
        opened.append(s)
        return s

    yield make
    for s in reversed(opened):
        s.close()


@pytest.fixture
def start_relay():
    """``start_relay(cfg, db, handler=None)`` -> a started SyncService; stopped at the end."""
    from appliance.sync.service import SyncService

    started = []

    def make(cfg, db, handler=None):
        svc = SyncService(cfg, db, handler)
        svc.start()
        started.append(svc)
        return svc

    yield make
    for svc in reversed(started):
        svc.stop(15)


@pytest.fixture
def start_hub():
    """``start_hub(cfg, index=0)`` -> a started IngestWorker; stopped at the end."""
    from appliance.hub.ingest import IngestWorker

    started = []

    def make(cfg, index=0, wait=True, **kw):
        w = IngestWorker(cfg, index=index, **kw)
        w.start()
        started.append(w)
        # Messages published before the shared subscription exists go nowhere: wait for the SUBACK.
        if wait and not w.subscribed.wait(30):
            raise AssertionError(f"hub worker {index} did not subscribe: {w.status()}")
        return w

    yield make
    for w in reversed(started):
        w.stop(10)
