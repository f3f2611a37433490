"""Typed, layered configuration.

Layers, lowest first: defaults < TOML file < ``CLASSROOM_EDGE_<SECTION>__<KEY>`` environment variables
< systemd credentials (``$CREDENTIALS_DIRECTORY/<section>.<key>``, so secrets never sit in the unit or
the file). Every subpackage declares its own section in its ``settings.py`` (Mopidy-style: the part that
uses a key owns its schema and its documentation); this module only knows how to merge and check them.

Unknown keys are errors that name the key, where it came from and the closest known key, because a
typo in a provisioning template must stop the rollout, not be silently ignored.
"""
from __future__ import annotations

import dataclasses
import difflib
import importlib
import json
import os
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from appliance.errors import ConfigError

ENV_PREFIX = "CLASSROOM_EDGE_"
DEFAULT_CONFIG_PATH = Path("/etc/classroom-edge/appliance.toml")

# Modules whose import registers a section. Listed explicitly (no entry-point magic) so the set of
# sections is visible in one place and a missing module fails loudly.
SECTION_MODULES = (
    "appliance.web.settings",
    "appliance.store.settings",
    "appliance.content.settings",
    "appliance.inference.settings",
    "appliance.learning.settings",
    "appliance.sync.settings",
    "appliance.discovery.settings",
    "appliance.federated.settings",
    "appliance.hub.settings",
    "appliance.system.settings",
)

_SECTIONS: dict[str, type] = {}


def section(name: str):
    """Class decorator registering a dataclass as the config section ``name``."""

    def wrap(cls):
        cls = dataclass(frozen=True)(cls)
        for f in dataclasses.fields(cls):
            if not f.metadata.get("doc"):
                raise TypeError(f"config key {name}.{f.name} has no documentation")
        cls.__section__ = name
        _SECTIONS[name] = cls
        return cls

    return wrap


def setting(default: Any, doc: str, *, secret: bool = False, choices: tuple | None = None,
            minimum: float | None = None):
    """A config key: its default, its documentation (required), whether it is a secret, and the values it
    takes (``choices``; ``minimum`` for a number: a negative GPU index or queue length is a typo, and
    refused by ``config check`` rather than found when a model fails to load)."""
    meta = {"doc": doc, "secret": secret, "choices": choices, "minimum": minimum}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


def sections() -> dict[str, type]:
    for mod in SECTION_MODULES:
        importlib.import_module(mod)
    return dict(_SECTIONS)


@dataclass
class Config:
    """The merged configuration: one attribute per section, plus where each value came from."""

    values: dict[str, Any]
    sources: dict[str, str]

    def __getattr__(self, name: str) -> Any:
        # Looked up in __dict__ so unpickling (sections are sent to a spawned child) cannot recurse.
        try:
            return self.__dict__["values"][name]
        except KeyError:
            raise AttributeError(name) from None

    def source_of(self, dotted: str) -> str:
        return self.sources.get(dotted, "default")

    def replace(self, **overrides: Mapping[str, Any]) -> "Config":
        """A copy with some keys changed, e.g. ``cfg.replace(web={"port": 9000})`` (CLI flags)."""
        values = dict(self.values)
        sources = dict(self.sources)
        for sec, keys in overrides.items():
            values[sec] = dataclasses.replace(values[sec], **keys)
            for k in keys:
                sources[f"{sec}.{k}"] = "command line"
        return Config(values, sources)

    def dump(self, masked: bool = True) -> dict[str, dict[str, Any]]:
        """Plain dict of every key; secrets are shown as ``********`` unless ``masked`` is False."""
        out: dict[str, dict[str, Any]] = {}
        for name, obj in self.values.items():
            sec = {}
            for f in dataclasses.fields(obj):
                val = getattr(obj, f.name)
                if masked and f.metadata.get("secret") and val:
                    val = "********"
                sec[f.name] = val
            out[name] = sec
        return out


def _line_of(text: str, section_name: str, key: str) -> int | None:
    """Best-effort line number of ``key`` inside ``[section_name]`` for error messages."""
    current = None
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            current = line.strip("[]").strip()
        elif current == section_name and line.split("=", 1)[0].strip() == key:
            return no
        elif current is None and line.split("=", 1)[0].strip() == section_name:
            return no
    return None


def _suggest(word: str, options) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _coerce(value: Any, typ: Any, where: str) -> Any:
    """Turn ``value`` (from TOML or a string from the environment) into ``typ``."""
    origin = typing.get_origin(typ)
    try:
        if typ is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
                return True
            if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true or false")
        if typ is int:
            if isinstance(value, bool):
                raise ValueError("expected an integer")
            return int(value)
        if typ is float:
            return float(value)
        if typ is str:
            if not isinstance(value, (str, int, float)):
                raise ValueError("expected a string")
            return str(value)
        if origin is list:
            (inner,) = typing.get_args(typ)
            if isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            if not isinstance(value, list):
                raise ValueError("expected a list")
            return [_coerce(v, inner, where) for v in value]
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc} (got {value!r})") from None
    raise ConfigError(f"{where}: unsupported type {typ}")


