"""``classroom-edge train [--now] | train status | train rollback | train activate VERSION``.

``train`` is what the ``classroom-edge-train`` timer runs every night (and a teacher's button runs with
``--now``): one local training run whose update waits in the outbox for the uplink. It prints one JSON
line saying what it did; "nothing to do" outcomes (no global model yet, too few new answers) exit 0,
because a timer that fails every night for a new box would only teach people to ignore it.
"""
from __future__ import annotations

import json
import logging

from appliance.cli.common import config_from_args

log = logging.getLogger(__name__)


def register(sub) -> None:
    p = sub.add_parser("train", help="federated learning: train a local update, status, rollback")
    p.add_argument("--config", dest="sub_config", help="config file")
    p.add_argument("--now", action="store_true", help="train even if an update was made in the last hours")
    p.set_defaults(func=_train)
    ts = p.add_subparsers(dest="train_command", metavar="ACTION")
    st = ts.add_parser("status", help="serving version, candidates and why, updates sent, privacy budget (JSON)")
    st.add_argument("--config", dest="sub_config")
    st.set_defaults(func=_status)
    rb = ts.add_parser("rollback", help="serve the learner model version that served before the current one")
    rb.add_argument("--config", dest="sub_config")
    rb.set_defaults(func=_rollback)
    ac = ts.add_parser("activate", help="activate a global version the policy kept as a candidate")
    ac.add_argument("--config", dest="sub_config")
    ac.add_argument("version", type=int, help="global version number (see train status)")
    ac.set_defaults(func=_activate)


def _services(args):
    from appliance.services import Services

    return Services.open(config_from_args(args))


def _train(args) -> int:
    from appliance.federated.training import run_training

    services = _services(args)
    try:
        result = run_training(services, now=args.now)
    finally:
        services.close()
    print(json.dumps(result.to_json()))
    return 0


def _status(args) -> int:
    from appliance.federated.status import federated_status

    services = _services(args)
    try:
        print(json.dumps(federated_status(services), indent=2, default=str))
    finally:
        services.close()
    return 0


def _rollback(args) -> int:
    from appliance.federated.activation import rollback

    services = _services(args)
    try:
        print(json.dumps(rollback(services)))
    finally:
        services.close()
    return 0


def _activate(args) -> int:
    from appliance.federated.activation import activate_candidate

    services = _services(args)
    try:
        d = activate_candidate(services, args.version)
    finally:
        services.close()
    print(json.dumps({"version": d.version, "status": d.status, "reason": d.reason}))
    return 0
