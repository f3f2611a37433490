"""Production WSGI serving.

Two shapes, one app:
- ``WaitressPart``: the web server as a part of ``classroom-edge run`` (one process, threads), so a
  laptop needs nothing but Python.
- ``GunicornServer``: ``classroom-edge web`` on a box: a pre-fork master with threaded workers, so both
  cores serve requests; every worker opens its own database handles and loads the models once, shared
  by its threads. The master sends READY=1 only after a real request to the app succeeded, and keeps
  the systemd watchdog fed only while the app keeps answering, so a hung server is restarted.
"""
from __future__ import annotations

import logging
import threading
import time
import urllib.request

from appliance.services import PartStatus, Services

log = logging.getLogger(__name__)


def probe(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status == 200
    except OSError:
        return False


class WaitressPart:
    name = "web"
    essential = True

    def __init__(self, services: Services, app, host: str, port: int, threads: int):
        from waitress import create_server

        self.services = services
        # Bound in the constructor so a port conflict fails the start, not a thread later.
        self.server = create_server(app, host=host, port=port, threads=threads, ident="classroom-edge",
                                    channel_timeout=30, connection_limit=400)
        self.host, self.port = host, self.server.effective_port
        self._thread = threading.Thread(target=self.server.run, name="web-server")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 15
        while not probe(self.url + "/api/v1/health"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"web server did not answer on {self.url}")
            time.sleep(0.05)
        log.info("serving on %s", self.url)

    def stop(self, timeout: float) -> None:
        def close_all():
            for channel in list(self.server._map.values()):
                channel.close()

        # Closing from inside the server's own loop avoids racing its select() on a closed socket.
        self.server.trigger.pull_trigger(close_all)
        self._thread.join(timeout)
        self.server.task_dispatcher.shutdown(timeout=timeout)

    def status(self) -> PartStatus:
        alive = self._thread.is_alive()
        return PartStatus(self.name, "ok" if alive else "failed", self.url if alive else "server thread ended")


def gunicorn_server(cfg, wsgi_factory):
    """A gunicorn application whose workers build their app with ``wsgi_factory()`` after fork."""
    from gunicorn.app.base import BaseApplication

    from appliance.runtime import notify

    health_url = f"http://{'127.0.0.1' if cfg.web.host in ('0.0.0.0', '') else cfg.web.host}:{cfg.web.port}/api/v1/health"

    def when_ready(_server):
        threading.Thread(target=_readiness_and_watchdog, args=(health_url,), name="watchdog", daemon=True).start()

    def _readiness_and_watchdog(url):
        # The master is only a supervisor: it proves the workers answer, then keeps proving it. This
        # thread dies with the master (daemon) because gunicorn's own shutdown owns the process exit.
        while not probe(url):
            time.sleep(0.2)
        notify("READY=1")
        log.info("web service ready on %s", url)
        from appliance.runtime import watchdog_period

        period = watchdog_period()
        while True:
            time.sleep(period)
            if probe(url, timeout=10):
                notify("WATCHDOG=1")

    def on_exit(_server):
        notify("STOPPING=1")

    class Server(BaseApplication):
        def load_config(self):
            options = {
                "bind": f"{cfg.web.host}:{cfg.web.port}",
                "workers": cfg.web.workers,
                "worker_class": "gthread",
                "threads": cfg.web.threads,
                "timeout": 60,
                "graceful_timeout": 10,
                "keepalive": 5,
                "accesslog": None,
                "when_ready": when_ready,
                "on_exit": on_exit,
                "proc_name": "classroom-edge-web",
            }
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self):
            return wsgi_factory()

    return Server()
