"""Names and TXT records the box announces, validated before anything goes on the wire.

DNS-SD puts hard limits on what a record may hold (a label is at most 63 bytes, a TXT string at most
255); a bad value would be silently truncated or dropped by a student's phone, so every value is checked
here and a wrong one becomes a ``ConfigError`` that names the setting.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from appliance.errors import ConfigError

HTTP_TYPE = "_http._tcp.local."
BOX_TYPE = "_classroom-edge._tcp.local."
SERVICE_TYPES = (HTTP_TYPE, BOX_TYPE)

# Where the LMS and the Open Inference Protocol API live on the web service.
LMS_PATH = "/"
API_PATH = "/v2"

# The issue caps each TXT string at 230 bytes: well under the 255 of RFC 6763 so that a record set
# with every key still fits one 1500-byte Ethernet frame together with SRV and address records.
MAX_TXT_ENTRY = 230
MAX_LABEL = 63
# After this many taken names the network is misconfigured (or hostile); give up with a clear error.
MAX_CANDIDATES = 64

_LABEL_OK = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")


def host_label(name: str, *, key: str = "mdns.hostname") -> str:
    """The host label for ``name`` (``Room 12`` -> ``room-12``); ``.local`` suffix accepted and dropped."""
    raw = name.strip().lower()
    if raw.endswith(".local."):
        raw = raw[: -len(".local.")]
    elif raw.endswith(".local"):
        raw = raw[: -len(".local")]
    label = re.sub(r"[^a-z0-9-]+", "-", raw).strip("-")
    label = re.sub(r"-{2,}", "-", label)
    if not label:
        raise ConfigError(f"{key} = {name!r}: a host name needs at least one letter or digit")
    if len(label) > MAX_LABEL - 3:
        # Keep room for the "-NN" suffix a name clash adds.
        raise ConfigError(f"{key} = {name!r}: longer than {MAX_LABEL - 3} characters")
    if not _LABEL_OK.match(label):
        raise ConfigError(f"{key} = {name!r}: not usable as a host name")
    return label


def candidates(base: str, limit: int = MAX_CANDIDATES):
    """``room12``, ``room12-2``, ``room12-3`` ...: the names tried, in order, when one is taken."""
    yield base
    for n in range(2, limit + 1):
        yield f"{base}-{n}"


def host_fqdn(label: str) -> str:
    return f"{label}.local."


def instance_name(label: str, service_type: str) -> str:
    return f"{label}.{service_type}"


def label_of_instance(name: str) -> str:
    """``room12._http._tcp.local.`` -> ``room12``."""
    for stype in SERVICE_TYPES:
        if name.endswith("." + stype):
            return name[: -len(stype) - 1]
    return name.split(".", 1)[0]


@dataclass(frozen=True)
class Advert:
    """What the box says about itself; the same TXT record goes with both service types."""

    box_id: str
    version: str
    room: str
    site: str
    port: int
    lms_path: str = LMS_PATH
    api_path: str = API_PATH

    def txt(self) -> dict[str, str]:
        """The TXT key/value pairs, each checked against ``MAX_TXT_ENTRY``."""
        pairs = {
            "id": self.box_id,
            "ver": self.version,
            "room": self.room,
            "site": self.site,
            # "path" is the key Bonjour browsers read for _http._tcp (RFC 6763 appendix / DNS-SD types).
            "path": self.lms_path,
            "api": self.api_path,
        }
        for key, value in pairs.items():
            validate_txt_entry(key, value)
        return pairs

    def validate(self) -> None:
        if not 0 < self.port < 65536:
            raise ConfigError(f"web.port = {self.port}: not a TCP port")
        if not self.box_id:
            raise ConfigError("box id is empty: set sync.device")
        self.txt()


def validate_txt_entry(key: str, value: str) -> None:
    """Raise ``ConfigError`` if ``key=value`` cannot be carried in one TXT string."""
    if not key or "=" in key or not key.isascii() or not key.isprintable():
        raise ConfigError(f"TXT key {key!r}: must be printable ASCII without '='")
    size = len(key.encode()) + 1 + len(value.encode("utf-8"))
    if size > MAX_TXT_ENTRY:
        raise ConfigError(f"TXT entry '{key}' is {size} bytes; at most {MAX_TXT_ENTRY} fit (shorten the {key})")


def decode_txt(properties: dict) -> dict[str, str]:
    """zeroconf hands TXT properties over as bytes (or None for a bare key); make them text."""
    out: dict[str, str] = {}
    for key, value in properties.items():
        k = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
        if value is None:
            out[k] = ""
        else:
            out[k] = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return out
