"""One MQTT v5 connection at a time, driven by the thread that owns it (relay and hub workers alike).

Why not ``loop_start``/``loop_forever``: paho's own reconnect has no jitter, ignores the broker's Receive
Maximum and would replay its own queue on reconnect behind our back. Here the owning thread calls
``Link.loop()``, a fresh paho client is made for every attempt (so the only resends are the ones our
outbox logic decides), and callbacks do nothing but append an event to a deque that the same thread
drains after ``loop()`` returns: a callback never raises into paho and never touches a lock that is held
around ``publish()``.
"""
from __future__ import annotations

import collections
import logging
import random
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from appliance.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BrokerParams:
    host: str
    port: int
    tls: bool
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    username: str = ""
    password: str = ""
    keepalive: int = 30
    connect_timeout: float = 10.0
    section: str = "sync"  # the config section these came from: the advice in error reasons names its keys

    @classmethod
    def from_url(cls, url: str, key: str = "sync.broker_url", **kw) -> BrokerParams:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ConfigError(f"{key}: expected mqtt://host[:port] or mqtts://host[:port] (got {url!r})")
        tls = parts.scheme == "mqtts"
        if tls and not kw.get("ca_file"):
            raise ConfigError(f"{key}: mqtts:// needs a pinned CA (set ca_file); system CAs are not trusted")
        kw.setdefault("section", key.split(".")[0])
        return cls(parts.hostname, parts.port or (8883 if tls else 1883), tls, **kw)

    @classmethod
    def from_settings(cls, s, section: str, **kw) -> BrokerParams:
        """The broker settings every MQTT client section has in common ([sync] for the relay, [hub] for the
        hub workers and publisher): one place that reads them and checks the client certificate."""
        check_client_cert(s.cert_file, s.key_file, section)
        return cls.from_url(s.broker_url, key=f"{section}.broker_url", ca_file=s.ca_file, cert_file=s.cert_file,
                            key_file=s.key_file, username=s.username, password=s.password,
                            keepalive=s.keepalive_s, **kw)


def check_client_cert(cert_file: str, key_file: str, section: str) -> None:
    """A key without its certificate would be ignored silently; an unreadable or mismatched pair would only
    show on the first connection (``config check`` runs this, so a rollout stops instead)."""
    if key_file and not cert_file:
        raise ConfigError(f"{section}.key_file is set but {section}.cert_file is not: set both (or neither)")
    if not cert_file:
        return
    for name, path in (("cert_file", cert_file), ("key_file", key_file)):
        if not path:
            continue  # no key_file: the key is in cert_file's PEM
        try:
            with open(path, "rb"):  # ssl's own errors do not say which of the two files is missing
                pass
        except OSError as exc:
            raise ConfigError(f"{section}.{name}: cannot read {path}: {exc.strerror or exc}") from None
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(cert_file, key_file or None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"{section}.cert_file/key_file: not a PEM certificate with its matching private key "
                          f"({getattr(exc, 'reason', None) or exc})") from None


class _ClosingContext(ssl.SSLContext):
    """Remembers the socket it wrapped last: paho leaves a socket whose handshake failed to the garbage
    collector (a ResourceWarning per retry, for days, on a box with a wrong CA); ``Link`` closes it."""

    last_socket = None

    def wrap_socket(self, *args, **kwargs):
        sock = super().wrap_socket(*args, **kwargs)
        self.last_socket = sock
        return sock