def load_config(
    path: str | os.PathLike | None = None,
    env: Mapping[str, str] | None = None,
    credentials_dir: str | os.PathLike | None = None,
) -> Config:
    """Merge defaults, the TOML file, the environment and systemd credentials, checking every key."""
    env = os.environ if env is None else env
    schema = sections()
    raw: dict[str, dict[str, tuple[Any, str]]] = {name: {} for name in schema}

    if path is not None:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read config file {p}: {exc.strerror}") from None
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: not valid TOML: {exc}") from None
        for sec_name, keys in doc.items():
            where = f"{p}:{_line_of(text, sec_name, sec_name) or '?'}"
            if sec_name not in schema:
                raise ConfigError(f"{where}: unknown section [{sec_name}]{_suggest(sec_name, schema)}")
            if not isinstance(keys, dict):
                raise ConfigError(f"{where}: '{sec_name}' must be a [section]")
            for key, val in keys.items():
                raw[sec_name][key] = (val, f"{p}:{_line_of(text, sec_name, key) or '?'}")

    for var, val in env.items():
        if not var.startswith(ENV_PREFIX):
            continue
        rest = var[len(ENV_PREFIX):].lower()
        if "__" not in rest:
            raise ConfigError(f"environment variable {var}: expected {ENV_PREFIX}<SECTION>__<KEY>")
        sec_name, key = rest.split("__", 1)
        if sec_name not in schema:
            raise ConfigError(f"environment variable {var}: unknown section '{sec_name}'{_suggest(sec_name, schema)}")
        raw[sec_name][key] = (val, f"environment variable {var}")

    cred_dir = credentials_dir or env.get("CREDENTIALS_DIRECTORY")
    if cred_dir and Path(cred_dir).is_dir():
        for cred in sorted(Path(cred_dir).iterdir()):
            if "." not in cred.name:
                continue  # credentials for other programs share the directory
            sec_name, key = cred.name.split(".", 1)
            if sec_name in schema:
                raw[sec_name][key] = (cred.read_text(encoding="utf-8").strip(), f"credential {cred.name}")

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for sec_name, cls in schema.items():
        fields = {f.name: f for f in dataclasses.fields(cls)}
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for key, (val, where) in raw[sec_name].items():
            if key not in fields:
                raise ConfigError(f"{where}: unknown key '{sec_name}.{key}'{_suggest(key, fields)}")
            coerced = _coerce(val, hints[key], f"{where}: {sec_name}.{key}")
            choices = fields[key].metadata.get("choices")
            if choices and coerced not in choices:
                raise ConfigError(f"{where}: {sec_name}.{key} must be one of {', '.join(map(str, choices))}")
            minimum = fields[key].metadata.get("minimum")
            if minimum is not None and coerced < minimum:
                raise ConfigError(f"{where}: {sec_name}.{key} must be at least {minimum}, not {coerced}")
            kwargs[key] = coerced
            sources[f"{sec_name}.{key}"] = where
        values[sec_name] = cls(**kwargs)
    return Config(values, sources)


def settings_overview(cfg: Config) -> list[dict]:
    """Every section and key with the value in force (secrets masked), whether it differs from the
    default, where it was set and what it means: the admin's read-only settings page, so whoever
    supports a box sees what it runs with without a shell on it."""
    dumped = cfg.dump(masked=True)
    out = []
    for name, cls in sorted(sections().items()):
        keys = []
        for f in dataclasses.fields(cls):
            value = dumped[name][f.name]
            source = cfg.source_of(f"{name}.{f.name}")
            keys.append({"key": f.name, "value": value if isinstance(value, str) else json.dumps(value),
                         "set": source != "default", "source": source, "doc": f.metadata["doc"],
                         "secret": bool(f.metadata.get("secret"))})
        out.append({"name": name, "doc": (cls.__doc__ or "").strip(), "settings": keys})
    return out


def documentation_markdown() -> str:
    """The config reference (docs/config.md) generated from the schema, so it cannot drift."""
    lines = [
        "# Configuration reference",
        "",
        "Generated by `classroom-edge config docs` from the settings modules; do not edit by hand.",
        "",
        "Layers, lowest first: built-in defaults, the TOML file (`/etc/classroom-edge/appliance.toml` or",
        "`--config PATH`), environment variables `CLASSROOM_EDGE_<SECTION>__<KEY>`, and systemd",
        "credentials named `<section>.<key>` in `$CREDENTIALS_DIRECTORY`. Unknown keys are errors.",
        "",
    ]
    for name, cls in sorted(sections().items()):
        lines += [f"## [{name}]", "", (cls.__doc__ or "").strip(), "", "| key | type | default | meaning |", "|---|---|---|---|"]
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            typ = getattr(hints[f.name], "__name__", str(hints[f.name]))
            doc = f.metadata["doc"]
            if f.metadata.get("secret"):
                doc += " (secret: masked in output)"
            if f.metadata.get("choices"):
                doc += " One of: " + ", ".join(f"`{c}`" for c in f.metadata["choices"]) + "."
            if f.metadata.get("minimum") is not None:
                doc += f" At least {f.metadata['minimum']}."
            lines.append(f"| `{f.name}` | {typ} | `{default!r}` | {doc} |")
        lines.append("")
    return "\n".join(lines)
