"""Classes, rosters and assignments.

A class belongs to one teacher; admins may manage any class. New students get a fresh random PIN
(when the class uses PINs) that is returned once, so the teacher can print it, and stored only hashed.
"""
from __future__ import annotations

import csv
import io
import logging
import sqlite3

from flask_babel import lazy_gettext as _

from appliance.errors import BadRequest, NotFound
from appliance.languages import without_accents
from appliance.people.accounts import (
    AVATAR_COLOURS,
    AVATARS,
    clean_name,
    create_student,
)
from appliance.people.passwords import hash_pin, new_pin
from appliance.store.database import now_iso
from appliance.sync import outbox

log = logging.getLogger(__name__)

MAX_ROSTER_IMPORT = 200
LANGUAGE_CODES = ("en", "es")


def _unique_class_name(conn: sqlite3.Connection, name: str, class_id: int | None = None) -> str:
    """The cleaned name, refused when another class has it: children pick their class by its name,
    and two "5B" buttons on the sign-in page cannot be told apart."""
    name = clean_name(name)
    # Compared in Python: SQLite's lower() folds only ASCII, so "ÑANDÚES" and "Ñandúes" passed as two names.
    others = conn.execute("SELECT name FROM classes WHERE id IS NOT ? AND archived_at IS NULL", (class_id,))
    if any(other.lower() == name.lower() for (other,) in others):
        raise BadRequest(_("There is already a class called “%(name)s”. Give this one another name, with the"
                           " year or the room in it.", name=name))
    return name


def _teacher(conn: sqlite3.Connection, teacher_id: int | None, class_id: int | None = None) -> int | None:
    """A teacher a class may be given to: an account that is on, or the class's own teacher."""
    if teacher_id is None:
        return None
    row = conn.execute("SELECT 1 FROM users WHERE id = ? AND role IN ('teacher', 'admin') AND (disabled = 0 OR"
                       " id = (SELECT teacher_id FROM classes WHERE id = ?))", (teacher_id, class_id)).fetchone()
    if row is None:
        raise BadRequest(_("Choose a teacher from the list."))
    return teacher_id


def create_class(conn: sqlite3.Connection, *, name: str, teacher_id: int | None, uses_pin: bool = True,
                 language: str | None = None) -> int:
    if language and language not in LANGUAGE_CODES:
        raise BadRequest(_("Unknown language '%(code)s'.", code=language))
    cur = conn.execute(
        "INSERT INTO classes (name, teacher_id, uses_pin, language, created_at) VALUES (?, ?, ?, ?, ?)",
        (_unique_class_name(conn, name), _teacher(conn, teacher_id), 1 if uses_pin else 0, language or None, now_iso()),
    )
    return cur.lastrowid


def update_class(conn: sqlite3.Connection, class_id: int, *, name: str, uses_pin: bool, language: str | None,
                 teacher_id: int | None = None) -> None:
    """``teacher_id``: hand the class to another teacher (an administrator sets classes up for them);
    None keeps the class's teacher."""
    if language and language not in LANGUAGE_CODES:
        raise BadRequest(_("Unknown language '%(code)s'.", code=language))
    conn.execute("UPDATE classes SET name = ?, uses_pin = ?, language = ? WHERE id = ?",
                 (_unique_class_name(conn, name, class_id), 1 if uses_pin else 0, language or None, class_id))
    if teacher_id is not None:
        conn.execute("UPDATE classes SET teacher_id = ? WHERE id = ?", (_teacher(conn, teacher_id, class_id), class_id))


def set_archived(conn: sqlite3.Connection, class_id: int, archived: bool) -> None:
    """Put a class away (end of the school year) or take it back. An archived class is off the sign-in
    page and its students cannot sign in through it; its roster, answers and reports stay, and its name
    is free for next year's class. Taking it back needs its name to be free again."""
    row = conn.execute("SELECT name FROM classes WHERE id = ?", (class_id,)).fetchone()
    if row is None:
        raise NotFound(_("There is no such class."))
    if not archived:
        _unique_class_name(conn, row[0], class_id)
    conn.execute("UPDATE classes SET archived_at = ? WHERE id = ?", (now_iso() if archived else None, class_id))


