"""Admin pages: device status, staff accounts and API tokens, course import, backup and restore."""
from __future__ import annotations

import logging
import os
import secrets
import shutil
import time
from pathlib import Path

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    session,
    url_for,
)
from flask_babel import gettext as _

from appliance.errors import AppError, BadRequest, NotFound
from appliance.people import accounts
from appliance.people.passwords import hash_password
from appliance.store.database import now_iso
from appliance.web import device, imports
from appliance.web.security import current_user, hash_token, keep_own_session, requires

log = logging.getLogger(__name__)
bp = Blueprint("admin", __name__, url_prefix="/admin")


def _services():
    return current_app.extensions["ce"]


@bp.get("/")
@requires("admin")
def status():
    info = device.device_status(_services())
    return render_template("admin/status.html", info=info, human_bytes=device.human_bytes,
                           human_duration=device.human_duration, rollback_to=_rollback_targets(),
                           damaged=_versions_refused("damaged"), unsigned=_versions_refused("unsigned"))


def _rollback_targets() -> dict[str, str]:
    """Model -> the version "Roll back" would serve (never a damaged one: ``rollback_target`` passes over
    them); models with none get no button (it always refused)."""
    engine = _services().get("inference")
    out: dict[str, str] = {}
    if engine is None:
        return out
    for name in engine.repository.model_names():
        try:
            out[name] = engine.repository.rollback_target(name)
        except AppError:
            continue
    return out


def _versions_refused(why: str) -> dict[str, list[str]]:
    """Model -> its versions (not the one served) that cannot serve for ``why``: "damaged" (files that do
    not match their sha256) or "unsigned" (a signature a box with inference.trusted_keys refuses).
    They are not offered to serve or roll back to: "Serve version 1" was offered right after version 2
    replaced a damaged version 1, and an unsigned copy was offered only to be refused. Asked here, for
    the page, not in the engine's status, which every health probe reads (``Repository.damaged``
    hashes a version once per size and mtime)."""
    engine = _services().get("inference")
    if engine is None:
        return {}
    repo = engine.repository
    check = repo.damaged if why == "damaged" else repo.unsigned
    out: dict[str, list[str]] = {}
    for name in repo.model_names():
        served = engine.loaded(name)
        bad = [v for v in repo.versions(name) if (served is None or v != served.version) and check(name, v)]
        if bad:
            out[name] = bad
    return out


@bp.post("/models/<name>/activate")
@requires("admin")
def activate_model(name: str):
    """Serve another version of a model (``models activate`` on the page); every web worker follows."""
    version = request.form.get("version", "")

    def serve(engine) -> str:
        engine.activate(name, version)
        return version

    return _model_change(serve, name)


@bp.post("/models/<name>/rollback")
@requires("admin")
def rollback_model(name: str):
    """Serve the version served before this one (``models rollback``)."""
    return _model_change(lambda engine: engine.rollback(name), name)


def _model_change(change, name: str):
    engine = _services().get("inference")
    try:
        if engine is None:
            raise AppError(_("The inference engine is not running on this box."))
        version = change(engine)
    except AppError as exc:
        flash(_("%(model)s was not changed: %(why)s", model=name, why=exc.message), "error")
    else:
        flash(_("%(model)s: version %(version)s is served now.", model=name, version=version))
    return redirect(url_for("admin.status"))  # the message is at the top of the page


def _users_page(error=None, token=None, code=200, typed=None):
    with _services().db.read() as conn:
        staff = accounts.list_staff(conn)
        tokens = [dict(r) for r in conn.execute(
            "SELECT t.id, t.name, t.created_at, t.last_used_at, u.username FROM api_tokens t"
            " JOIN users u ON u.id = t.user_id ORDER BY t.created_at DESC")]
    return render_template("admin/users.html", staff=staff, tokens=tokens, error=error, token=token,
                           token_request_id=secrets.token_urlsafe(12), typed=typed or {}), code


@bp.get("/users")
@requires("admin")
def users():
    return _users_page()


@bp.get("/settings")
@requires("admin")
def settings():
    """What this box runs with, read-only: the value of every setting, where it was set and what it
    means (docs/config.md). Settings are changed in the config file, then the service restarted."""
    from appliance.config import settings_overview

    return render_template("admin/settings.html", sections=settings_overview(_services().cfg))


