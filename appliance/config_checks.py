"""Checks that need more than a key's type: run by ``classroom-edge config check`` before a config is
put in place, using the same code the services run at start, so the two can never disagree."""
from __future__ import annotations

from appliance.config import Config
from appliance.errors import ConfigError


def _sync(cfg: Config) -> None:
    if cfg.sync.broker_url:
        from appliance.sync.relay import check_settings

        check_settings(cfg)


def _hub(cfg: Config) -> None:
    # A box's config leaves [hub] alone; a hub's is checked with the code its workers and publisher run.
    if cfg.hub.broker_url:
        from appliance.sync.mqtt import BrokerParams

        BrokerParams.from_settings(cfg.hub, "hub")


def _mdns(cfg: Config) -> None:
    if cfg.mdns.enabled:
        from appliance.discovery.service import DiscoveryService, advert_from_config

        DiscoveryService(cfg)  # validates interfaces, host name and web address without touching a network
        advert_from_config(cfg).validate()


CHECKS = (_sync, _hub, _mdns)


def problems(cfg: Config) -> list[str]:
    out = []
    for check in CHECKS:
        try:
            check(cfg)
        except ConfigError as exc:
            out.append(exc.message)
    return out