def teachers(conn: sqlite3.Connection, keep: int | None = None) -> list[dict]:
    """Who a class can belong to: the teachers and administrators whose accounts are on, and ``keep``
    (the class's own teacher) even when switched off: left out of the list, the page chose the first
    one, and saving the class's language handed it to someone else."""
    rows = [dict(r) for r in conn.execute(
        "SELECT id, display_name, username, role, disabled FROM users WHERE role IN ('teacher', 'admin')"
        " AND (disabled = 0 OR id = ?)", (keep,))]
    return sorted(rows, key=lambda r: (r["role"] == "admin", name_order(r["display_name"])))


def name_order(name: str) -> tuple[str, str]:
    """A sort key for names that puts "Íñigo" among the I's, not after "Zoe"."""
    return without_accents(name), name


def get_class(conn: sqlite3.Connection, class_id: int, user: dict | None = None) -> dict:
    """The class, if ``user`` (teacher or admin) may manage it; NotFound otherwise (no existence leak)."""
    row = conn.execute("SELECT * FROM classes WHERE id = ?", (class_id,)).fetchone()
    if row is None or (user is not None and user["role"] != "admin" and row["teacher_id"] != user["id"]):
        raise NotFound(_("There is no such class."))
    return dict(row)


def class_to_sign_in(conn: sqlite3.Connection, class_id: int) -> dict:
    """The class a student picked on the sign-in page; NotFound when there is none or it is archived
    (an old link or a page left open)."""
    cls = get_class(conn, class_id)
    if cls["archived_at"]:
        raise NotFound(_("This class is not on this box any more. Ask your teacher which class to choose."))
    return cls


def classes_for(conn: sqlite3.Connection, user: dict) -> list[dict]:
    sql = ("SELECT c.*, (SELECT COUNT(*) FROM class_members m JOIN users u ON u.id = m.student_id"
           " WHERE m.class_id = c.id AND u.disabled = 0) AS size, t.display_name AS teacher_name"
           " FROM classes c LEFT JOIN users t ON t.id = c.teacher_id")
    if user["role"] == "admin":
        rows = conn.execute(sql + " ORDER BY c.name").fetchall()
    else:
        rows = conn.execute(sql + " WHERE c.teacher_id = ? ORDER BY c.name", (user["id"],)).fetchall()
    return [dict(r) for r in rows]


def roster(conn: sqlite3.Connection, class_id: int) -> list[dict]:
    rows = conn.execute(
        "SELECT u.id, u.display_name, u.avatar, u.uid, u.pin_hash IS NOT NULL AS has_pin FROM users u"
        " JOIN class_members m ON m.student_id = u.id WHERE m.class_id = ? AND u.disabled = 0",
        (class_id,),
    ).fetchall()
    return sorted((dict(r) for r in rows), key=lambda r: name_order(r["display_name"]))


def _next_avatar(conn: sqlite3.Connection, class_id: int) -> str:
    """Pick the least used picture in the class, so neighbours rarely share one."""
    used = dict(conn.execute(
        "SELECT u.avatar, COUNT(*) FROM users u JOIN class_members m ON m.student_id = u.id"
        " WHERE m.class_id = ? GROUP BY u.avatar", (class_id,)).fetchall())
    keys = [f"{a}-{c}" for c in range(AVATAR_COLOURS) for a in AVATARS]
    return min(keys, key=lambda k: (used.get(k, 0), keys.index(k)))


def _names_in_class(conn: sqlite3.Connection, class_id: int, except_student: int | None = None) -> set[str]:
    """The class's students' names, lower case (in Python: SQLite's lower() folds only ASCII)."""
    return {r[0].lower() for r in conn.execute(
        "SELECT u.display_name FROM users u JOIN class_members m ON m.student_id = u.id"
        " WHERE m.class_id = ? AND u.disabled = 0 AND u.id IS NOT ?", (class_id, except_student))}


