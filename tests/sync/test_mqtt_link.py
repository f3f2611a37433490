import random

import pytest

from appliance.errors import ConfigError
from appliance.sync.mqtt import Backoff, BrokerParams


def test_backoff_is_jittered_and_stays_between_1_and_60_seconds():
    b = Backoff(1.0, 60.0, rng=random.Random(7))
    delays = [b.next() for _ in range(30)]
    assert all(1.0 <= d <= 60.0 for d in delays)
    assert delays[0] == 1.0 and max(delays) > 30.0
    assert len({round(d, 3) for d in delays[6:]}) > 5, "capped delays must still be jittered"
    b.reset()
    assert b.next() == 1.0


def test_broker_urls():
    p = BrokerParams.from_url("mqtts://hub.example:8884", ca_file="/ca.pem")
    assert (p.host, p.port, p.tls) == ("hub.example", 8884, True)
    assert BrokerParams.from_url("mqtt://10.0.0.1").port == 1883
    assert BrokerParams.from_url("mqtts://hub", ca_file="x").port == 8883
    with pytest.raises(ConfigError, match="pinned CA"):
        BrokerParams.from_url("mqtts://hub.example")
    with pytest.raises(ConfigError, match="expected mqtt"):
        BrokerParams.from_url("http://hub.example")
