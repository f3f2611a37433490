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

# encodings.idna is imported here, before any thread exists: the readiness thread's first probe would
# otherwise import the codec while gunicorn forks the workers, and a worker forked during that import
# inherits the module's import lock held by a thread it does not have; its first request (werkzeug
# encodes the host name with idna) then waits forever.
import encodings.idna  # noqa: F401
import http.client
import logging
import threading
import time
import urllib.parse

from appliance.loopback import host_port, http_url, loopback_for
from appliance.services import PartStatus, Services

log = logging.getLogger(__name__)

NOT_READY_WARNING_S = 30.0


def probe(url: str, timeout: float = 2.0) -> bool:
    """GET an http:// URL; True on 200.

    Plain http.client, not urllib: gunicorn's master calls this from its readiness thread while it
    forks the workers. urllib's first call builds an opener, and from Python 3.12 the opener builds a
    TLS context; that takes OpenSSL's locks while it loads the CA store. A worker forked at that moment
    inherits them held and hangs at its first ``hashlib.sha256()``: it never serves, and gunicorn kills
    it only after its timeout. Seen on a 16-core machine with Python 3.12.3 and OpenSSL 3.0.13: one of
    the two workers stuck at start; of 40 fresh processes forked while urllib made its first opener,
    17 children hung.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http":
        raise ValueError(f"the health probe speaks plain http, not {url!r}")
    conn = http.client.HTTPConnection(parts.hostname, 80 if parts.port is None else parts.port, timeout=timeout)
    try:
        conn.request("GET", (parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


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
        return http_url(self.host, self.port)

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


def _shared_metrics_dir(cfg) -> None:
    """One directory where every worker's Prometheus values meet, so /metrics sums the workers
    instead of showing whichever one answered. Emptied at start: old files are a dead run's counts."""
    import os
    import shutil
    from pathlib import Path

    cache = Path(cfg.storage.cache_dir) if cfg.storage.cache_dir else Path(cfg.storage.data_dir) / "cache"
    path = cache / "prometheus"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    # The admin page's per-worker figures, rewritten up to once a second by each worker while
    # students work: in memory under systemd (RuntimeDirectory, a tmpfs) so an SD card is not worn
    # by them; next to the Prometheus files otherwise.
    runtime = os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
    stats = Path(runtime) / "admin-stats" if runtime else path / "admin-stats"
    shutil.rmtree(stats, ignore_errors=True)
    from appliance.inference.settings import ADMIN_STATS_ENV

    os.environ[ADMIN_STATS_ENV] = str(stats)


def check_port_free(host: str, port: int) -> None:
    """Refuse to start when something already listens on the port.

    With a socket per worker (``web.reuse_port``) the gunicorn master binds nothing itself, and a
    worker that cannot bind exits and is spawned again, forever: a taken port would never stop the
    service, and a second copy of it would silently share the port. A plain bind (no SO_REUSEPORT)
    fails while any socket listens there, ours included, so this is asked before any worker exists.
    """
    import errno
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    probe_sock = socket.socket(family, socket.SOCK_STREAM)
    # SO_REUSEADDR (as gunicorn's own sockets): a restart right after a crash must not be refused for
    # the old connections in TIME_WAIT. On Linux it still fails while anything listens on the port.
    probe_sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe_sock.bind((host, port))
    except OSError as exc:
        why = "something else already listens there" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise RuntimeError(f"cannot listen on {host_port(host, port)}: {why} (web.host / web.port)") from None
    finally:
        probe_sock.close()


def _listen_once_ready(worker) -> None:
    """post_worker_init: a worker opens its own socket only after its app (and its models) loaded,
    so a respawned worker never holds connections while it warms up."""
    from gunicorn import sock, util

    worker.sockets = sock.create_sockets(worker.cfg, worker.log)
    for s in worker.sockets:
        util.close_on_exec(s)


def _no_socket_while_loading(_server, worker) -> None:
    """post_fork: drop the socket gunicorn bound for this worker; ``_listen_once_ready`` binds it."""
    for s in worker.sockets:
        s.close()
    worker.sockets = []


