"""``classroom-edge mdns``: the advertiser as its own process (``classroom-edge-mdns.service``).

Type=notify contract: ``READY=1`` only once the box is really announced (the web service answered its
health URL and a name was claimed), ``WATCHDOG=1`` from the advertiser's control loop, ``STOPPING=1``
when SIGTERM arrives, then goodbye packets and a bounded shutdown. ``--status`` prints what the running
advertiser last reported (the same JSON the admin page shows).
"""
from __future__ import annotations

import json
import logging
import signal
import sys
import threading

from appliance.cli.common import config_from_args
from appliance.discovery.service import DiscoveryService
from appliance.discovery.status import read_status
from appliance.system import notify

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 10.0


class _SystemdNotifier:
    """The three messages the advertiser sends, bound to ``appliance.system.notify``."""

    def ready(self, status: str = "") -> None:
        notify.ready(status or None)

    def watchdog(self) -> None:
        notify.watchdog()

    def status(self, text: str) -> None:
        notify.status(text)


def register(sub) -> None:
    p = sub.add_parser("mdns", help="announce the box over mDNS and list other boxes (runs until stopped)")
    p.add_argument("--config", dest="sub_config", help="config file")
    p.add_argument("--status", action="store_true", help="print the running advertiser's status as JSON and exit")
    p.set_defaults(func=_main)


def _main(args) -> int:
    cfg = config_from_args(args)
    if args.status:
        status = read_status(cfg)
        print(json.dumps(status, indent=2, sort_keys=True))
        return 0 if status.get("state") == "advertising" else 1
    if not cfg.mdns.enabled:
        print("classroom-edge: mdns.enabled is false; set it in [mdns] to announce this box", file=sys.stderr)
        return 1
    return run(DiscoveryService(cfg, notifier=_SystemdNotifier()))


def run(service: DiscoveryService) -> int:
    """Run until SIGTERM/SIGINT or until the advertiser fails; 0 on a clean stop."""
    stop = threading.Event()

    def on_signal(signum, _frame):
        log.info("received %s, withdrawing the mDNS records", signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        service.start()
        while not stop.is_set() and service.alive:
            stop.wait(0.5)
        notify.stopping("withdrawing mDNS records")
        clean = service.stop(STOP_TIMEOUT_S)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if service.failed:
        print(f"classroom-edge: mDNS advertiser failed: {service.failed}", file=sys.stderr)
        return 1
    return 0 if clean else 1
