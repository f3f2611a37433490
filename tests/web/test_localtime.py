"""Times people read are on the box's clock (the school's), not UTC as stored."""
from __future__ import annotations

from appliance import localtime


def test_stored_utc_times_are_shown_on_the_box_s_clock(app, box_zone):
    box_zone("Etc/GMT+5")  # POSIX's sign: five hours west of Greenwich
    stamp = "2026-03-02T03:30:00.000Z"  # 22:30 the evening before, five hours west of Greenwich
    assert localtime.local_date_text(stamp) == "2026-03-01"
    assert localtime.local_time_text(stamp) == "2026-03-01 22:30"
    assert localtime.local_time_text("2026-03-02T03:30:00") == "2026-03-01 22:30"  # stored without a zone: UTC
    assert localtime.local_date_text("not a time") == "not a time" and localtime.local_date_text(None) == ""
    # What the templates use (teacher and admin pages: sign-ins, answers, archive dates).
    page = app.jinja_env.from_string("{{ t|local_date }} {{ t|local_time }}").render(t=stamp)
    assert page == "2026-03-01 2026-03-01 22:30"


def test_summer_and_winter_times_each_have_their_own_offset(box_zone):
    """A box in Madrid: CEST (+2) in summer, CET (+1) in winter, whatever the season the box is in now."""
    from datetime import datetime

    box_zone("Europe/Madrid")
    assert localtime.local_time_text("2026-07-01T21:30:00Z") == "2026-07-01 23:30"
    assert localtime.local_time_text("2026-01-10T21:30:00Z") == "2026-01-10 22:30"
    # 22:30 UTC on 10 April is 00:30 on the 11th in Madrid: a review due then is due on the 11th.
    assert localtime.local_day(datetime.fromisoformat("2026-04-10T22:30:00+00:00")).isoformat() == "2026-04-11"
    assert localtime.local_day(datetime.fromisoformat("2026-12-10T22:30:00+00:00")).isoformat() == "2026-12-10"
