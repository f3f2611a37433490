"""``classroom-edge content import PATH | list | export COURSE OUT | demo [OUT] | keygen KEYFILE``."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from appliance.cli.common import config_from_args, database_or_note, require_database


def register(sub) -> None:
    p = sub.add_parser("content", help="import, list, export and generate course bundles")
    csub = p.add_subparsers(dest="content_command", metavar="ACTION", required=True)

    imp = csub.add_parser("import", help="import a course bundle (.zip or unpacked folder); all or nothing")
    imp.add_argument("path", help="bundle .zip or a folder holding course.json (e.g. a USB stick)")
    imp.add_argument("--force", action="store_true", help="allow a downgrade or replacing the same version")
    imp.add_argument("--json", action="store_true", help="print the result as JSON")
    imp.set_defaults(func=_import)

    ls = csub.add_parser("list", help="list installed courses and the blob store's use")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=_list)

    exp = csub.add_parser("export", help="write an installed course as a bundle (.zip or folder)")
    exp.add_argument("course_id")
    exp.add_argument("out", help="OUT.zip or a folder")
    exp.set_defaults(func=_export)

    demo = csub.add_parser("demo", help="generate the Fractions demo courses (and optionally import them)")
    demo.add_argument("out", nargs="?", help="where to write: OUT.zip/folder for one language, a folder for --lang all")
    demo.add_argument("--lang", default="all", help="en, es or all (default all)")
    demo.add_argument("--sign-key", help="file with a base64 Ed25519 private key to sign the bundles")
    demo.add_argument("--import", dest="do_import", action="store_true", help="import what was generated")
    demo.set_defaults(func=_demo)

    key = csub.add_parser("keygen", help="create an Ed25519 signing key; prints the public key for content.trusted_keys")
    key.add_argument("keyfile", help="where to write the private key (created with mode 0600, never overwritten)")
    key.set_defaults(func=_keygen)

    rm = csub.add_parser("remove", help="take a course off the box (its students' answers are kept)")
    rm.add_argument("course_id")
    rm.set_defaults(func=_remove)
    for action in (imp, ls, exp, demo, rm):
        action.add_argument("--data-dir", help="override [storage] data_dir")


def _services(args, existing: bool = True):
    """The box's services with its content store; ``existing=False`` for an import, which may be the
    first thing done on a new box."""
    from appliance.content import attach
    from appliance.services import Services

    cfg = config_from_args(args, storage={"data_dir": getattr(args, "data_dir", None)})
    if existing:
        require_database(cfg)
    services = Services.open(cfg)
    attach(services)
    return services


def _progress_printer():
    if not sys.stderr.isatty():
        return None
    last = [""]

    def show(done: int, total: int, stage: str) -> None:
        line = f"\r{stage:<10} {100 * done / total if total else 0:5.1f}%  {done / 2**20:8.1f} / {total / 2**20:.1f} MB"
        if line != last[0]:
            sys.stderr.write(line)
            sys.stderr.flush()
            last[0] = line

    return show


def _import(args) -> int:
    services = _services(args, existing=False)
    try:
        result = services.get("content_importer").run(args.path, force=args.force, progress=_progress_printer())
    finally:
        if sys.stderr.isatty():
            sys.stderr.write("\n")
        services.close()
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        was = f" (was {result.previous_version})" if result.previous_version else ""
        print(f"{result.status}: {result.course_id} {result.version}{was} — {result.lessons} lessons, "
              f"{result.exercises} exercises, {result.assets} assets, {result.new_bytes / 2**20:.1f} MB new"
              + (f", signed by key {result.signed_by}" if result.signed_by else ""))
    return 0


def _list(args) -> int:
    if not database_or_note(config_from_args(args, storage={"data_dir": args.data_dir})):
        print(json.dumps({"courses": [], "blobs": None}) if args.json else "no courses installed")
        return 0
    services = _services(args)
    try:
        with services.db.read() as conn:
            rows = [dict(r) for r in conn.execute(
                "SELECT c.id, c.version, c.title, c.language, c.imported_at, "
                "(SELECT count(*) FROM lessons l WHERE l.course_id = c.id) AS lessons, "
                "(SELECT count(*) FROM exercises e WHERE e.course_id = c.id) AS exercises "
                "FROM courses c ORDER BY c.id")]
        usage = services.get("blobs").usage()
    finally:
        services.close()
    if args.json:
        print(json.dumps({"courses": rows, "blobs": usage}, indent=2))
        return 0
    for r in rows:
        print(f"{r['id']:<24} {r['version']:<10} {r['language']:<6} {r['lessons']:>3} lessons {r['exercises']:>5} exercises  {r['title']}")
    if not rows:
        print("no courses installed")
    print(f"blob store: {usage['blobs']} files, {usage['used_bytes'] / 2**20:.1f} MB used of "
          f"{usage['quota_bytes'] / 2**20:.0f} MB ({usage['pinned_bytes'] / 2**20:.1f} MB pinned)")
    return 0


def _export(args) -> int:
    from appliance.content.exporter import export_course

    services = _services(args)
    try:
        path = export_course(services.db, services.get("blobs"), args.course_id, args.out)
    finally:
        services.close()
    print(f"exported {args.course_id} to {path}")
    return 0


def _remove(args) -> int:
    from appliance.content.remover import remove_course

    services = _services(args)
    try:
        removed = remove_course(services.db, args.course_id)
    finally:
        services.close()
    print(f"removed {removed['id']} ({removed['title']} {removed['version']}); its students' answers are kept,"
          " and importing it again brings their progress back")
    return 0


def _demo(args) -> int:
    import tempfile

    from appliance.content import demo
    from appliance.content.demo.text import LANGUAGES
    from appliance.content.signing import read_private_key

    if args.lang not in (*LANGUAGES, "all"):
        print(f"unknown language {args.lang!r}; choose from {', '.join(LANGUAGES)} or all", file=sys.stderr)
        return 2
    if args.out is None and not args.do_import:
        print("give OUT to write the bundles, --import to install them, or both", file=sys.stderr)
        return 2
    key = read_private_key(args.sign_key) if args.sign_key else None
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or tmp
        paths = demo.write_all(out, key) if args.lang == "all" else [
            demo.write(Path(out) / f"{args.lang}.zip" if args.out is None else out, args.lang, key)]
        for p in paths:
            print(f"wrote {p}")
        if args.do_import:
            services = _services(args, existing=False)
            try:
                for p in paths:
                    r = services.get("content_importer").run(p)
                    print(f"{r.status}: {r.course_id} {r.version} ({r.exercises} exercises)")
            finally:
                services.close()
    return 0


def _keygen(args) -> int:
    from appliance.content import signing

    private, public = signing.generate_keypair()
    try:
        signing.write_private_key(args.keyfile, private)
    except FileExistsError:
        print(f"{args.keyfile} already exists; refusing to overwrite a key", file=sys.stderr)
        return 1
    print(f"private key written to {args.keyfile} (keep it off the classroom boxes)")
    print(f"public key (add to content.trusted_keys): {public}")
    print(f"key id: {signing.key_id(public)}")
    return 0
