"""First start: a one-time page that creates the first admin account (there is no default password).

Open only while no active admin exists; the check is repeated inside the write transaction, so two
people submitting the form at once cannot both become the first admin.
"""
from __future__ import annotations

import logging

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from appliance.errors import AppError, Conflict
from appliance.people.accounts import admin_exists, create_staff
from appliance.people.passwords import hash_password
from appliance.store.database import now_iso
from appliance.web.security import requires, sign_in

log = logging.getLogger(__name__)
bp = Blueprint("setup", __name__)


@bp.route("/setup", methods=["GET", "POST"])
@requires("anonymous")
def setup():
    db = current_app.extensions["ce"].db
    with db.read() as conn:
        if admin_exists(conn):
            flash(_("This box is already set up. Please sign in."))
            return redirect(url_for("auth.staff"))
    form = {"username": request.form.get("username", ""), "display_name": request.form.get("display_name", "")}
    if request.method == "GET":
        return render_template("setup.html", form=form, error=None)
    password = request.form.get("password", "")
    if password != request.form.get("password2", ""):
        return render_template("setup.html", form=form, error=_("The two passwords are different.")), 400
    try:
        password_hash = hash_password(password)

        def create(conn):
            if admin_exists(conn):
                raise Conflict(_("Another person has just set up this box. Please sign in."))
            uid = create_staff(conn, role="admin", username=form["username"],
                               display_name=form["display_name"] or form["username"], password_hash=password_hash)
            # Signed in by setting the box up: the users page said "never" beside the admin using it.
            conn.execute("UPDATE users SET last_signin_at = ? WHERE id = ?", (now_iso(), uid))
            return dict(conn.execute("SELECT * FROM users WHERE id = ?", (uid,)).fetchone())

        user = db.write(create)
    except Conflict:
        raise
    except AppError as exc:
        return render_template("setup.html", form=form, error=exc.message), exc.status
    log.info("first admin %s created from the setup page", user["username"])
    sign_in(user)
    return redirect(url_for("admin.status"))
