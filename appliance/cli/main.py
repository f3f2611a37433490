"""The ``classroom-edge`` command: one sub-command group per module, wired here explicitly."""
from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import sys

from appliance import __version__
from appliance.errors import AppError

log = logging.getLogger(__name__)

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# Each module exposes ``register(subparsers)``; its parsers set ``func(args) -> int``.
COMMAND_MODULES = (
    "appliance.cli.config_cmd",
    "appliance.cli.serve",
    "appliance.cli.users",
    "appliance.cli.backup",
    "appliance.cli.content",
    "appliance.cli.models",
    "appliance.cli.sync",
    "appliance.cli.hub",
    "appliance.cli.mdns",
    "appliance.cli.train",
    "appliance.cli.learning",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="classroom-edge", description="Classroom Edge appliance.")
    parser.add_argument("--version", action="version", version=f"classroom-edge {__version__}")
    parser.add_argument("--config", help="config file (default /etc/classroom-edge/appliance.toml when it exists)")
    parser.add_argument("--log-level", default=None, type=str.upper, choices=LOG_LEVELS,
                        help="override [logging] level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod_name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(mod_name)
        except ModuleNotFoundError as exc:
            if exc.name == mod_name:
                continue  # that command group is not part of this build yet
            raise
        mod.register(sub)
    return parser


def describe_os_error(exc: OSError) -> str:
    where = f": {exc.filename}" if exc.filename else ""
    text = f"{exc.strerror or exc}{where}"
    if exc.errno in (errno.EACCES, errno.EPERM):
        text += " (run as the classroom-edge user, e.g. sudo -u classroom-edge, or as root)"
    elif exc.errno == errno.EROFS:
        text += " (the file system is read-only)"
    elif exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        text += " (the disk is full)"
    return text


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except AppError as exc:
        print(f"classroom-edge: {exc.message}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `classroom-edge models list --json | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 0
    except OSError as exc:  # a file the command needs: missing, unreadable, a full or read-only disk
        log.debug("%s failed", args.command, exc_info=True)  # the traceback, with --log-level debug
        print(f"classroom-edge: {describe_os_error(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
