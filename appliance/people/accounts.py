"""People on the box: creating teachers, admins and students, and changing their credentials.

Every function that writes takes a connection inside a ``db.write`` transaction and records an
``account`` event in the outbox in that same transaction (DESIGN.md: every fact the hub needs leaves
through the outbox). Events carry the stable ``uid``, never the row id, and never a child's name: the
district needs to count and link learners, not to know who they are.
"""
from __future__ import annotations

import logging
import re
import sqlite3
import unicodedata
import uuid

from flask_babel import lazy_gettext as _

from appliance.errors import BadRequest, Conflict, NotFound
from appliance.people.passwords import hash_password, hash_pin
from appliance.people.throttle import clear_in, student_account
from appliance.store.database import now_iso
from appliance.sync import outbox

log = logging.getLogger(__name__)

STAFF_ROLES = ("teacher", "admin")
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,39}$")
MAX_NAME = 60

# Picture keys for students (drawn in static/avatars.svg); a child finds "the orange fish" without reading.
AVATARS = ("star", "heart", "moon", "sun", "leaf", "fish", "flower", "cloud", "bolt", "drop", "kite",
           "apple", "bell", "boat", "tree", "house")
AVATAR_COLOURS = 6


def clean_name(name: str) -> str:
    # Control characters (a NUL from a badly decoded file) would make a name that looks blank.
    name = "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in (name or ""))
    name = " ".join(name.split())
    if not name:
        raise BadRequest(_("Please type a name."))
    if len(name) > MAX_NAME:
        raise BadRequest(_("Names can have at most %(n)s characters.", n=MAX_NAME))
    return name


def clean_username(username: str) -> str:
    username = (username or "").strip().lower()
    if not USERNAME_RE.match(username):
        raise BadRequest(_("A username has 2-40 characters: lower-case letters, digits, '.', '_' or '-'."))
    return username


def _event(conn: sqlite3.Connection, action: str, uid: str, role: str, **extra) -> None:
    outbox.enqueue(conn, "account", {"action": action, "user_uid": uid, "role": role, **extra})


def create_staff(conn: sqlite3.Connection, *, role: str, username: str, display_name: str,
                 password_hash: str, language: str | None = None) -> int:
    """Insert a teacher or admin. The password is hashed by the caller, outside the writer thread."""
    if role not in STAFF_ROLES:
        raise BadRequest(f"role must be one of {', '.join(STAFF_ROLES)}")
    username = clean_username(username)
    if conn.execute("SELECT 1 FROM users WHERE username = ?", (username,)).fetchone():
        raise Conflict(_("The username '%(name)s' is already taken.", name=username))
    uid = str(uuid.uuid4())
    cur = conn.execute(
        "INSERT INTO users (role, username, display_name, password_hash, language, uid, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (role, username, clean_name(display_name or username), password_hash, language, uid, now_iso()),
    )
    _event(conn, "created", uid, role)
    log.info("created %s account %s", role, username)
    return cur.lastrowid


def create_student(conn: sqlite3.Connection, *, display_name: str, pin_hash: str | None,
                   avatar: str | None = None) -> int:
    uid = str(uuid.uuid4())
    cur = conn.execute(
        "INSERT INTO users (role, display_name, pin_hash, avatar, uid, created_at) VALUES ('student', ?, ?, ?, ?, ?)",
        (clean_name(display_name), pin_hash, avatar or AVATARS[0], uid, now_iso()),
    )
    _event(conn, "created", uid, "student")
    return cur.lastrowid


def get_user(conn: sqlite3.Connection, user_id: int) -> dict:
    row = conn.execute("SELECT * FROM users WHERE id = ?", (user_id,)).fetchone()
    if row is None:
        raise NotFound(_("There is no such account."))
    return dict(row)


