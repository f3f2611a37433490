"""``classroom-edge run`` (everything in one process) and ``classroom-edge web`` (gunicorn)."""
from __future__ import annotations

import importlib
import logging
import subprocess
import sys

from appliance.cli.common import config_from_args
from appliance.system.malloc import limit_arenas

log = logging.getLogger(__name__)

# Optional parts of ``run``: (module, factory). A factory takes Services and returns a Part, or None
# when the part is switched off by config (no broker configured, mDNS disabled).
OPTIONAL_PARTS = (
    ("appliance.sync.service", "make_part"),
    ("appliance.discovery.service", "make_part"),
)


def register(sub) -> None:
    for name, helptext, func in (
        ("run", "start the whole appliance in one process (embedded default)", _run),
        ("web", "start only the web service (gunicorn, for systemd)", _web),
        ("prepare", "first-start work: migrations, the demo course, the default models (idempotent)", _prepare),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--config", dest="sub_config", help="config file")
        p.add_argument("--port", type=int, help="override [web] port")
        p.add_argument("--host", help="override [web] host")
        p.add_argument("--data-dir", help="override [storage] data_dir")
        p.set_defaults(func=func)


def _cfg(args):
    return config_from_args(args, web={"port": args.port, "host": args.host}, storage={"data_dir": args.data_dir})


def _run(args) -> int:
    from appliance.bootstrap import attach_components, prepare, warm_up
    from appliance.runtime import Runtime
    from appliance.services import Services
    from appliance.web.app import create_app
    from appliance.web.server import WaitressPart

    cfg = _cfg(args)
    limit_arenas(cfg.web.malloc_arenas)
    services = Services.open(cfg)
    prepare(services)
    attach_components(services)
    warm_up(services)
    parts = [WaitressPart(services, create_app(services), cfg.web.host, cfg.web.port, cfg.web.threads)]
    for module, factory in OPTIONAL_PARTS:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            continue
        make = getattr(mod, factory, None)
        part = make(services) if make is not None else None
        if part is not None:
            parts.append(part)
    runtime = Runtime(services, parts)
    runtime.install_signal_handlers()
    try:
        runtime.start()
        print(f"Classroom Edge is running: {parts[0].url}  (Ctrl-C to stop)", flush=True)
        runtime.run_until_stopped()
    finally:
        runtime.stop()
        services.close()
    return 0


def _prepare(args) -> int:
    from appliance.bootstrap import attach_components, prepare, warm_up
    from appliance.services import Services

    services = Services.open(_cfg(args))
    try:
        prepare(services)
        attach_components(services)
        warm_up(services)
    finally:
        services.close()
    return 0


def _web(args) -> int:
    from appliance.services import Services
    from appliance.web.server import gunicorn_server

    cfg = _cfg(args)
    # Migrations, the demo course and the models are done once before any worker starts, in a
    # short-lived child process: the master then never imports the model toolchain and stays small.
    # (A plain subprocess, not multiprocessing: its resource tracker would outlive the master.)
    cmd = [sys.executable, "-m", "appliance", "prepare"]
    for flag, value in (("--config", args.sub_config or getattr(args, "config", None)), ("--port", args.port),
                        ("--host", args.host), ("--data-dir", args.data_dir)):
        if value is not None:
            cmd += [flag, str(value)]
    if subprocess.run(cmd).returncode != 0:
        log.error("first-start preparation failed: %s", " ".join(cmd))
        return 1

    # Set in the master before gunicorn forks: the workers inherit the allocator's settings.
    limit_arenas(cfg.web.malloc_arenas)

    def wsgi_factory():
        from appliance.bootstrap import attach_components
        from appliance.web.app import create_app

        worker_services = Services.open(cfg, migrate=False)
        worker_services.serving_processes = cfg.web.workers
        attach_components(worker_services)
        return create_app(worker_services)

    try:
        server = gunicorn_server(cfg, wsgi_factory)
    except RuntimeError as exc:  # the port is taken: say so once and stop, systemd restarts later
        log.error("%s", exc)
        return 1
    server.run()
    return 0
