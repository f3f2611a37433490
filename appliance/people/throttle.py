"""Sign-in throttling, per account and per address (table ``login_failures``).

After ``max_failures`` failed sign-ins within ``window_s`` for the same account or the same address,
further attempts are refused until the oldest failure leaves the window. Counting per account stops a
guesser spreading tries over many devices; counting per address stops one device trying every account.
A 4-digit PIN is only as strong as this limit.
"""
from __future__ import annotations

import math
import sqlite3
import time

from appliance.errors import TooManyRequests


class LoginThrottle:
    def __init__(self, db, max_failures: int, window_s: int):
        self.db = db
        self.max_failures = max_failures
        self.window_s = window_s

    @staticmethod
    def keys(account: str, address: str | None) -> list[str]:
        keys = [f"user:{account}"]
        if address:
            keys.append(f"ip:{address}")
        return keys

    def check(self, account: str, address: str | None, now: float | None = None) -> None:
        """Raise TooManyRequests when the account or the address is paused."""
        now = time.time() if now is None else now
        since = now - self.window_s
        with self.db.read() as conn:
            for key in self.keys(account, address):
                rows = conn.execute("SELECT at FROM login_failures WHERE key = ? AND at > ? ORDER BY at",
                                    (key, since)).fetchall()
                if len(rows) >= self.max_failures:
                    # The pause ends when enough failures have aged out of the window.
                    wait = rows[len(rows) - self.max_failures][0] + self.window_s - now
                    minutes = max(1, math.ceil(wait / 60))
                    raise TooManyRequests(
                        f"Too many wrong tries. Please wait {minutes} minute(s) or ask your teacher.",
                        detail={"retry_after_s": max(1, math.ceil(wait))},
                    )

    def failed(self, account: str, address: str | None, now: float | None = None) -> None:
        now = time.time() if now is None else now

        def record(conn: sqlite3.Connection) -> None:
            conn.executemany("INSERT INTO login_failures (key, at) VALUES (?, ?)",
                             [(k, now) for k in self.keys(account, address)])
            # Old rows are useless; trimming here keeps the table tiny without a background job.
            conn.execute("DELETE FROM login_failures WHERE at < ?", (now - self.window_s,))

        self.db.write(record)

    def succeeded(self, account: str) -> None:
        self.db.write(lambda c: c.execute("DELETE FROM login_failures WHERE key = ?", (f"user:{account}",)))