def add_students(conn: sqlite3.Connection, class_id: int, names: list[str], pin_hashes: dict[str, str]) -> list[dict]:
    """Add students (PIN hashes computed by the caller, outside the writer); returns the new rows."""
    cls = conn.execute("SELECT * FROM classes WHERE id = ?", (class_id,)).fetchone()
    if cls is None:
        raise NotFound(_("There is no such class."))
    existing = _names_in_class(conn, class_id)
    clash = sorted({n for n in names if n.lower() in existing})
    if clash:
        raise BadRequest(_("This class already has a student called: %(names)s", names=", ".join(clash)))
    added = []
    for name in names:
        avatar = _next_avatar(conn, class_id)
        sid = create_student(conn, display_name=name, pin_hash=pin_hashes.get(name), avatar=avatar)
        conn.execute("INSERT INTO class_members (class_id, student_id) VALUES (?, ?)", (class_id, sid))
        uid = conn.execute("SELECT uid FROM users WHERE id = ?", (sid,)).fetchone()[0]
        outbox.enqueue(conn, "enrolment", {"action": "joined", "student_uid": uid, "class_id": class_id})
        added.append({"id": sid, "display_name": name, "avatar": avatar})
    return added


def _clean_roster_name(name: str) -> str:
    """``clean_name``, saying which name of a list is at fault (nothing is added then)."""
    try:
        return clean_name(name)
    except BadRequest as exc:
        shown = " ".join((name or "").split())
        shown = shown[:30] + "…" if len(shown) > 30 else shown
        raise BadRequest(_("%(problem)s Nobody was added; fix “%(name)s” and try again.",
                           problem=exc.message, name=shown)) from None


def enrol_new_students(db, class_id: int, names: list[str], skip_existing: bool = False
                       ) -> tuple[list[dict], list[str]]:
    """Create students in a class; returns ([{id, display_name, avatar, pin}] with PINs shown once, the
    names left out). ``skip_existing``: a name the class already has is left out instead of refusing the
    whole list (a teacher pasting the class list again, with the new pupils in it)."""
    names = [_clean_roster_name(n) for n in names]
    if not names:
        raise BadRequest(_("There are no names to add."))
    if len(names) > MAX_ROSTER_IMPORT:
        raise BadRequest(_("At most %(n)s students can be added at once.", n=MAX_ROSTER_IMPORT))
    with db.read() as conn:
        uses_pin = conn.execute("SELECT uses_pin FROM classes WHERE id = ?", (class_id,)).fetchone()
        existing = _names_in_class(conn, class_id) if skip_existing else set()
    if uses_pin is None:
        raise NotFound(_("There is no such class."))
    skipped = sorted({n for n in names if n.lower() in existing}, key=str.lower)
    names = [n for n in names if n.lower() not in existing]  # before the slow PIN hashes
    if not names:
        raise BadRequest(_("Everyone on the list is already in this class: nobody was added."))
    pins = {n: new_pin() for n in names} if uses_pin[0] else {}
    hashes = {n: hash_pin(p) for n, p in pins.items()}  # slow part, before taking the writer
    added = db.write(lambda c: add_students(c, class_id, names, hashes))  # checks again: a name added since
    for row in added:
        row["pin"] = pins.get(row["display_name"])
    return added, skipped


# Column headings of a class list, in the languages of the pages (a Spanish spreadsheet says "Nombre;Apellidos").
_NAME_KEYS = ("name", "full name", "student", "pupil", "nombre completo", "alumno", "alumna", "estudiante")
_FIRST_KEYS = ("first name", "first", "given name", "nombre", "nombres")
_LAST_KEYS = ("last name", "last", "family name", "surname", "apellidos", "apellido", "primer apellido",
              "segundo apellido")