@bp.post("/users")
@requires("admin")
def create_user():
    try:
        accounts.add_staff(_services().db, role=request.form.get("role", ""), username=request.form.get("username", ""),
                           password=request.form.get("password", ""), display_name=request.form.get("display_name", ""))
    except AppError as exc:  # the form comes back as typed (but the password)
        return _users_page(error=exc.message, code=exc.status,
                           typed={k: request.form.get(k, "") for k in ("role", "username", "display_name")})
    flash(_("The account was created."))
    return redirect(url_for("admin.users"))


@bp.post("/users/<int:user_id>/disabled")
@requires("admin")
def set_disabled(user_id: int):
    disable = request.form.get("disabled") == "1"
    me = current_user()["id"]
    try:
        _services().db.write(lambda c: accounts.set_disabled(c, user_id, disable, acting_user_id=me))
    except BadRequest as exc:
        return _users_page(error=exc.message, code=400)
    flash(_("The account was disabled.") if disable else _("The account was enabled."))
    return redirect(url_for("admin.users"))


@bp.post("/users/<int:user_id>")
@requires("admin")
def edit_user(user_id: int):
    """Correct a staff account's name or change its role (the username stays)."""
    me, name, role = current_user()["id"], request.form.get("display_name"), request.form.get("role")
    try:  # the form is read here: the write runs in the writer thread, outside this request
        changed = _services().db.write(lambda c: accounts.update_staff(
            c, user_id, display_name=name, role=role, acting_user_id=me))
    except AppError as exc:
        return _users_page(error=exc.message, code=exc.status)
    flash(_("The account was changed.") if changed else _("Nothing was changed."))
    return redirect(url_for("admin.users"))


@bp.post("/users/<int:user_id>/password")
@requires("admin")
def set_password(user_id: int):
    try:
        new_hash = hash_password(request.form.get("password", ""))
        _services().db.write(lambda c: accounts.set_password(c, user_id, new_hash))
    except AppError as exc:
        return _users_page(error=exc.message, code=exc.status)
    if user_id == current_user()["id"]:
        with _services().db.read() as conn:
            keep_own_session(accounts.get_user(conn, user_id))  # their own password: they stay signed in here
        flash(_("Your password was changed. Your other sessions are signed out."))
    else:
        flash(_("The password was changed. That person's sessions are signed out."))
    return redirect(url_for("admin.users"))


@bp.post("/tokens")
@requires("admin")
def create_token():
    """An API token for automation (Ansible, scripts), shown once; only its hash is stored."""
    name = " ".join(request.form.get("name", "").split())[:60] or "token"
    # The new token is shown on the answer to this POST: reloading that page sends the form again.
    # Each form carries its own id, and an id seen before makes no second token.
    request_id = request.form.get("request_id", "")[:40]
    done = session.get("token_requests", [])
    if request_id and request_id in done:
        return _users_page(error=_("That token was already made, and a token is shown only once. Make a new one"
                                   " if you did not copy it, and revoke the other."), code=409)
    if request_id:
        session["token_requests"] = (done + [request_id])[-5:]
    token = "ce_" + secrets.token_urlsafe(32)
    uid = current_user()["id"]
    _services().db.write(lambda c: c.execute(
        "INSERT INTO api_tokens (user_id, name, token_hash, created_at) VALUES (?, ?, ?, ?)",
        (uid, name, hash_token(token), now_iso())))
    return _users_page(token={"name": name, "value": token})


@bp.get("/tokens")
@requires("admin")
def tokens_page():
    """Where the new token was shown; opened again (a bookmark, the address bar) it is the users page."""
    return redirect(url_for("admin.users") + "#tokens-h")


@bp.post("/tokens/<int:token_id>/revoke")
@requires("admin")
def revoke_token(token_id: int):
    _services().db.write(lambda c: c.execute("DELETE FROM api_tokens WHERE id = ?", (token_id,)))
    flash(_("The token was revoked."))
    return redirect(url_for("admin.users"))


