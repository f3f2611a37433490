"""The ``[mdns]`` section: announcing the box on the classroom network."""
from __future__ import annotations

from appliance.config import section, setting


@section("mdns")
class MdnsSettings:
    """mDNS / DNS-SD advertisement."""

    enabled: bool = setting(False, "Advertise the box over mDNS (the embedded default leaves it off).")
    hostname: str = setting("classroom-edge", "Host name to claim, without .local (e.g. room12).")
    room: str = setting("", "Room name shown to students' browsers and other boxes.")
    interfaces: list[str] = setting([], "Interfaces to announce on; empty means all non-loopback interfaces (only on a box).")
