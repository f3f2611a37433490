"""The long-lived objects one process shares: config, database, blob store, models, part statuses.

``create_app`` receives a ``Services``; it never builds threads or network clients itself (STYLE.md 4).
Optional parts (models, sync) are attached by the runtime when they start, and every part reports a
status so ``/api/v1/health`` and the admin page can say what is enabled, disabled or failed and why.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from appliance.config import Config
from appliance.store import Database, open_database


@dataclass
class PartStatus:
    name: str
    state: str  # 'ok', 'disabled', 'starting', 'degraded', 'failed'
    detail: str = ""
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"name": self.name, "state": self.state, "detail": self.detail, **self.extra}


@dataclass
class Services:
    cfg: Config
    db: Database
    started_at: float = field(default_factory=time.time)
    # Filled in by the parts that provide them (content store, inference engine, relay...).
    components: dict[str, Any] = field(default_factory=dict)
    # How many processes like this one share the CPU (gunicorn workers): the inference engine gives
    # each its share of the cores rather than every worker all of them.
    serving_processes: int = 1
    _status_providers: dict[str, Callable[[], PartStatus]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def open(cls, cfg: Config, migrate: bool = True) -> "Services":
        return cls(cfg=cfg, db=open_database(cfg, migrate=migrate))

    @property
    def data_dir(self) -> Path:
        return Path(self.cfg.storage.data_dir)

    @property
    def cache_dir(self) -> Path:
        return Path(self.cfg.storage.cache_dir) if self.cfg.storage.cache_dir else self.data_dir / "cache"

    def provide(self, name: str, component: Any) -> None:
        with self._lock:
            self.components[name] = component

    def get(self, name: str, default: Any = None) -> Any:
        return self.components.get(name, default)

    def shared(self, name: str, make: Callable[[], Any]) -> Any:
        """The component ``name``, made by ``make()`` the first time anyone asks (one per Services)."""
        with self._lock:
            if name not in self.components:
                self.components[name] = make()
            return self.components[name]

    def report_status(self, name: str, provider: Callable[[], PartStatus]) -> None:
        """Register a callable that returns the current status of a part."""
        with self._lock:
            self._status_providers[name] = provider

    def statuses(self) -> list[PartStatus]:
        out = []
        for name, provider in sorted(self._status_providers.items()):
            try:
                out.append(provider())
            except Exception as exc:  # noqa: BLE001 - a broken status provider must not break /health
                out.append(PartStatus(name, "failed", f"status unavailable: {exc}"))
        return out

    def close(self) -> None:
        for comp in list(self.components.values()):
            close = getattr(comp, "close", None)
            if callable(close):
                close()
        self.db.close()