@bp.get("/content")
@requires("admin")
def content():
    services = _services()
    jobs = services.get("imports")
    with services.db.read() as conn:
        courses = [dict(r) for r in conn.execute(
            "SELECT c.id, c.title, c.version, c.language, c.imported_at,"
            " (SELECT COUNT(*) FROM lessons l WHERE l.course_id = c.id) AS lessons,"
            " (SELECT COUNT(*) FROM exercises e WHERE e.course_id = c.id) AS exercises FROM courses c ORDER BY c.title")]
    return render_template("admin/content.html", courses=courses, available=jobs is not None,
                           recent=jobs.list()[:10] if jobs is not None else [], job_id=request.args.get("job"),
                           max_mb=services.cfg.web.max_upload_mb, import_status=_import_status())


def _import_status() -> dict[str, str]:
    """What an import did (``ImportResult.status``), in the page's language."""
    return {"installed": _("installed"), "upgraded": _("updated"), "downgraded": _("replaced by an older version"),
            "reinstalled": _("installed again"), "unchanged": _("already installed, nothing changed")}


@bp.post("/content/<course_id>/remove")
@requires("admin")
def remove_content(course_id: str):
    from appliance.content.remover import remove_course

    removed = remove_course(_services().db, course_id)
    flash(_("“%(title)s” was removed. Your students' answers to it are kept: importing the course again brings"
            " their progress back.", title=removed["title"]))
    return redirect(url_for("admin.content"))


@bp.post("/content/<course_id>/export")
@requires("admin")
def export_content(course_id: str):
    """The course as a bundle (.zip) to keep or to import on another box (``content export``)."""
    import tempfile

    from appliance.content.exporter import export_course

    services = _services()
    with services.db.read() as conn:
        row = conn.execute("SELECT version FROM courses WHERE id = ?", (course_id,)).fetchone()
    if row is None:
        raise NotFound(_("There is no course “%(id)s” on this box.", id=course_id))
    work = Path(tempfile.mkdtemp(prefix="export-", dir=services.data_dir))
    try:
        path = export_course(services.db, services.get("blobs"), course_id, work / f"{course_id}-{row[0]}.zip")
        data = open(path, "rb")
    finally:
        shutil.rmtree(work, ignore_errors=True)  # the open file stays readable until it is sent
    return send_file(data, mimetype="application/zip", as_attachment=True, download_name=f"{course_id}-{row[0]}.zip",
                     max_age=0)


@bp.post("/content")
@requires("admin")
def upload_content():
    """Form fallback without JavaScript; the page's script uses ``POST /api/v1/imports``."""
    job_id = imports.start_import(_services(), request.files.get("bundle"), force=request.form.get("force") == "on")
    return redirect(url_for("admin.content", job=job_id))


@bp.get("/backup")
@requires("admin")
def backup():
    return render_template("admin/backup.html", db_bytes=device.human_bytes(_services().db.size_bytes()))


@bp.post("/backup/download")
@requires("admin")
def download_backup():
    from appliance.store.backup import backup_to

    services = _services()
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    path = services.data_dir / "backups" / f"download-{secrets.token_hex(6)}.db"
    backup_to(services.db, path)
    handle = open(path, "rb")  # noqa: SIM115 - closed by the WSGI server after streaming
    os.unlink(path)  # the open handle keeps the bytes until the response is sent; nothing is left behind
    log.info("database backup downloaded by %s", current_user()["username"])
    return send_file(handle, mimetype="application/vnd.sqlite3", as_attachment=True,
                     download_name=f"classroom-edge-{stamp}.db", max_age=0)


@bp.post("/backup/restore")
@requires("admin")
def restore_backup():
    from appliance.store.backup import restore_from

    services = _services()
    path = None
    try:  # a wrong file, or no backup in it: the reason on the backup page
        path = imports.save_upload(services, request.files.get("backup"), "backups", (".db", ".sqlite", ".sqlite3"))
        restore_from(services.db, path)
    except AppError as exc:
        return render_template("admin/backup.html", db_bytes=device.human_bytes(services.db.size_bytes()),
                               error=exc.message), exc.status
    finally:
        if path is not None:
            path.unlink(missing_ok=True)
    log.warning("database restored from an uploaded backup by %s", current_user()["username"])
    flash(_("The database was restored. If your account changed, please sign in again."))
    return redirect(url_for("admin.backup"))
