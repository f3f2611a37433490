"""``classroom-edge hub``: the district side.

``hub`` (or ``hub ingest``) runs one ingest worker until SIGTERM; start as many as needed (e.g. a systemd
template unit ``classroom-edge-hub@N``), they split the load through the shared subscription.
``hub publish-model`` / ``hub publish-content`` sign and publish an update; ``hub keygen`` makes the
signing key and prints the public key for the boxes' ``sync.trusted_keys``.
"""
from __future__ import annotations

import json
import logging
import signal
import sys
import tempfile
import threading
from pathlib import Path

from appliance.cli.common import config_from_args
from appliance.errors import BadRequest

log = logging.getLogger(__name__)


def register(sub) -> None:
    p = sub.add_parser("hub", help="district hub: ingest worker (default), publish updates, keys")
    p.add_argument("--config", dest="sub_config", help="config file")
    p.add_argument("--worker", type=int, default=0, help="worker number (part of the MQTT client id)")
    p.set_defaults(func=_ingest)
    hs = p.add_subparsers(dest="hub_command", metavar="ACTION")
    ing = hs.add_parser("ingest", help="run one ingest worker until stopped (the default)")
    ing.add_argument("--config", dest="sub_config")
    ing.add_argument("--worker", type=int, default=0)
    ing.set_defaults(func=_ingest)
    pm = hs.add_parser("publish-model", help="sign and publish a model version to every box")
    pm.add_argument("--config", dest="sub_config")
    pm.add_argument("--name", required=True)
    pm.add_argument("--version", required=True)
    src = pm.add_mutually_exclusive_group(required=True)
    src.add_argument("--dir", help="model version directory (model.json and its files)")
    src.add_argument("--file", help="an already packed model archive (.tar)")
    pm.set_defaults(func=_publish_model)
    pc = hs.add_parser("publish-content", help="sign and publish a course bundle to every box")
    pc.add_argument("--config", dest="sub_config")
    pc.add_argument("--course", required=True)
    pc.add_argument("--version", required=True)
    pc.add_argument("--file", required=True, help="course bundle (.zip)")
    pc.set_defaults(func=_publish_content)
    kg = hs.add_parser("keygen", help="create the announcement signing key; prints the public key")
    kg.add_argument("--out", required=True, help="where to write the private key (must not exist)")
    kg.set_defaults(func=_keygen)
    st = hs.add_parser("stats", help="print event counts per site and device as JSON")
    st.add_argument("--config", dest="sub_config")
    st.set_defaults(func=_stats)


def _ingest(args) -> int:
    from appliance.hub.federated import for_ingest
    from appliance.hub.ingest import IngestWorker

    cfg = config_from_args(args)
    # Worker 0 also runs the federated aggregator (one sequence of global versions per district).
    fl = for_ingest(cfg, args.worker)
    worker = IngestWorker(cfg, index=args.worker, on_update=fl.wake if fl else None)
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGTERM, signal.SIGINT)}
    notify = _notifier()
    try:
        worker.start()
        if fl is not None:
            fl.start()
        notify("READY=1")
        while not stop.wait(1.0) and worker.alive:
            notify("WATCHDOG=1")
        notify("STOPPING=1")
    finally:
        if fl is not None:
            fl.stop()
            fl.close()
        worker.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("hub worker stopped: %s", worker.status())
    return 0 if stop.is_set() else 1  # the worker died on its own


def _notifier():
    try:
        from appliance.system.notify import notify
    except ImportError:
        return lambda state: False
    return lambda state: notify(state)


def _publish_model(args) -> int:
    from appliance.hub.publisher import publish
    from appliance.sync.handlers import pack_model_dir

    cfg = config_from_args(args)
    if args.dir:
        if not (Path(args.dir) / "model.json").is_file():
            raise BadRequest(f"{args.dir} has no model.json")
        with tempfile.TemporaryDirectory() as tmp:
            archive = Path(tmp) / "model.tar"
            pack_model_dir(Path(args.dir), archive)
            m = publish(cfg, "model", args.name, args.version, archive)
    else:
        m = publish(cfg, "model", args.name, args.version, args.file)
    print(json.dumps({"published": m.topic, "version": m.version, "sha256": m.sha256, "size": m.size,
                      "chunks": len(m.chunks)}))
    return 0


def _publish_content(args) -> int:
    from appliance.hub.publisher import publish

    cfg = config_from_args(args)
    if not Path(args.file).is_file():
        raise BadRequest(f"{args.file} does not exist")
    m = publish(cfg, "content", args.course, args.version, args.file)
    print(json.dumps({"published": m.topic, "version": m.version, "sha256": m.sha256, "size": m.size,
                      "chunks": len(m.chunks)}))
    return 0


def _keygen(args) -> int:
    from appliance.hub.publisher import generate_key

    try:
        pub = generate_key(args.out)
    except FileExistsError:
        raise BadRequest(f"{args.out} already exists; refusing to overwrite a signing key") from None
    print(json.dumps({"private_key_file": args.out, "public_key": pub}))
    print("add the public key to sync.trusted_keys on every box", file=sys.stderr)
    return 0


def _stats(args) -> int:
    from appliance.hub.store import HubStore

    store = HubStore(config_from_args(args)).open()
    try:
        rows = store.query("SELECT site, device, count(*) FROM hub_events GROUP BY site, device ORDER BY site, device")
        updates = store.query("SELECT count(*) FROM hub_fl_updates")[0][0]
    finally:
        store.close()
    print(json.dumps({"events": [{"site": s, "device": d, "events": n} for s, d, n in rows], "updates": updates}))
    return 0
