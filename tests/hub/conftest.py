"""Fixtures for the hub tests: a real Mosquitto, box services, relays and hub workers (tests/mqtt_broker.py)."""
from mqtt_broker import (  # noqa: F401 - fixtures used by the tests in this folder
    broker_factory,
    mqtt_broker,
    open_services,
    start_hub,
    start_relay,
)
from pg_server import postgres_url  # noqa: F401 - a throwaway PostgreSQL for the hub's other backend
