"""``classroom-edge users add|list|edit|disable|enable|passwd|unlock`` and ``classroom-edge classes list``.

The first admin of a box can be created here instead of on the one-time /setup page (provisioning).
Passwords are read from a prompt (asked twice) or, for scripts, one line on stdin with
``--password-stdin``; never from the command line, where ``ps`` and shell history would keep them.
"""
from __future__ import annotations

import getpass
import json
import sys

from appliance.cli.common import config_from_args, database_or_note, require_database
from appliance.errors import BadRequest, NotFound


def register(sub) -> None:
    p = sub.add_parser("users", help="manage teacher and admin accounts")
    usub = p.add_subparsers(dest="users_command", metavar="ACTION", required=True)
    add = usub.add_parser("add", help="create a teacher or admin account")
    add.add_argument("--role", choices=("admin", "teacher"), required=True)
    add.add_argument("--username", required=True)
    add.add_argument("--display-name", default="")
    secret = add.add_mutually_exclusive_group()
    secret.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    secret.add_argument("--password-hash-stdin", action="store_true",
                        help="read an argon2id hash (made elsewhere, e.g. by provisioning) from stdin")
    add.set_defaults(func=_add)
    hsh = usub.add_parser("hash", help="print the argon2id hash of a password (for provisioning variables)")
    hsh.add_argument("--password-stdin", action="store_true")
    hsh.set_defaults(func=_hash)
    lst = usub.add_parser("list", help="list teacher and admin accounts (JSON)")
    lst.set_defaults(func=_list)
    ed = usub.add_parser("edit", help="correct an account's name or change its role (the username stays)")
    ed.add_argument("username")
    ed.add_argument("--display-name", help="the name shown on the pages")
    ed.add_argument("--role", choices=("admin", "teacher"))
    ed.set_defaults(func=_edit)
    for name, disabled in (("disable", True), ("enable", False)):
        d = usub.add_parser(name, help=f"{name} an account")
        d.add_argument("username")
        d.set_defaults(func=lambda a, disabled=disabled: _set_disabled(a, disabled))
    pw = usub.add_parser("passwd", help="set a new password")
    pw.add_argument("username")
    pw.add_argument("--password-stdin", action="store_true")
    pw.set_defaults(func=_passwd)
    un = usub.add_parser("unlock", help="lift a sign-in pause after too many wrong tries, now")
    who = un.add_mutually_exclusive_group(required=True)
    who.add_argument("username", nargs="?", help="a teacher's or admin's username")
    who.add_argument("--address", help="a device's IP address (every account tried from it)")
    un.set_defaults(func=_unlock)
    for q in (add, lst, ed, pw, un) + tuple(usub.choices[n] for n in ("disable", "enable")):
        q.add_argument("--data-dir", help="override [storage] data_dir")

    c = sub.add_parser("classes", help="list classes and their sizes")
    csub = c.add_subparsers(dest="classes_command", metavar="ACTION", required=True)
    cl = csub.add_parser("list", help="list classes (JSON)")
    cl.add_argument("--data-dir")
    cl.set_defaults(func=_classes)


def _db(args, existing: bool = True):
    """The box's database; ``existing=False`` only for ``users add``, which may run before the first
    start (provisioning the first admin)."""
    from appliance.store import open_database

    cfg = config_from_args(args, storage={"data_dir": args.data_dir})
    if existing:
        require_database(cfg)
    return open_database(cfg)


def read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            raise BadRequest("--password-stdin: nothing was written to stdin.")
        return line.rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Password again: "):
        raise BadRequest("The two passwords are different.")
    return first


def read_password_hash() -> str:
    from appliance.people.passwords import check_password_hash

    line = sys.stdin.readline().strip()
    if not line:
        raise BadRequest("--password-hash-stdin: nothing was written to stdin.")
    check_password_hash(line)
    return line