def decode_roster(raw: bytes) -> str:
    """A class list file's text: UTF-8, or UTF-16 with its byte-order mark (Excel's "Unicode text"), or
    Latin-1 (older exports; every byte is a character). A file with NUL bytes (a zip, a spreadsheet) is no
    class list."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError:
            pass
    if b"\x00" in raw:
        raise BadRequest(_("That file is not a class list. Choose a CSV or text file with one name per line."))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def parse_roster_csv(text: str) -> list[str]:
    """Names from a CSV export: one per row; a name column if there is a header (``_NAME_KEYS``), else
    the first column.

    Columns headed first/last name (``_FIRST_KEYS``, ``_LAST_KEYS``: both surnames of a Spanish list)
    are joined. Blank rows are skipped; duplicate names are refused because a child could not tell two
    identical buttons apart.
    """
    text = text.lstrip("\ufeff")  # spreadsheet programs add a BOM
    text = text.replace("\r\n", "\n").replace("\r", "\n")  # old Mac exports end lines with CR alone
    if not text.strip():
        raise BadRequest(_("The file is empty."))
    try:
        dialect = csv.Sniffer().sniff(text[:2048], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    try:
        rows = [r for r in csv.reader(io.StringIO(text), dialect) if any(c.strip() for c in r)]
    except csv.Error as exc:
        raise BadRequest(_("That file could not be read as a class list (%(why)s). Choose a CSV or text file"
                           " with one name per line.", why=str(exc))) from None
    header = [" ".join(c.split()).lower() for c in rows[0]]

    def cell(row: list[str], i: int | None) -> str:
        return row[i].strip() if i is not None and i < len(row) else ""

    if any(k in header for k in _NAME_KEYS):
        idx = next(header.index(k) for k in _NAME_KEYS if k in header)
        names = [cell(r, idx) for r in rows[1:]]
    elif any(k in header for k in _FIRST_KEYS + _LAST_KEYS):
        first = [i for i, h in enumerate(header) if h in _FIRST_KEYS][:1]
        last = [i for i, h in enumerate(header) if h in _LAST_KEYS]
        names = [" ".join(x for x in (cell(r, i) for i in first + last) if x) for r in rows[1:]]
    else:
        names = [r[0] for r in rows]
    names = [" ".join(n.split()) for n in names if n.strip()]
    seen, dupes = set(), set()
    for n in names:
        (dupes if n.lower() in seen else seen).add(n.lower())
    if dupes:
        raise BadRequest(_("These names appear twice; add an initial to tell them apart: %(names)s", names=", ".join(sorted(dupes))))
    if not names:
        raise BadRequest(_("No names were found in the file."))
    return names


def reset_pin(db, class_id: int, student_id: int) -> str:
    """A new PIN for a student of this class; returns it (shown once)."""
    from appliance.people.accounts import set_pin

    with db.read() as conn:
        member = conn.execute("SELECT 1 FROM class_members WHERE class_id = ? AND student_id = ?",
                              (class_id, student_id)).fetchone()
    if member is None:
        raise NotFound(_("That student is not in this class."))
    pin = new_pin()
    pin_hash = hash_pin(pin)
    db.write(lambda c: set_pin(c, student_id, pin_hash))
    return pin


def remove_student(conn: sqlite3.Connection, class_id: int, student_id: int) -> None:
    """Take a student out of a class; the account and its history stay (progress is never deleted), and
    the class page offers to put them back (``put_back``)."""
    cur = conn.execute("DELETE FROM class_members WHERE class_id = ? AND student_id = ?", (class_id, student_id))
    if cur.rowcount == 0:
        raise NotFound(_("That student is not in this class."))
    conn.execute("INSERT OR REPLACE INTO class_departures (class_id, student_id, left_at) VALUES (?, ?, ?)",
                 (class_id, student_id, now_iso()))
    _enrolment(conn, "left", student_id, class_id)


def _enrolment(conn: sqlite3.Connection, action: str, student_id: int, class_id: int) -> None:
    uid = conn.execute("SELECT uid FROM users WHERE id = ?", (student_id,)).fetchone()[0]
    outbox.enqueue(conn, "enrolment", {"action": action, "student_uid": uid, "class_id": class_id})


def _student_of(conn: sqlite3.Connection, class_id: int, student_id: int) -> dict:
    row = conn.execute("SELECT u.* FROM users u JOIN class_members m ON m.student_id = u.id"
                       " WHERE m.class_id = ? AND u.id = ? AND u.disabled = 0", (class_id, student_id)).fetchone()
    if row is None:
        raise NotFound(_("That student is not in this class."))
    return dict(row)


def _refuse_name_clash(conn: sqlite3.Connection, class_id: int, name: str, student_id: int) -> None:
    """Two children with one name in a class cannot tell their buttons apart on the sign-in page."""
    if name.lower() in _names_in_class(conn, class_id, except_student=student_id):
        cls_name = conn.execute("SELECT name FROM classes WHERE id = ?", (class_id,)).fetchone()[0]
        raise BadRequest(_("%(class_name)s already has a student called %(name)s; add an initial to tell them"
                           " apart.", class_name=cls_name, name=name))


def rename_student(conn: sqlite3.Connection, class_id: int, student_id: int, name: str) -> str:
    """Correct how a student's name is written (a typo on the class list); their account, PIN and
    progress stay. The name must stay unique in every class they are in."""
    _student_of(conn, class_id, student_id)
    name = clean_name(name)
    for (other_class,) in conn.execute("SELECT class_id FROM class_members WHERE student_id = ?", (student_id,)).fetchall():
        _refuse_name_clash(conn, other_class, name, student_id)
    conn.execute("UPDATE users SET display_name = ? WHERE id = ?", (name, student_id))
    return name


def _join(conn: sqlite3.Connection, class_id: int, student: dict) -> None:
    row = conn.execute("SELECT archived_at FROM classes WHERE id = ?", (class_id,)).fetchone()
    if row is None:
        raise NotFound(_("There is no such class."))
    if row[0]:
        raise BadRequest(_("That class is archived: restore it first."))
    if conn.execute("SELECT 1 FROM class_members WHERE class_id = ? AND student_id = ?",
                    (class_id, student["id"])).fetchone():
        return
    _refuse_name_clash(conn, class_id, student["display_name"], student["id"])
    conn.execute("INSERT INTO class_members (class_id, student_id) VALUES (?, ?)", (class_id, student["id"]))
    conn.execute("DELETE FROM class_departures WHERE class_id = ? AND student_id = ?", (class_id, student["id"]))
    _enrolment(conn, "joined", student["id"], class_id)


def move_student(conn: sqlite3.Connection, from_class: int, to_class: int, student_id: int) -> None:
    """A child changes class: same account, PIN and progress, signing in through the new class."""
    if from_class == to_class:
        raise BadRequest(_("Choose another class."))
    student = _student_of(conn, from_class, student_id)
    _join(conn, to_class, student)
    remove_student(conn, from_class, student_id)


def _not_managed_by(user: dict | None, classes: list[dict]) -> list[dict]:
    """The classes among ``classes`` that ``user`` may not manage (none for an admin or no user)."""
    if user is None or user["role"] == "admin":
        return []
    return [c for c in classes if c["teacher_id"] != user["id"]]


def put_back(conn: sqlite3.Connection, class_id: int, student_id: int, user: dict | None = None) -> dict:
    """A student taken out of this class comes back, with everything they did; one moved to another
    class meanwhile leaves it (``left`` in the answer: their names). A child is in one class: in two,
    their answers waiting for a teacher were counted, and could be graded, in both. A teacher cannot
    take a child out of another teacher's class this way: that teacher or an admin moves them."""
    if conn.execute("SELECT 1 FROM class_departures WHERE class_id = ? AND student_id = ?",
                    (class_id, student_id)).fetchone() is None:
        raise NotFound(_("That student was not taken out of this class."))
    row = conn.execute("SELECT * FROM users WHERE id = ? AND role = 'student' AND disabled = 0", (student_id,)).fetchone()
    if row is None:
        raise NotFound(_("That student's account is no longer on this box."))
    left = [c for c in classes_of_student(conn, student_id) if c["id"] != class_id]
    others = _not_managed_by(user, left)
    if others:
        raise BadRequest(_("%(name)s is now in %(classes)s, another teacher's class: only its teacher or"
                           " an administrator can move them back.", name=row["display_name"],
                           classes=", ".join(c["name"] for c in others)))
    _join(conn, class_id, dict(row))
    for c in left:
        remove_student(conn, c["id"], student_id)
    return {**dict(row), "left": [c["name"] for c in left]}


