"""The playbook: lint (production profile), syntax, documented variables, and its two checked
templates rendered for real and checked by the same validators the playbook uses on a box
(`classroom-edge config check`, `nft -c`)."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PROV = REPO / "provisioning"
VENV_BIN = REPO / ".venv/bin"
ENV = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_LOCALHOST_WARNING="False",
           ANSIBLE_INVENTORY_UNPARSED_WARNING="False")


def ansible(tool: str, *args: str, cwd: Path = PROV, timeout: float = 300) -> subprocess.CompletedProcess:
    exe = VENV_BIN / tool
    if not exe.exists():
        pytest.skip(f"{tool} is not installed in .venv (pip install -e '.[dev]')")
    return subprocess.run([str(exe), *args], cwd=cwd, env=ENV, capture_output=True, text=True,
                          timeout=timeout, check=False)


def test_ansible_lint_production_profile_is_clean():
    out = ansible("ansible-lint", "--profile", "production", "--nocolor", timeout=600)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]


def test_syntax_check_with_the_example_inventory():
    out = ansible("ansible-playbook", "--syntax-check", "-i", "inventory.example.ini", "site.yml")
    assert out.returncode == 0, out.stdout + out.stderr


def test_example_inventory_lists_boxes_with_their_own_names():
    out = ansible("ansible-inventory", "-i", "inventory.example.ini", "--list", "--yaml")
    assert out.returncode == 0, out.stderr
    hosts = yaml.safe_load(out.stdout)["all"]["children"]["classroom_edge"]["hosts"]
    assert {h: v["ce_hostname"] for h, v in hosts.items()} == {"room12": "room12", "room14": "room14", "lab1": "lab1"}


def _used_variables() -> set[str]:
    used = set()
    for path in [PROV / "site.yml", *PROV.glob("roles/**/*.yml"), *PROV.glob("roles/**/*.j2")]:
        used |= set(re.findall(r"\bce_[a-z0-9_]+", path.read_text()))
    return used - {"ce_systemd_dir", "ce_systemd_running"}  # facts the play sets itself


def test_every_variable_is_defined_and_documented():
    text = (PROV / "group_vars/all.yml").read_text()
    defined = yaml.safe_load(text)
    assert _used_variables() <= set(defined), f"undefined: {_used_variables() - set(defined)}"
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^(ce_[a-z0-9_]+):", line)
        if m:
            # The line above is a comment, or the variable continues a commented pair (user+password).
            above = lines[i - 1]
            assert above.startswith("#") or re.match(r"^ce_[a-z0-9_]+:", above), f"{m.group(1)} is not documented"


def _render(tmp_path: Path, template: str, dest: str, validate: str, extra_vars: dict) -> subprocess.CompletedProcess:
    """Run the role's template through the template module with the playbook's own variables."""
    play = [{
        "name": "Render",
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": False,
        "vars_files": [str(PROV / "group_vars/all.yml")],
        "vars": yaml.safe_load((PROV / "roles/app/defaults/main.yml").read_text()),
        "tasks": [{"name": "Render", "ansible.builtin.template": {
            "src": str(PROV / template), "dest": str(tmp_path / dest), "mode": "0644", "validate": validate}}],
    }]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    # Extra vars outrank group_vars, as a box's inventory values do. The interpreter is the test's own:
    # discovery on a developer machine may find a pyenv shim.
    (tmp_path / "extra.json").write_text(json.dumps({"ansible_python_interpreter": sys.executable, **extra_vars}))
    return ansible("ansible-playbook", "-i", "localhost,", "-e", f"@{tmp_path / 'extra.json'}",
                   str(tmp_path / "play.yml"), cwd=tmp_path)


BOX_VARS = {
    "ce_hostname": "room12", "ce_box_id": "room12", "ce_site": "north-school", "ce_room": "Room 12 – Ms. Ødegård",
    "ce_wheel": "/dev/null", "ce_admin_networks": ["192.168.10.5/32"],
}


def _config_check() -> str:
    exe = VENV_BIN / "classroom-edge"
    if not exe.exists():
        pytest.skip("classroom-edge is not installed in .venv")
    return f"{exe} config check --config %s"


def test_config_template_is_accepted_by_config_check(tmp_path):
    extra = {**BOX_VARS, "ce_jetson": True, "ce_uplink_broker_url": "mqtts://hub.example:8883",
             "ce_mqtt_ca_pem": "-----BEGIN CERTIFICATE-----\n...", "ce_trusted_signing_keys": ["A" * 43 + "="],
             "ce_extra_config": {"web": {"threads": 8}, "learning": {"target_success": 0.7}}}
    out = _render(tmp_path, "roles/app/templates/appliance.toml.j2", "appliance.toml", _config_check(), extra)
    assert out.returncode == 0, out.stdout[-3000:]
    cfg = tomllib.loads((tmp_path / "appliance.toml").read_text())
    assert cfg["mdns"] == {"enabled": True, "hostname": "room12", "room": "Room 12 – Ms. Ødegård", "interfaces": ["*"]}
    assert cfg["sync"]["site"] == "north-school" and cfg["sync"]["device"] == "room12"
    assert cfg["sync"]["ca_file"] == "/etc/classroom-edge/hub-ca.pem"
    assert "password" not in cfg["sync"]  # a systemd credential, never in the file
    assert cfg["inference"]["backend"] == "onnxruntime"  # also on a Jetson until a TensorRT binding is verified
    # One list of hub signing keys trusted everywhere: bundles, models, and the sync downlink that brings them.
    assert cfg["content"]["trusted_keys"] == cfg["inference"]["trusted_keys"] == cfg["sync"]["trusted_keys"] == ["A" * 43 + "="]
    # ce_extra_config merges into the generated sections instead of duplicating them.
    assert cfg["web"] == {"host": "0.0.0.0", "port": 80, "workers": 2, "threads": 8}
    assert cfg["learning"]["target_success"] == 0.7


def _client_pair(directory: Path, cn: str) -> tuple[str, str]:
    """A self-signed certificate and its key as PEM text, also written where the role installs them."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    directory.mkdir(exist_ok=True)
    (directory / "box-cert.pem").write_text(cert_pem)
    (directory / "box-key.pem").write_text(key_pem)
    return cert_pem, key_pem