def tls_context(params: BrokerParams) -> ssl.SSLContext:
    """A client context that trusts only the pinned CA and checks the broker's name."""
    try:
        ctx = _ClosingContext(ssl.PROTOCOL_TLS_CLIENT)  # verify_mode=CERT_REQUIRED, check_hostname=True
        ctx.load_verify_locations(cafile=params.ca_file)  # only this CA: no system store
        if params.cert_file:
            ctx.load_cert_chain(params.cert_file, params.key_file or None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load TLS files ({params.ca_file}): {exc}") from None
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


# TLS alerts a broker sends when it does not accept our client certificate (mutual TLS). Under TLS 1.3 they
# arrive after our side of the handshake is done, so paho only logs them and reports a lost connection.
# ``{s}`` is the config section of the client (sync or hub).
CLIENT_CERT_ALERTS = (
    ("CERTIFICATE_REQUIRED", "the broker wants a client certificate; set {s}.cert_file and {s}.key_file"),
    ("UNKNOWN_CA", "the broker does not trust our client certificate (issued by a CA it does not know); "
                   "check {s}.cert_file"),
    ("CERTIFICATE_EXPIRED", "the broker says our client certificate has expired; renew {s}.cert_file"),
    ("CERTIFICATE_REVOKED", "the broker says our client certificate was revoked; check {s}.cert_file"),
    ("BAD_CERTIFICATE", "the broker refused our client certificate; check {s}.cert_file"),
    ("CERTIFICATE_UNKNOWN", "the broker refused our client certificate; check {s}.cert_file"),
)


def describe_client_cert_alert(text: str, section: str = "sync") -> str | None:
    """"TLS: ..." when ``text`` (an SSL error or paho's log line) names a client-certificate alert."""
    upper = (text or "").upper()
    for alert, advice in CLIENT_CERT_ALERTS:
        if alert in upper:
            return f"TLS: {advice.format(s=section)} ({alert.lower().replace('_', ' ')})"
    return None


def connect_failure(exc: BaseException, section: str = "sync") -> tuple[str, bool]:
    """(reason, refused) for a failed ``Link.connect()``: refused when the broker turned down our client
    certificate, which retrying will not fix."""
    refused = isinstance(exc, ssl.SSLError) and describe_client_cert_alert(str(exc), section) is not None
    return describe_error(exc, section), refused


def lost_reason(link: Link) -> tuple[str, bool]:
    """(reason, refused) for a connection that went away. A broker that wants mutual TLS and dislikes our
    certificate says so in a TLS alert, which under TLS 1.3 only shows in paho's error log line."""
    alert = describe_client_cert_alert(link.last_error, link.params.section)
    if alert:
        return alert, True
    return ("connection lost" if link.connected else "connection closed before CONNACK"), False


def describe_error(exc: BaseException, section: str = "sync") -> str:
    """A reason an administrator can act on, for the status page."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS: the broker's certificate is not trusted ({exc.verify_message}); check {section}.ca_file"
    if isinstance(exc, ssl.SSLError) and (alert := describe_client_cert_alert(str(exc), section)):
        return alert
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed: {exc.reason or exc}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the broker running on that port?)"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "connection timed out (no route to the broker?)"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the broker's name: {exc.strerror}"
    if isinstance(exc, OSError):
        return f"network error: {exc.strerror or exc}"
    return f"{type(exc).__name__}: {exc}"


AUTH_CODES = {134: "bad user name or password", 135: "not authorized", 140: "bad authentication method"}


def describe_connack(rc, section: str = "sync") -> tuple[str, bool]:
    """(text, is_auth_failure) for a refused CONNACK."""
    value = getattr(rc, "value", rc)
    if value in AUTH_CODES:
        return f"the broker refused our credentials ({AUTH_CODES[value]}); check {section}.username/password", True
    return f"the broker refused the connection ({rc})", False


class Backoff:
    """Doubling delay between ``low`` and ``high`` with jitter (half to full), so a fleet of boxes that
    lost the hub together does not reconnect in lock-step."""

    def __init__(self, low: float = 1.0, high: float = 60.0, rng: random.Random | None = None):
        self.low, self.high = low, high
        self.attempt = 0
        self._rng = rng or random.Random()

    def next(self) -> float:
        ceiling = min(self.high, self.low * (2 ** self.attempt))
        self.attempt += 1
        return max(self.low, self._rng.uniform(ceiling / 2, ceiling))

    def reset(self) -> None:
        self.attempt = 0


# ("connack", rc, session_present, props) / ("disconnect", rc) / ("puback", mid, rc) / ("message", msg) /
# ("suback", mid, reason codes)
Event = tuple


class Link:
    """One paho client per connection attempt; events are handed over through a deque."""

    def __init__(self, params: BrokerParams, client_id: str, *, clean_start: bool = False,
                 session_expiry: int = 0, will: tuple[str, bytes] | None = None, manual_ack: bool = False,
                 max_inflight: int = 20):
        self.params = params
        self.client_id = client_id
        self.clean_start = clean_start
        self.session_expiry = session_expiry
        self.will = will
        self.manual_ack = manual_ack
        self.max_inflight = max_inflight
        self.client: mqtt.Client | None = None
        self.connected = False
        self.connecting_since = 0.0
        self.events: collections.deque = collections.deque()
        self.bytes_out = 0
        self.last_error = ""  # paho's last error log line for this attempt (it swallows socket errors)
        self._gen: object | None = None
        self._ssl = tls_context(params) if params.tls else None

    def connect(self) -> None:
        """Blocking TCP (+TLS) connect and CONNECT; raises OSError/ssl.SSLError on failure."""
        self.close()
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5,
                        manual_ack=self.manual_ack)
        c.suppress_exceptions = True
        c.connect_timeout = self.params.connect_timeout
        # paho cannot change this once connected; we never exceed it (our own cap is at most this).
        c.max_inflight_messages_set(self.max_inflight)
        if self.params.username:
            c.username_pw_set(self.params.username, self.params.password or None)
        if self._ssl is not None:
            c.tls_set_context(self._ssl)
        if self.will:
            c.will_set(self.will[0], self.will[1], qos=1, retain=True)
        gen = object()  # events of an older client are ignored
        c.on_connect = lambda cl, ud, flags, rc, props: self._event(gen, "connack", rc, flags.session_present, props)
        c.on_disconnect = lambda cl, ud, flags, rc, props: self._event(gen, "disconnect", rc)
        c.on_publish = lambda cl, ud, mid, rc, props: self._event(gen, "puback", mid, rc)
        c.on_message = lambda cl, ud, msg: self._event(gen, "message", msg)
        c.on_subscribe = lambda cl, ud, mid, codes, props: self._event(gen, "suback", mid, codes)
        c.on_log = lambda cl, ud, level, buf: self._log(gen, level, buf)
        self._gen = gen
        self.last_error = ""
        props = Properties(PacketTypes.CONNECT)
        if self.session_expiry:
            props.SessionExpiryInterval = self.session_expiry
        self.client = c
        self.connecting_since = time.monotonic()
        try:
            c.connect(self.params.host, self.params.port, keepalive=self.params.keepalive,
                      clean_start=self.clean_start, properties=props)
        except BaseException:
            if self._ssl is not None and self._ssl.last_socket is not None:
                self._ssl.last_socket.close()
            self.close()
            raise
        finally:
            if self._ssl is not None:
                self._ssl.last_socket = None

    def _event(self, gen, *ev) -> None:
        try:
            if gen is self._gen:
                self.events.append(ev)
        except Exception:
            log.exception("dropping an MQTT event")

    def _log(self, gen, level, buf) -> None:
        if level == mqtt.MQTT_LOG_ERR and gen is self._gen:
            self.last_error = str(buf)[:500]

    def loop(self, timeout: float) -> bool:
        """Run the network once; False when the connection is gone."""
        if self.client is None:
            return False
        try:
            rc = self.client.loop(timeout)
        except (OSError, ValueError) as exc:
            log.info("connection lost: %s", exc)
            return False
        return rc == mqtt.MQTT_ERR_SUCCESS

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False,
                user: list[tuple[str, str]] | None = None, content_type: str | None = None) -> int | None:
        """Queue a publish; returns its mid, or None when there is no connection."""
        if self.client is None:
            return None
        props = None
        if user or content_type:
            props = Properties(PacketTypes.PUBLISH)
            if user:
                props.UserProperty = user
            if content_type:
                props.ContentType = content_type
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=props)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return None
        self.bytes_out += len(payload)
        return info.mid

    def subscribe(self, topics: list[str], qos: int = 1) -> int | None:
        """Returns the SUBSCRIBE's mid (its SUBACK arrives as a "suback" event), or None."""
        if self.client is not None and topics:
            rc, mid = self.client.subscribe([(t, qos) for t in topics])
            return mid if rc == mqtt.MQTT_ERR_SUCCESS else None
        return None

    def unsubscribe(self, topics: list[str]) -> None:
        if self.client is not None and topics:
            self.client.unsubscribe(topics)

    def ack(self, mid: int) -> None:
        if self.client is not None:
            self.client.ack(mid, 1)

    def disconnect(self) -> None:
        if self.client is not None and self.connected:
            self.client.disconnect()
            for _ in range(20):  # flush the DISCONNECT
                if not self.loop(0.05):
                    break
        self.close()

    def close(self) -> None:
        if self.client is not None:
            self.client._reset_sockets()
        self.client = None
        self.connected = False
        self.events.clear()
        self._gen = None


def receive_maximum(props) -> int:
    """The broker's Receive Maximum from CONNACK properties (65535 when absent, per MQTT v5)."""
    return int(getattr(props, "ReceiveMaximum", 65535) or 65535)


def user_properties(msg) -> dict[str, str]:
    props = getattr(msg, "properties", None)
    return dict(getattr(props, "UserProperty", None) or [])