def _add(args) -> int:
    from appliance.people.accounts import add_staff, create_staff

    if args.password_hash_stdin:
        password_hash = read_password_hash()
        db = _db(args, existing=False)
        try:
            db.write(lambda c: create_staff(c, role=args.role, username=args.username,
                                            display_name=args.display_name or args.username, password_hash=password_hash))
        finally:
            db.close()
        print(f"created {args.role} account '{args.username.strip().lower()}'")
        return 0
    password = read_password(args.password_stdin)
    db = _db(args, existing=False)
    try:
        add_staff(db, role=args.role, username=args.username, password=password, display_name=args.display_name)
    finally:
        db.close()
    print(f"created {args.role} account '{args.username.strip().lower()}'")
    return 0


def _hash(args) -> int:
    from appliance.people.passwords import check_password_rules, hash_password

    password = read_password(args.password_stdin)
    check_password_rules(password)
    print(hash_password(password))
    return 0


def _print_list(args, rows_of) -> int:
    """A list command: ``rows_of(conn)`` as JSON (names as written), or ``[]`` with a note on stderr on a
    box without a database yet (provisioning lists the accounts of a box that has not started)."""
    from appliance.store import open_database

    cfg = config_from_args(args, storage={"data_dir": args.data_dir})
    if not database_or_note(cfg):
        print("[]")
        return 0
    db = open_database(cfg)
    try:
        with db.read() as conn:
            rows = rows_of(conn)
    finally:
        db.close()
    print(json.dumps(rows, indent=2, ensure_ascii=False))
    return 0


def _list(args) -> int:
    from appliance.people.accounts import list_staff

    return _print_list(args, list_staff)


def _user_id(db, username: str) -> int:
    with db.read() as conn:
        row = conn.execute("SELECT id FROM users WHERE username = ?", (username.strip().lower(),)).fetchone()
    if row is None:
        raise NotFound(f"There is no account '{username}'.")
    return row[0]


def _set_disabled(args, disabled: bool) -> int:
    from appliance.people.accounts import set_disabled

    db = _db(args)
    try:
        uid = _user_id(db, args.username)
        db.write(lambda c: set_disabled(c, uid, disabled))
    finally:
        db.close()
    print(f"{'disabled' if disabled else 'enabled'} '{args.username}'")
    return 0


def _edit(args) -> int:
    from appliance.people.accounts import update_staff

    if args.display_name is None and args.role is None:
        raise BadRequest("Say what to change: --display-name and/or --role.")
    db = _db(args)
    try:
        uid = _user_id(db, args.username)
        changed = db.write(lambda c: update_staff(c, uid, display_name=args.display_name, role=args.role))
    finally:
        db.close()
    print(f"'{args.username.strip().lower()}': " + (", ".join(f"{k} is now {v!r}" for k, v in changed.items())
                                                   if changed else "nothing to change"))
    return 0


def _passwd(args) -> int:
    from appliance.people.accounts import set_password
    from appliance.people.passwords import hash_password

    password = read_password(args.password_stdin)
    db = _db(args)
    try:
        uid = _user_id(db, args.username)
        new_hash = hash_password(password)
        db.write(lambda c: set_password(c, uid, new_hash))
    finally:
        db.close()
    print(f"password of '{args.username}' changed")
    return 0


def _classes(args) -> int:
    return _print_list(args, lambda conn: [dict(r) for r in conn.execute(
        "SELECT c.id, c.name, c.uses_pin, c.language, c.archived_at, t.username AS teacher,"
        " (SELECT COUNT(*) FROM class_members m WHERE m.class_id = c.id) AS students"
        " FROM classes c LEFT JOIN users t ON t.id = c.teacher_id ORDER BY c.name")])


def _unlock(args) -> int:
    from appliance.people.throttle import clear, clear_address

    db = _db(args)
    try:
        if args.address:
            removed, what = clear_address(db, args.address), f"address {args.address}"
        else:
            _user_id(db, args.username)  # a typo is named, not "unlocked"
            removed, what = clear(db, args.username.strip().lower()), f"'{args.username.strip().lower()}'"
    finally:
        db.close()
    print(f"{what} can sign in again ({removed} recent failed sign-in(s) forgotten)" if removed
          else f"{what} was not paused")
    return 0