def test_client_certificate_for_mutual_tls_is_configured_and_checked(tmp_path):
    """The role installs the pair (the tasks run before the template) and points sync at it; config
    check, the template's validator, refuses a key that is not the certificate's."""
    etc = tmp_path / "etc"
    cert_pem, key_pem = _client_pair(etc, "room12")
    extra = {**BOX_VARS, "app_config_dir": str(etc), "ce_uplink_broker_url": "mqtts://hub.example:8883",
             "ce_mqtt_ca_pem": "-----BEGIN CERTIFICATE-----\n...", "ce_mqtt_client_cert_pem": cert_pem,
             "ce_mqtt_client_key_pem": key_pem}
    out = _render(tmp_path, "roles/app/templates/appliance.toml.j2", "appliance.toml", _config_check(), extra)
    assert out.returncode == 0, out.stdout[-3000:]
    cfg = tomllib.loads((tmp_path / "appliance.toml").read_text())
    assert cfg["sync"]["cert_file"] == str(etc / "box-cert.pem") and cfg["sync"]["key_file"] == str(etc / "box-key.pem")

    (tmp_path / "appliance.toml").unlink()
    _client_pair(tmp_path / "other", "room12")
    (etc / "box-key.pem").write_text((tmp_path / "other" / "box-key.pem").read_text())  # someone else's key
    out = _render(tmp_path, "roles/app/templates/appliance.toml.j2", "appliance.toml", _config_check(), extra)
    assert out.returncode != 0 and "matching private key" in out.stdout
    assert not (tmp_path / "appliance.toml").exists()


def test_config_typo_stops_the_rollout(tmp_path):
    extra = {**BOX_VARS, "ce_extra_config": {"web": {"treads": 8}}}
    out = _render(tmp_path, "roles/app/templates/appliance.toml.j2", "appliance.toml", _config_check(), extra)
    assert out.returncode != 0
    assert "treads" in out.stdout and "did you mean 'threads'" in out.stdout
    assert not (tmp_path / "appliance.toml").exists()  # nothing half-written was put in place


def _nft() -> str:
    if os.geteuid() != 0 or shutil.which("nft") is None:
        pytest.skip("nft -c needs nftables and root (CAP_NET_ADMIN)")
    return "nft -c -f %s"


def test_firewall_ruleset_passes_nft_check(tmp_path):
    extra = {**BOX_VARS, "ce_admin_networks": ["192.168.10.5/32", "fd00:1::/64"], "ce_ssh_port": 2222}
    out = _render(tmp_path, "roles/firewall/templates/nftables.conf.j2", "nftables.conf", _nft(), extra)
    assert out.returncode == 0, out.stdout[-3000:]
    rules = (tmp_path / "nftables.conf").read_text()
    assert "policy drop" in rules
    assert re.search(r"ip saddr @admin4 tcp dport 2222 accept", rules)
    assert re.search(r"ip6 saddr @admin6 tcp dport 2222 accept", rules)
    assert re.search(r"ip saddr @lan4 tcp dport 80 accept", rules)
    assert re.search(r"udp dport 5353 accept", rules)


def test_firewall_ruleset_with_a_bad_network_is_refused(tmp_path):
    extra = {**BOX_VARS, "ce_admin_networks": ["192.168.10.500/32"]}
    out = _render(tmp_path, "roles/firewall/templates/nftables.conf.j2", "nftables.conf", _nft(), extra)
    assert out.returncode != 0 and not (tmp_path / "nftables.conf").exists()
