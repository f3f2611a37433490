"""Config for tests: a data dir of the test's own, no demo course unless asked (importable by name,
unlike conftest modules, which several directories have)."""
from appliance.config import load_config


def make_config(data_dir, **env):
    base = {"CLASSROOM_EDGE_STORAGE__DATA_DIR": str(data_dir), "CLASSROOM_EDGE_CONTENT__INSTALL_DEMO": "false"}
    base.update({f"CLASSROOM_EDGE_{k.upper()}": str(v) for k, v in env.items()})
    return load_config(env=base)
