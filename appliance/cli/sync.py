"""``classroom-edge sync``: the relay as its own process (``classroom-edge-sync.service``).

Type=notify: ``READY=1`` once the relay thread runs -- connected, or offline and retrying, because an
absent uplink is the normal state of a classroom box, not a failed start. The watchdog is pinged only
while the relay's thread is alive and ticking. ``--status`` prints what the running relay last reported
(the same dict as the admin page) and exits 0 when it is online.
"""
from __future__ import annotations

import json
import logging
import sys

from appliance.cli.common import config_from_args, require_database

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 15.0


def register(sub) -> None:
    p = sub.add_parser("sync", help="relay the outbox to the district hub and take updates back (runs until stopped)")
    p.add_argument("--config", dest="sub_config", help="config file")
    p.add_argument("--status", action="store_true", help="print the running relay's status as JSON and exit")
    p.add_argument("--data-dir", help="override [storage] data_dir")
    p.set_defaults(func=_main)


def _attach_content(services) -> None:
    """The content store, so course updates from the hub can be imported by this process."""
    try:
        from appliance.content import attach
    except ImportError:
        log.info("content store not available in this build: course updates will be refused")
        return
    try:
        attach(services)
    except Exception as exc:  # noqa: BLE001 - the uplink must work even if content import cannot
        log.warning("content store could not start (course updates will be refused): %s", exc)


def _main(args) -> int:
    from appliance.federated.downlink import FederatedInstallHandler
    from appliance.runtime import Runtime
    from appliance.services import Services
    from appliance.sync.service import SyncService, read_status

    cfg = config_from_args(args, storage={"data_dir": args.data_dir})
    if args.status:
        require_database(cfg)  # a status read must not make an empty database somewhere else
    services = Services.open(cfg)
    try:
        if args.status:
            st = read_status(cfg, services.db)
            print(json.dumps(st, indent=2, sort_keys=True, default=str))
            return 0 if st.get("state") == "online" else 1
        if not cfg.sync.broker_url:
            print("classroom-edge: sync.broker_url is not set; there is no uplink to relay to", file=sys.stderr)
            return 1
        _attach_content(services)
        service = SyncService(cfg, services.db, FederatedInstallHandler(services))
        services.report_status("sync", service.status)
        runtime = Runtime(services, [service], stop_timeout=STOP_TIMEOUT_S)
        runtime.install_signal_handlers()
        runtime.start()
        runtime.run_until_stopped(watchdog_interval=None)
        return 1 if service.relay.failed else 0
    finally:
        services.close()
