"""First start and per-process wiring shared by ``run`` and ``web``.

``prepare`` runs once before serving (migrations, the demo course, the default models): slow things
that must not happen in every gunicorn worker. ``attach_components`` runs in each serving process and
gives ``Services`` the blob store and the inference engine, each reporting its status; a part that
cannot come up is reported as failed and the LMS keeps serving without it.
"""
from __future__ import annotations

import logging
from pathlib import Path

from appliance.errors import AppError
from appliance.services import PartStatus, Services

log = logging.getLogger(__name__)


def model_repository(services: Services) -> Path:
    repo = services.cfg.inference.repository
    return Path(repo) if repo else services.data_dir / "models"


def prepare(services: Services) -> None:
    """One-time work before serving; safe to repeat (each step checks what is already there)."""
    if services.cfg.content.install_demo:
        try:
            from appliance.content import install_demo_if_empty
        except ImportError:
            log.warning("content importer not available: demo course not installed")
        else:
            install_demo_if_empty(services)
    from appliance.learning.progress import finish_mastered_lessons

    finish_mastered_lessons(services)  # once per box, after the upgrade that made mastery finish lessons
    if not services.cfg.inference.enabled:
        return  # no models on this box: building them would only cost minutes and disk
    repo = model_repository(services)
    try:
        from appliance.inference.builders import MODELS, build_default_models, stale_default_models
        from appliance.inference.repository import Repository
    except ImportError:
        log.warning("model builders not available: no default models")
        return
    # Per model, so one that failed on an earlier start (a package was missing) is built now, and one
    # an older release built (say, served differently) is rebuilt once after an upgrade.
    missing = tuple(m for m in MODELS if not any((repo / m).glob("*/model.json")))
    stale = stale_default_models(Repository(repo)) if repo.is_dir() else ()
    if missing or stale:
        log.info("building the default models %s into %s", ", ".join(missing + stale), repo)
        try:
            build_default_models(repo, missing + stale)
        except AppError as exc:
            # What could be built is published; the LMS serves without the rest and the
            # inference status names what is missing.
            log.error("default models incomplete: %s", exc.message)


def warm_up(services: Services) -> None:
    """Calibrate free-text grading and index search for every course now, so the first student who
    answers in words or searches does not wait for it (both are cached; a second start is quick)."""
    semantic, search = services.get("semantic"), services.get("search")
    if semantic is None or search is None or not semantic.available()[0]:
        return
    with services.db.read() as conn:
        courses = [r[0] for r in conn.execute("SELECT id FROM courses ORDER BY id")]
    for course in courses:
        try:
            semantic.calibrate_course(course)
            search.index_course(course)
        except AppError as exc:
            log.warning("could not prepare %s for grading and search: %s", course, exc.message)


def attach_components(services: Services) -> None:
    """Blob store, inference engine and learning hooks for this process."""
    _attach("content", services, "appliance.content", "attach")
    _attach("inference", services, "appliance.inference.engine", "attach")
    _attach("learning", services, "appliance.learning.service", "attach")
    _attach("federated", services, "appliance.federated.status", "attach")
    _report_separate_services(services)


def _report_separate_services(services: Services) -> None:
    """On a box, mDNS and sync run as their own units; the web process shows their last report."""
    from appliance.discovery.status import part_status
    from appliance.sync.service import report_status_from_file

    cfg = services.cfg
    services.report_status("mdns", lambda: part_status(cfg))
    # In ``run`` the relay's own part replaces this provider when it starts (same name).
    report_status_from_file(services)


def _attach(name: str, services: Services, module: str, func: str) -> None:
    import importlib

    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        services.report_status(name, lambda: PartStatus(name, "disabled", "not part of this build"))
        return
    attach = getattr(mod, func, None)
    if attach is None:
        services.report_status(name, lambda: PartStatus(name, "disabled", "not part of this build"))
        return
    try:
        attach(services)
    except Exception as exc:  # noqa: BLE001 - reported on /api/v1/health, the LMS keeps serving
        log.exception("%s could not start", name)
        reason = f"{type(exc).__name__}: {exc}"
        services.report_status(name, lambda: PartStatus(name, "failed", reason))