def set_password(conn: sqlite3.Connection, user_id: int, password_hash: str) -> None:
    user = get_user(conn, user_id)
    if user["role"] not in STAFF_ROLES:
        raise BadRequest(_("Students sign in with a PIN, not a password."))
    conn.execute("UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, user_id))
    clear_in(conn, user["username"])  # the new password works at once, paused or not
    _event(conn, "credentials_changed", user["uid"], user["role"])


def set_pin(conn: sqlite3.Connection, student_id: int, pin_hash: str | None) -> None:
    user = get_user(conn, student_id)
    if user["role"] != "student":
        raise BadRequest(_("Only students have PINs."))
    conn.execute("UPDATE users SET pin_hash = ? WHERE id = ?", (pin_hash, student_id))
    clear_in(conn, student_account(student_id))  # "ask your teacher for a new PIN" must work at once
    _event(conn, "credentials_changed", user["uid"], "student")


def _keep_an_admin(conn: sqlite3.Connection, user: dict) -> None:
    """Refuse to switch off or demote the box's last active admin: nobody could manage it any more."""
    if user["role"] != "admin" or user["disabled"]:
        return
    others = conn.execute(
        "SELECT COUNT(*) FROM users WHERE role = 'admin' AND disabled = 0 AND id != ?", (user["id"],)
    ).fetchone()[0]
    if others == 0:
        raise BadRequest(_("This is the last active admin account; create another admin first."))


def set_disabled(conn: sqlite3.Connection, user_id: int, disabled: bool, *, acting_user_id: int | None = None) -> None:
    user = get_user(conn, user_id)
    if disabled and user_id == acting_user_id:
        raise BadRequest(_("You cannot disable your own account."))
    if disabled:
        _keep_an_admin(conn, user)
    conn.execute("UPDATE users SET disabled = ? WHERE id = ?", (1 if disabled else 0, user_id))
    _event(conn, "disabled" if disabled else "enabled", user["uid"], user["role"])


def update_staff(conn: sqlite3.Connection, user_id: int, *, display_name: str | None = None,
                 role: str | None = None, acting_user_id: int | None = None) -> dict:
    """Correct a teacher's or admin's name, or give them the other role; what changed, by field.
    The username stays: it is what they type to sign in, and what provisioning and the logs know them
    by. A new role applies at the account's next request (the role is read on every request)."""
    user = get_user(conn, user_id)
    if user["role"] not in STAFF_ROLES:
        raise BadRequest(_("Students are changed on their class's page."))
    changed = {}
    if display_name is not None and clean_name(display_name) != user["display_name"]:
        changed["display_name"] = clean_name(display_name)
    if role is not None and role != user["role"]:
        if role not in STAFF_ROLES:
            raise BadRequest(_("An account is a teacher or an administrator."))
        if user_id == acting_user_id:
            raise BadRequest(_("You cannot take away your own administrator role; another administrator can."))
        _keep_an_admin(conn, user)
        changed["role"] = role
    if changed:
        conn.execute(f"UPDATE users SET {', '.join(f'{k} = ?' for k in changed)} WHERE id = ?",
                     (*changed.values(), user_id))
    if "role" in changed:  # the hub counts staff by role; names never leave the box
        _event(conn, "role_changed", user["uid"], role)
        log.info("%s is now %s (was %s)", user["username"], role, user["role"])
    return changed


def admin_exists(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM users WHERE role = 'admin' AND disabled = 0 LIMIT 1").fetchone() is not None


def list_staff(conn: sqlite3.Connection) -> list[dict]:
    rows = conn.execute(
        "SELECT id, role, username, display_name, disabled, created_at, last_signin_at FROM users"
        " WHERE role IN ('teacher', 'admin') ORDER BY role, username"
    ).fetchall()
    return [dict(r) for r in rows]


def add_staff(db, *, role: str, username: str, password: str, display_name: str = "") -> int:
    """Hash (slow, outside the writer) then insert: the helper the CLI and the admin page share."""
    password_hash = hash_password(password)
    return db.write(lambda c: create_staff(c, role=role, username=username,
                                           display_name=display_name or username, password_hash=password_hash))


def hash_optional_pin(pin: str | None) -> str | None:
    return hash_pin(pin) if pin else None