def departures(conn: sqlite3.Connection, class_id: int, user: dict | None = None) -> list[dict]:
    """Students taken out of this class (and not back in it), newest first, with the classes they are in
    now (``now_in``) and whether one of those is a class ``user`` may not manage (``elsewhere``: no
    "Put back" for them, see ``put_back``)."""
    rows = [dict(r) for r in conn.execute(
        "SELECT u.id, u.display_name, u.avatar, d.left_at FROM class_departures d JOIN users u ON u.id = d.student_id"
        " WHERE d.class_id = ? AND u.disabled = 0 AND NOT EXISTS (SELECT 1 FROM class_members m"
        " WHERE m.class_id = d.class_id AND m.student_id = d.student_id) ORDER BY d.left_at DESC", (class_id,))]
    for r in rows:
        now_in = [dict(c) for c in conn.execute(
            "SELECT c.name, c.teacher_id FROM classes c JOIN class_members m ON m.class_id = c.id"
            " WHERE m.student_id = ? ORDER BY c.name", (r["id"],))]
        r["now_in"] = [c["name"] for c in now_in]
        r["elsewhere"] = bool(_not_managed_by(user, now_in))
    return rows


def set_assignments(conn: sqlite3.Connection, class_id: int, course_id: str, lesson_ids: list[str]) -> None:
    """Replace the class's assigned lessons of one course with exactly ``lesson_ids``."""
    known = {r[0] for r in conn.execute("SELECT id FROM lessons WHERE course_id = ?", (course_id,))}
    unknown = [lid for lid in lesson_ids if lid not in known]
    if unknown:
        raise BadRequest(_("Unknown lessons: %(ids)s", ids=", ".join(unknown)))
    conn.execute("DELETE FROM assignments WHERE class_id = ? AND course_id = ?", (class_id, course_id))
    now = now_iso()
    conn.executemany(
        "INSERT INTO assignments (class_id, course_id, lesson_id, assigned_at) VALUES (?, ?, ?, ?)",
        [(class_id, course_id, lid, now) for lid in lesson_ids],
    )


