import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.config import documentation_markdown, load_config, sections
from appliance.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_layers_file_then_env_then_credentials(tmp_path):
    f = tmp_path / "a.toml"
    f.write_text('[web]\nport = 9000\nhost = "0.0.0.0"\n[sync]\npassword = "from-file"\n')
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "sync.password").write_text("from-credential\n")
    cfg = load_config(f, env={"CLASSROOM_EDGE_WEB__PORT": "9100"}, credentials_dir=creds)
    assert cfg.web.port == 9100 and cfg.source_of("web.port") == "environment variable CLASSROOM_EDGE_WEB__PORT"
    assert cfg.web.host == "0.0.0.0" and cfg.source_of("web.host") == f"{f}:3"
    assert cfg.sync.password == "from-credential"
    assert cfg.dump()["sync"]["password"] == "********"
    assert cfg.dump(masked=False)["sync"]["password"] == "from-credential"


def test_unknown_key_names_key_source_and_suggestion(tmp_path):
    f = tmp_path / "a.toml"
    f.write_text('[web]\nhost = "x"\nprot = 1\n')
    with pytest.raises(ConfigError) as err:
        load_config(f, env={})
    msg = err.value.message
    assert "web.prot" in msg and f"{f}:3" in msg and "did you mean 'port'" in msg


def test_unknown_section_and_bad_types_are_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown section"):
        load_config(env={"CLASSROOM_EDGE_WBE__PORT": "1"})
    with pytest.raises(ConfigError, match="web.port"):
        load_config(env={"CLASSROOM_EDGE_WEB__PORT": "eighty"})
    with pytest.raises(ConfigError, match="must be one of"):
        load_config(env={"CLASSROOM_EDGE_LOGGING__LEVEL": "LOUD"})


@pytest.mark.parametrize("key, value", [("INFERENCE__CUDA_DEVICE_ID", "-1"), ("INFERENCE__BATCH_MAX_QUEUE", "0"),
                                        ("WEB__WORKERS", "0"), ("INFERENCE__BATCH_MAX_DELAY_MS", "-0.5")])
def test_numbers_below_their_minimum_are_refused_with_the_bound(key, value):
    with pytest.raises(ConfigError, match=rf"{key.lower().replace('__', '.')} must be at least \d+, not {value}"):
        load_config(env={f"CLASSROOM_EDGE_{key}": value})
    bounded = {f"{s}.{f.name}": f.metadata["minimum"] for s, cls in sections().items() for f in dataclasses.fields(cls)
               if f.metadata.get("minimum") is not None}
    assert "At least 0." in documentation_markdown() and bounded["inference.cuda_device_id"] == 0
    assert load_config(env={"CLASSROOM_EDGE_INFERENCE__CUDA_DEVICE_ID": "0"}).inference.cuda_device_id == 0


def test_config_check_exits_0_or_1(tmp_path):
    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text("[web]\nport = 8081\n")
    bad.write_text("[web]\nport = 'x'\n")
    run = lambda p: subprocess.run([sys.executable, "-m", "appliance", "config", "check", "--config", str(p)],
                                   capture_output=True, text=True)
    assert run(good).returncode == 0
    r = run(bad)
    assert r.returncode == 1 and "web.port" in r.stderr


def test_every_key_is_documented_in_the_committed_reference():
    doc = (ROOT / "docs" / "config.md").read_text()
    assert doc.strip() == documentation_markdown().strip(), "run: make docs (docs/config.md is stale)"
    for name, cls in sections().items():
        for f in dataclasses.fields(cls):
            assert f.metadata["doc"].strip(), f"{name}.{f.name} has no documentation"
            assert f"`{f.name}`" in doc


@pytest.mark.parametrize("toml, message", [
    ('[sync]\nbroker_url = "mqtts://hub.example:8883"\n', "needs a pinned CA"),
    ('[sync]\nbroker_url = "mqtt://hub.example"\nsite = "North School"\n', "sync.site"),
    ('[sync]\nbroker_url = "http://hub.example"\n', "expected mqtt://"),
    ('[mdns]\nenabled = true\ninterfaces = ["*"]\nhostname = "---"\n[web]\nhost = "0.0.0.0"\n', "mdns.hostname"),
])
def test_config_check_runs_the_services_own_checks(tmp_path, toml, message):
    f = tmp_path / "a.toml"
    f.write_text(toml)
    r = subprocess.run([sys.executable, "-m", "appliance", "config", "check", "--config", str(f)],
                       capture_output=True, text=True)
    assert r.returncode == 1 and message in r.stderr, r.stderr


@pytest.mark.parametrize("section", ["sync", "hub"])
def test_config_check_validates_the_client_certificate_the_same_way_for_sync_and_hub(tmp_path, section):
    from mqtt_broker import issue_client_cert, make_pki

    pki = make_pki(tmp_path / "pki")
    cert, key = issue_client_cert(pki, "someone")
    _, other_key = issue_client_cert(pki, "someone-else")
    head = f'[{section}]\nbroker_url = "mqtts://hub.example:8883"\nca_file = "{pki.ca_file}"\n'

    def check(extra):
        f = tmp_path / "a.toml"
        f.write_text(head + extra)
        return subprocess.run([sys.executable, "-m", "appliance", "config", "check", "--config", str(f)],
                              capture_output=True, text=True)

    r = check(f'cert_file = "{cert}"\nkey_file = "{key}"\n')
    assert r.returncode == 0, r.stderr
    for extra, message in [
        (f'key_file = "{key}"\n', f"{section}.key_file is set but {section}.cert_file is not"),
        (f'cert_file = "{tmp_path}/missing.pem"\nkey_file = "{key}"\n', f"{section}.cert_file: cannot read"),
        (f'cert_file = "{cert}"\nkey_file = "{tmp_path}/missing.key"\n', f"{section}.key_file: cannot read"),
        (f'cert_file = "{cert}"\nkey_file = "{other_key}"\n', f"{section}.cert_file/key_file: not a PEM"),
    ]:
        r = check(extra)
        assert r.returncode == 1 and message in r.stderr, (extra, r.stderr)
