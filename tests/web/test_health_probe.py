"""The health probe gunicorn's master runs from a thread while it forks the workers."""
from __future__ import annotations

import http.server
import socket
import ssl
import threading
import urllib.request

import pytest

from appliance.loopback import http_url
from appliance.web.server import probe


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the http.server hook's name
        self.send_response(200 if self.path.split("?")[0] == "/ok" else 503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args):
        pass


@pytest.fixture
def health_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_probe_answers_without_any_tls_machinery(health_server, monkeypatch):
    """From Python 3.12 urllib's first call builds a TLS context, taking OpenSSL's locks; a worker forked
    meanwhile inherits them held and hangs at its first hashlib call. The probe must touch neither."""
    def refuse(*_args, **_kwargs):
        raise AssertionError("the master's probe went through urllib or made a TLS context")

    monkeypatch.setattr(ssl, "SSLContext", refuse)
    monkeypatch.setattr(ssl, "create_default_context", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(urllib.request, "build_opener", refuse)
    assert probe(health_server + "/ok") is True
    assert probe(health_server + "/down") is False, "only a 200 is healthy"


def test_probe_says_false_when_nothing_listens():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert probe(f"http://127.0.0.1:{port}/ok", timeout=1.0) is False


def test_probe_reaches_an_ipv6_server_and_keeps_the_query():
    seen = []

    class V6(http.server.ThreadingHTTPServer):
        address_family = socket.AF_INET6

    class Handler(_Health):
        def do_GET(self):  # noqa: N802
            seen.append(self.path)
            super().do_GET()

    assert http_url("::1", 8080) == "http://[::1]:8080" and http_url("127.0.0.1", 8080) == "http://127.0.0.1:8080"
    try:
        server, host = V6(("::1", 0), Handler), "::1"
    except OSError:  # a container without IPv6: the query is still checked, over IPv4
        server, host = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler), "127.0.0.1"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert probe(http_url(host, server.server_address[1]) + "/ok?deep=1") is True and seen == ["/ok?deep=1"]
    finally:
        server.shutdown()
        server.server_close()


def test_probe_refuses_what_it_cannot_speak():
    with pytest.raises(ValueError, match="plain http"):
        probe("https://127.0.0.1:1/ok")


def test_the_wildcard_addresses_are_probed_through_loopback(monkeypatch):
    from appliance import loopback

    assert loopback.loopback_for("0.0.0.0") == loopback.loopback_for("") == "127.0.0.1"
    assert loopback.loopback_for("192.168.4.2") == "192.168.4.2" and loopback.loopback_for("::1") == "::1"
    monkeypatch.setattr(loopback, "has_ipv6_loopback", lambda: True)
    assert loopback.loopback_for("::") == "::1"
    # IPv6 switched off by sysctl: "::" still binds and takes IPv4, but there is no ::1 to probe.
    monkeypatch.setattr(loopback, "has_ipv6_loopback", lambda: False)
    assert loopback.loopback_for("::") == "127.0.0.1"