def classes_of_student(conn: sqlite3.Connection, student_id: int) -> list[dict]:
    rows = conn.execute("SELECT c.* FROM classes c JOIN class_members m ON m.class_id = c.id"
                        " WHERE m.student_id = ? ORDER BY c.id", (student_id,)).fetchall()
    return [dict(r) for r in rows]


FIND_LIMIT = 50
# Apostrophes as keyboards type them (a tablet types ’): O'Brien is found as o’brien and as obrien.
_APOSTROPHES = str.maketrans("", "", "'’‘ʼ`´")


def _name_key(text: str) -> str:
    """A name as "Find a student" compares it: lower case, no accents, no apostrophes, single spaces."""
    return " ".join(without_accents(text).translate(_APOSTROPHES).split())


def find_students(conn: sqlite3.Connection, user: dict, text: str) -> tuple[list[dict], bool]:
    """Students whose name contains ``text`` (any case, accents ignored: "sofia" finds Sofía), for the
    "Find a student" box: a child says they cannot sign in, or a teacher wonders where one went. A
    teacher finds the children in their classes and those taken out of them; an admin, every child.
    Each comes with the classes they are in (``classes``: id, name, archived_at) and, for one in no
    class, where they were taken out last (``left``), where "Put back" is. The second value: more
    matched than ``FIND_LIMIT`` (the page asks for more of the name)."""
    wanted = _name_key(text)
    if not wanted:
        return [], False
    admin = user["role"] == "admin"
    rows = conn.execute(
        "SELECT u.id, u.display_name, u.avatar, u.last_signin_at FROM users u"
        " WHERE u.role = 'student' AND u.disabled = 0" + ("" if admin else
        " AND u.id IN (SELECT m.student_id FROM class_members m JOIN classes c ON c.id = m.class_id"
        " WHERE c.teacher_id = :me UNION SELECT d.student_id FROM class_departures d"
        " JOIN classes c ON c.id = d.class_id WHERE c.teacher_id = :me)"), {"me": user["id"]}).fetchall()
    matches = sorted((dict(r) for r in rows if wanted in _name_key(r["display_name"])),
                     key=lambda r: without_accents(r["display_name"]))
    found = matches[:FIND_LIMIT]
    for r in found:
        r["classes"] = [dict(c) for c in conn.execute(
            "SELECT c.id, c.name, c.archived_at, c.teacher_id FROM classes c JOIN class_members m ON m.class_id = c.id"
            " WHERE m.student_id = ? ORDER BY c.name", (r["id"],))]
        for c in r["classes"]:
            teacher_id = c.pop("teacher_id")
            c["mine"] = admin or teacher_id == user["id"]  # another teacher's class: named, not linked
        left = None if r["classes"] else conn.execute(
            "SELECT c.id, c.name, d.left_at FROM class_departures d JOIN classes c ON c.id = d.class_id"
            " WHERE d.student_id = :student" + ("" if admin else " AND c.teacher_id = :me")
            + " ORDER BY d.left_at DESC LIMIT 1", {"student": r["id"], "me": user["id"]}).fetchone()
        r["left"] = dict(left) if left else None
        # A child now only in other teachers' classes: where they are, not when they last signed in.
        r["show_signin"] = admin or not r["classes"] or any(c["mine"] for c in r["classes"])
    return found, len(matches) > FIND_LIMIT
