"""``classroom-edge config check|show|docs``."""
from __future__ import annotations

import json
import sys

from appliance.config import documentation_markdown, load_config
from appliance.errors import ConfigError


def register(sub) -> None:
    p = sub.add_parser("config", help="check or show the configuration")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = csub.add_parser("check", help="exit 0 if the config is valid, 1 with the reason if not")
    check.add_argument("--config", dest="sub_config", help="config file to check")
    check.set_defaults(func=_check)
    show = csub.add_parser("show", help="print the merged config as JSON (secrets masked)")
    show.add_argument("--config", dest="sub_config")
    show.add_argument("--sources", action="store_true", help="also print where each value came from")
    show.set_defaults(func=_show)
    docs = csub.add_parser("docs", help="print the config reference (Markdown)")
    docs.set_defaults(func=lambda a: print(documentation_markdown()) or 0)


def _path(args):
    return getattr(args, "sub_config", None) or getattr(args, "config", None)


def _check(args) -> int:
    from appliance.config_checks import problems

    try:
        cfg = load_config(_path(args))
    except ConfigError as exc:
        print(f"config error: {exc.message}", file=sys.stderr)
        return 1
    found = problems(cfg)
    for message in found:
        print(f"config error: {message}", file=sys.stderr)
    if found:
        return 1
    print("config ok")
    return 0


def _show(args) -> int:
    cfg = load_config(_path(args))
    out = {"config": cfg.dump(masked=True)}
    if args.sources:
        out["sources"] = cfg.sources
    print(json.dumps(out, indent=2))
    return 0