def gunicorn_server(cfg, wsgi_factory):
    """A gunicorn application whose workers build their app with ``wsgi_factory()`` after fork."""
    from gunicorn.app.base import BaseApplication

    from appliance.system import notify as sd

    reuse_port = cfg.web.reuse_port and cfg.web.port != 0
    if reuse_port:
        check_port_free(cfg.web.host, cfg.web.port)

    # gunicorn's arbiter would send READY=1 itself as soon as it booted, before any worker serves,
    # and that arms the watchdog early. Take the notify socket away from it (and from the workers)
    # and speak to systemd only from the readiness thread below.
    systemd_env = sd.detach()
    _shared_metrics_dir(cfg)
    probe_host = loopback_for(cfg.web.host)

    def readiness_and_watchdog(url):
        # The master is only a supervisor: it proves the workers answer, then keeps proving it. The
        # thread is a daemon because gunicorn's own shutdown owns the exit of the master process.
        started, warned = time.monotonic(), False
        while not probe(url):
            if not warned and time.monotonic() - started > NOT_READY_WARNING_S:
                # systemd would otherwise only say, minutes later, that the start timed out.
                log.warning("the web service does not answer on %s yet (%.0f s after the workers started)",
                            url, time.monotonic() - started)
                warned = True
            time.sleep(0.2)
        log.info("web service ready on %s", url)  # logged first: whoever hears READY=1 finds the line already written
        sd.ready(env=systemd_env)
        period = sd.watchdog_interval(systemd_env) or 5.0
        while True:
            time.sleep(period)
            # period is half of WatchdogSec: a probe may take half of it again, so the pings stay at most
            # 3/4 of WatchdogSec apart (a probe as long as the period put them at the deadline itself).
            if probe(url, timeout=max(1.0, period / 2)):
                sd.watchdog(env=systemd_env)

    def when_ready(server):
        # web.port = 0: the port the master bound (with a socket per worker, port 0 is never used).
        port = cfg.web.port or server.LISTENERS[0].getsockname()[1]
        url = http_url(probe_host, port) + "/api/v1/health"
        threading.Thread(target=readiness_and_watchdog, args=(url,), name="watchdog", daemon=True).start()

    def on_exit(_server):
        sd.stopping(env=systemd_env)

    def child_exit(_server, worker):
        # The dead worker's live gauges must not be summed into /metrics any more.
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)

    def worker_exit(_server, worker):
        # Join this worker's writer, batcher and import threads, so it exits at once on SIGTERM
        # instead of being killed after the graceful timeout.
        app = getattr(worker, "wsgi", None)
        services = getattr(app, "extensions", {}).get("ce") if app is not None else None
        if services is not None:
            services.close()

    class Server(BaseApplication):
        def load_config(self):
            options = {
                "bind": host_port(cfg.web.host, cfg.web.port),
                "workers": cfg.web.workers,
                "worker_class": "gthread",
                "threads": cfg.web.threads,
                "timeout": 60,
                "graceful_timeout": 10,
                "keepalive": 5,
                # Each worker listens on its own SO_REUSEPORT socket and the kernel spreads new
                # connections over them. On one shared socket the worker that wakes first takes
                # them, and 40 keep-alive connections can all land on one worker, which then serves
                # them on one core while the other idles (python -m bench.balance). Port 0 would
                # give every worker a different port. The price: connections already queued on a
                # worker that dies are reset (a shared socket would hand them to another worker).
                "reuse_port": reuse_port,
                "accesslog": None,
                "when_ready": when_ready,
                "on_exit": on_exit,
                "worker_exit": worker_exit,
                "child_exit": child_exit,
                "proc_name": "classroom-edge-web",
            }
            if reuse_port:
                options.update(post_fork=_no_socket_while_loading, post_worker_init=_listen_once_ready)
            if "control_socket_disable" in self.cfg.settings:
                # gunicorn 27's control socket (~/.gunicorn/gunicorn.ctl: add workers, reload, shut down)
                # is not used: systemd manages the service. Off, it is no file in the service user's
                # home and no extra thread in the master, which forks workers (see probe above).
                options["control_socket_disable"] = True
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self):
            return wsgi_factory()

    return Server()
