"""The ``[mdns]`` section: announcing the box on the classroom network."""
from __future__ import annotations

from appliance.config import section, setting


@section("mdns")
class MdnsSettings:
    """mDNS / DNS-SD advertisement (``classroom-edge mdns``) and the list of other boxes nearby."""

    enabled: bool = setting(False, "Advertise the box over mDNS (the embedded default leaves it off).")
    hostname: str = setting(
        "classroom-edge",
        "Host name to claim, without .local (e.g. room12). On a clash the box takes room12-2, room12-3 ... "
        "and shows the name it got on the admin page.",
    )
    room: str = setting("", "Room name shown to students' browsers and other boxes.")
    interfaces: list[str] = setting(
        [],
        "Interfaces to announce on, e.g. [\"eth0\", \"wlan0\"]; [\"*\"] means every non-loopback "
        "interface. Must be set when mDNS is enabled: multicast never goes out on an interface by accident.",
    )
    ip_version: str = setting(
        "v4", "Address families to announce and listen on.", choices=("v4", "v6", "all")
    )
    poll_interval_s: float = setting(
        3.0, "Seconds between checks of the interface addresses and of name clashes (also the watchdog pace)."
    )
    recheck_s: float = setting(
        60.0,
        "Seconds between queries for our own name, to notice a box with the same name that joined without "
        "probing (e.g. two switches cabled together); 0 turns it off.",
    )
    health_url: str = setting(
        "",
        "URL that must answer before the box is announced; empty means "
        "http://127.0.0.1:<web.port>/api/v1/health.",
    )
    status_file: str = setting(
        "", "Where the advertiser writes its status for the admin page; empty means <data_dir>/mdns-status.json."
    )
    browse_peers: bool = setting(True, "Also list the other Classroom Edge boxes seen on the network.")
