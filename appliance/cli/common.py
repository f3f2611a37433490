"""Helpers shared by the sub-commands: loading the config the same way everywhere."""
from __future__ import annotations

import logging
import os
from pathlib import Path

from appliance.config import DEFAULT_CONFIG_PATH, Config, load_config


def config_from_args(args, **overrides) -> Config:
    """The config named by ``--config`` (or the system one when present), with CLI overrides."""
    path = getattr(args, "config", None) or getattr(args, "sub_config", None)
    if path is None and DEFAULT_CONFIG_PATH.exists():
        path = DEFAULT_CONFIG_PATH
    cfg = load_config(path)
    overrides = {sec: {k: v for k, v in keys.items() if v is not None} for sec, keys in overrides.items()}
    overrides = {sec: keys for sec, keys in overrides.items() if keys}
    if overrides:
        cfg = cfg.replace(**overrides)
    setup_logging(getattr(args, "log_level", None) or cfg.logging.level)
    return cfg


def setup_logging(level: str) -> None:
    """Plain stderr logging, or journald with structured fields when systemd gave us a journal stream."""
    root = logging.getLogger()
    if root.handlers:
        return
    handler: logging.Handler | None = None
    if os.environ.get("JOURNAL_STREAM"):
        try:
            from appliance.system.journal import journal_handler

            handler = journal_handler()
        except ImportError:
            handler = None
    if handler is None:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level.upper())


def data_path(cfg: Config, *parts: str) -> Path:
    return Path(cfg.storage.data_dir).joinpath(*parts)


def require_database(cfg: Config) -> Path:
    """The box's database file, which must exist: a command that reads or changes what is on the box,
    run without ``--data-dir`` outside it, made an empty database in ./var and answered "no courses
    installed" or ``[]``."""
    from appliance.errors import NotFound

    path = data_path(cfg, cfg.storage.database)
    if not path.is_file():
        raise NotFound(f"there is no database at {path} (yet): is that the box's data directory? Name it "
                       "with --data-dir DIR (or --config FILE).")
    return path


def database_or_note(cfg: Config) -> bool:
    """For a list command: True when the box's database exists; else ``require_database``'s reason on
    stderr and False (the list is empty, and nothing is created: provisioning lists the accounts of a
    box not started yet)."""
    import sys

    from appliance.errors import NotFound

    try:
        require_database(cfg)
    except NotFound as exc:
        print(f"classroom-edge: {exc.message} Nothing to list.", file=sys.stderr)
        return False
    return True
