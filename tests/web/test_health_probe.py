"""The health probe gunicorn's master runs from a thread while it forks the workers."""
from __future__ import annotations

import http.server
import socket
import ssl
import threading
import urllib.request

import pytest

from appliance.web.server import probe


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the http.server hook's name
        self.send_response(200 if self.path == "/ok" else 503)
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
