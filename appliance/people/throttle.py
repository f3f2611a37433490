"""Sign-in throttling (table ``login_failures``).

Three counts of failed sign-ins within ``window_s``:
- one account from one address: ``max_failures`` (a child mistyping a PIN, or guessing one);
- one account from any address: ``SHARED_FACTOR`` times that (a guesser spreading tries over devices);
- one address, any account: ``SHARED_FACTOR`` times that (one device trying PIN after PIN of a class).
Any count over its limit pauses the sign-in until enough failures leave the window. A 4-digit PIN is
only as strong as these limits.

The account's own limit is the small one on purpose. With one limit for all three, five wrong
passwords from a student's laptop locked the administrator out of every device, and five wrong PINs
on the classroom's shared computer locked out every child and the teacher on it (the QA did both).
Now it takes four devices to pause an account everywhere, and twenty failures to pause a device. A
teacher's new PIN for a student, an administrator's new password for an account (web or CLI) and
``classroom-edge users unlock`` lift a pause at once (``clear``).
"""
from __future__ import annotations

import math
import sqlite3
import time

from appliance.errors import TooManyRequests

SHARED_FACTOR = 4


class LoginThrottle:
    def __init__(self, db, max_failures: int, window_s: int):
        self.db = db
        self.max_failures = max_failures
        self.window_s = window_s

    def limits(self, account: str, address: str | None) -> list[tuple[str, int]]:
        """(key, failures allowed) of the counts a sign-in of ``account`` from ``address`` meets."""
        out = [(f"user:{account}", self.max_failures * SHARED_FACTOR)]
        if address:
            out += [(f"user:{account}@{address}", self.max_failures), (f"ip:{address}", self.max_failures * SHARED_FACTOR)]
        else:
            out[0] = (out[0][0], self.max_failures)  # no address to tell devices apart: the account's own limit
        return out

    def check(self, account: str, address: str | None, now: float | None = None) -> None:
        """Raise TooManyRequests when a count is over its limit; ``retry_after_s`` says for how long."""
        now = time.time() if now is None else now
        since = now - self.window_s
        wait = 0.0
        with self.db.read() as conn:
            for key, limit in self.limits(account, address):
                rows = conn.execute("SELECT at FROM login_failures WHERE key = ? AND at > ? ORDER BY at",
                                    (key, since)).fetchall()
                if len(rows) >= limit:
                    # The pause ends when enough failures have aged out of the window.
                    wait = max(wait, rows[len(rows) - limit][0] + self.window_s - now)
        if wait > 0:
            raise TooManyRequests(f"Too many wrong tries. Please wait {minutes_of(wait)} minute(s).",
                                  detail={"retry_after_s": max(1, math.ceil(wait))})

    def failed(self, account: str, address: str | None, now: float | None = None) -> None:
        now = time.time() if now is None else now

        def record(conn: sqlite3.Connection) -> None:
            conn.executemany("INSERT INTO login_failures (key, at) VALUES (?, ?)",
                             [(k, now) for k, _limit in self.limits(account, address)])
            # Old rows are useless; trimming here keeps the table tiny without a background job.
            conn.execute("DELETE FROM login_failures WHERE at < ?", (now - self.window_s,))

        self.db.write(record)

    def succeeded(self, account: str, address: str | None = None) -> None:
        """The account signed in from ``address``: its failures from there, and its count over all
        devices, are forgotten. Other devices' counts stay: the owner signing in from their own computer
        must not give a guesser's device five new tries."""
        keys = [f"user:{account}"] + ([f"user:{account}@{address}"] if address else [])
        self.db.write(lambda conn: conn.executemany("DELETE FROM login_failures WHERE key = ?", [(k,) for k in keys]))


def minutes_of(seconds: float) -> int:
    """Whole minutes to wait, rounded up: 4 min 10 s is "5 minute(s)", never "4"."""
    return max(1, math.ceil(seconds / 60))


def clear(db, account: str) -> int:
    """Lift the account's pauses, from every address (``users unlock``); returns the failures removed."""
    return db.write(lambda conn: clear_in(conn, account))


def clear_in(conn: sqlite3.Connection, account: str) -> int:
    """``clear`` inside a write (a new PIN or password lifts the pause with it). The address counts
    stay: they are about a device, not this account. Returns how many failures it forgot."""
    failures = conn.execute("DELETE FROM login_failures WHERE key = ?", (f"user:{account}",)).rowcount
    conn.execute("DELETE FROM login_failures WHERE key LIKE ? ESCAPE '\\'", (_like_prefix(f"user:{account}@"),))
    return failures


def clear_address(db, address: str) -> int:
    """Lift a device's pause (``users unlock --address``)."""
    return db.write(lambda conn: conn.execute("DELETE FROM login_failures WHERE key = ?", (f"ip:{address}",)).rowcount)


def student_account(student_id: int) -> str:
    """The throttle's name for a student (students have no username)."""
    return f"student:{student_id}"


def _like_prefix(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
