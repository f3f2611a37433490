"""``classroom-edge backup PATH`` and ``classroom-edge restore PATH``."""
from __future__ import annotations

import json

from appliance.cli.common import config_from_args


def register(sub) -> None:
    p = sub.add_parser("backup", help="write a consistent copy of the database to PATH (while running)")
    p.add_argument("path")
    p.add_argument("--data-dir")
    p.set_defaults(func=_backup)
    r = sub.add_parser("restore", help="replace the database with a backup (stop the services first)")
    r.add_argument("path")
    r.add_argument("--data-dir")
    r.set_defaults(func=_restore)


def _open(args):
    from appliance.store import open_database

    cfg = config_from_args(args, storage={"data_dir": args.data_dir})
    return open_database(cfg)


def _backup(args) -> int:
    from appliance.store.backup import backup_to

    db = _open(args)
    try:
        print(json.dumps(backup_to(db, args.path)))
    finally:
        db.close()
    return 0


def _restore(args) -> int:
    from appliance.store.backup import restore_from

    db = _open(args)
    try:
        print(json.dumps(restore_from(db, args.path)))
    finally:
        db.close()
    return 0
