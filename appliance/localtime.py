"""The box's own clock: the days and times people see are the school's, not UTC (what is stored).

A class meets by the wall clock of its school; the box's system time zone is set to it (the image,
Ansible or the admin). Stored times stay UTC ISO strings; they are turned into the box's time only
where a person reads them or where "today" is decided (a review due today)."""
from __future__ import annotations

from datetime import UTC, date, datetime


def local_day(d: datetime) -> date:
    # astimezone() with no zone: the system's, with the offset in force at that moment, so an answer
    # from last summer shows summer time (the offset in force today put a winter evening's due review
    # on the wrong day).
    return d.astimezone().date()


def _parsed(stamp: str) -> datetime | None:
    try:
        d = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return None
    return d if d.tzinfo else d.replace(tzinfo=UTC)  # stored without a zone: UTC, as written


def _local_text(stamp: str | None, pattern: str) -> str:
    d = _parsed(stamp) if stamp else None
    return (stamp or "") if d is None else d.astimezone().strftime(pattern)


def local_date_text(stamp: str | None) -> str:
    """"2026-03-02" for a stored UTC time, on the box's clock (the stamp itself when it is no time)."""
    return _local_text(stamp, "%Y-%m-%d")


def local_time_text(stamp: str | None) -> str:
    """"2026-03-02 10:05" for a stored UTC time, on the box's clock."""
    return _local_text(stamp, "%Y-%m-%d %H:%M")
