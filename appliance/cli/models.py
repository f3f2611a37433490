"""``classroom-edge models list | import | build | quantize | bench | activate | rollback | build-engine | sign``.

Activation and rollback check the version the same way a web worker will (hashes, signature, load,
warm-up) before ACTIVE changes, so a broken version is refused here and never reaches the workers;
the running workers pick up the new ACTIVE file within ``inference.watch_interval_s``. A version that
``import`` or ``quantize`` adds never serves before it is activated (``import --activate`` that fails
to load never appears: it is loaded and warmed from the staged copy first). Run these as the service user (``sudo -u classroom-edge``) or
as root: the files written are readable by the web service either way.
"""
from __future__ import annotations

import argparse
import json
import sys
from contextlib import contextmanager
from pathlib import Path

from appliance.cli.common import config_from_args
from appliance.errors import NotFound


def register(sub) -> None:
    p = sub.add_parser("models", help="manage the on-device model repository")
    msub = p.add_subparsers(dest="models_command", metavar="ACTION", required=True)

    def add(name, helptext, func, repository: bool = True):
        c = msub.add_parser(name, help=helptext)
        c.add_argument("--config", dest="sub_config", help="config file")
        if repository:  # `sign` works on a folder outside any repository
            c.add_argument("--data-dir", help="override [storage] data_dir")
            c.add_argument("--repo", help="model repository (default: inference.repository or <data_dir>/models)")
        c.set_defaults(func=func, data_dir=None, repo=None)
        return c

    c = add("list", "models, versions and which one is active", _list)
    c.add_argument("--json", action="store_true", help="a JSON list, one object per version")
    c.add_argument("--verify", action="store_true",
                   help="also check every file's sha256 and the signature (as activate does; reads every model file)")
    c = add("import", "copy a version directory (with model.json) into the repository; it serves only once "
                      "activated", _import)
    c.add_argument("path", help="the version directory: model.json and the files it names")
    c.add_argument("--name", help="model name (default: model.json's name, else the parent directory's)")
    c.add_argument("--version", help="version name (default: the next number)")
    c.add_argument("--activate", action="store_true",
                   help="load and warm it first, then make it the active one (not imported if it cannot load)")
    c.add_argument("--sign-key", metavar="FILE", help="sign its model.json on the way in with this Ed25519 "
                                                      "private key (base64), for a box that loads only signed models")
    c = add("build", "build the default models (learner, MiniLM) from the installed packages", _build)
    c.add_argument("names", nargs="*", metavar="NAME",
                   help="only these default models (learner, minilm, minilm-fp32; minilm and minilm-fp32 are "
                        "made together, the int8 model from the float one); default: all of them")
    c = add("quantize", "make an int8 version (dynamic, per-channel weights) of a version", _quantize)
    c.add_argument("name")
    c.add_argument("--version", help="source version (default: the active one)")
    c.add_argument("--per-tensor", action="store_true", help="one scale per tensor instead of per channel")
    c.add_argument("--activate", action="store_true", help="load and warm the new version, then make it the active one")
    c.add_argument("--sign-key", metavar="FILE", help="sign the new version's model.json with this Ed25519 private key")
    c = add("bench", "latency and throughput of a version in this process, straight on its backend (JSON)", _bench)
    c.add_argument("name")
    c.add_argument("--version", help="default: the active one")
    c.add_argument("--batch", type=_at_least(int, 1), default=1,
                   help="rows per run (not split at the model's max_batch_size, as serving would)")
    c.add_argument("--dim", type=_at_least(int, 1), default=16, help="size of variable non-batch dimensions (sequence length)")
    c.add_argument("--seconds", type=_at_least(float, 0, above=True), default=3.0,
                   help="how long to run, in seconds")
    c = add("activate", "verify, load and warm a version, then make it the active one", _activate)
    c.add_argument("name")
    c.add_argument("version")
    c = add("rollback", "go back to the version that was active before", _rollback)
    c.add_argument("name")
    c = add("build-engine", "build the TensorRT engine of a version for this GPU (cached)", _build_engine)
    c.add_argument("name")
    c.add_argument("--version", help="default: the active one")
    c.add_argument("--force", action="store_true", help="rebuild even when a cached engine exists")
    c = add("sign", "sign a version directory's model.json with an Ed25519 key (before import)", _sign,
            repository=False)
    c.add_argument("path")
    c.add_argument("--key-file", required=True, help="file holding the base64 raw 32-byte private key")


def _at_least(kind, minimum, above: bool = False):
    """An argparse type: a number of ``kind`` at least (or, ``above``, more than) ``minimum``."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not (value > minimum if above else value >= minimum):
            raise argparse.ArgumentTypeError(f"must be {'more than' if above else 'at least'} {minimum}, not {text}")
        return value
    return parse


def _read_key(path: str | None) -> str | None:
    return None if path is None else Path(path).read_text(encoding="utf-8").strip()


def _context(args):
    cfg = config_from_args(args, storage={"data_dir": args.data_dir})
    from appliance.inference.repository import Repository

    repo_dir = Path(args.repo) if args.repo else (
        Path(cfg.inference.repository) if cfg.inference.repository else Path(cfg.storage.data_dir) / "models")
    cache = Path(cfg.storage.cache_dir) if cfg.storage.cache_dir else Path(cfg.storage.data_dir) / "cache"
    return cfg, Repository.for_serving(repo_dir, cfg.inference.trusted_keys), cache


def _version(repo, name, version):
    """The version asked for, else the active one; when there is none, why."""
    from appliance.errors import NotFound

    if version:
        return repo.version(name, version)
    active = repo.active_version(name)
    if active is None:
        if not repo.versions(name):
            raise NotFound(f"model {name!r} is not in {repo.root}")
        raise NotFound(f"model {name!r} has no active version: its ACTIVE file is empty "
                       "(classroom-edge models activate NAME VERSION)")
    if active not in repo.versions(name):
        raise NotFound(f"model {name!r}: its ACTIVE file names version {active!r}, which is not in the repository "
                       "(classroom-edge models activate NAME VERSION)")
    return repo.version(name, active)


@contextmanager
def _runtime_errors(mv):
    """The runtime's own errors (a bad protobuf, an unsupported operator) as one line naming the
    version, like the web engine reports them; ours and the file system's pass through."""
    from appliance.errors import AppError, Unavailable

    try:
        yield
    except (AppError, OSError):
        raise
    except Exception as exc:  # noqa: BLE001 - onnxruntime's and onnx's exception types are many
        first_line = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        raise Unavailable(f"model {mv.name} version {mv.version} could not be loaded: "
                          f"{type(exc).__name__}: {first_line}") from None


def _check_loads(cfg, repo, cache, mv) -> None:
    """Load and warm the version as a web worker would, then let it go."""
    from appliance.inference.loaded import LoadedModel

    with _runtime_errors(mv):
        LoadedModel.load(repo, mv, cfg.inference, cache).close()


def _serving_note(repo, mv) -> str:
    if repo.active_version(mv.name) == mv.version:  # the model's first version: nothing else to serve
        return f"{mv.name} version {mv.version} is the model's only version and serves now"
    return f"it serves once activated: classroom-edge models activate {mv.name} {mv.version}"


def _activated(cfg, repo, mv) -> str:
    repo.set_active(mv.name, mv.version)
    return f"{mv.name} version {mv.version} is active (web workers switch within {cfg.inference.watch_interval_s:g} s)"


def _verified(cfg, repo, name: str, version: str) -> dict:
    """The version's model.json, with ``error`` set when it cannot be read or, with ``verify``, when a
    file does not match its sha256 or the signature does not check out."""
    try:
        mv = repo.version(name, version)
    except Exception as exc:  # noqa: BLE001 - list what can be read, say what cannot
        return {"error": getattr(exc, "message", None) or str(exc)}
    try:
        if cfg is not None:
            repo.verify(mv, mv.serving_backend(cfg.inference), f"{name}/{version}")
        return mv.meta
    except Exception as exc:  # noqa: BLE001
        # Its sha256 and signature still shown: "unsigned" beside a damaged signed version misled.
        return {**mv.meta, "error": getattr(exc, "message", None) or str(exc)}


def _list(args) -> int:
    cfg, repo, _cache = _context(args)
    if not repo.root.is_dir():  # a mistyped --repo is not an empty repository
        raise NotFound(f"there is no model repository at {repo.root} (classroom-edge models build makes one)")
    rows = []
    for name in repo.model_names():
        active = repo.active_version(name)
        versions = repo.versions(name)
        for v in versions:
            meta = _verified(cfg if args.verify else None, repo, name, v)
            rows.append({"model": name, "version": v, "active": v == active, "sha256": meta.get("sha256", "")[:12],
                         "signed": bool(meta.get("signature")), "metrics": meta.get("metrics") or {},
                         "error": meta.get("error")})
            if args.verify:
                rows[-1]["verified"] = "error" not in meta
        if versions and active not in versions:
            # Nothing of this model serves: a row of its own says why, whatever is asked.
            why = ("its ACTIVE file is empty: nothing serves" if active is None else
                   f"its ACTIVE file names version {active}, which is not in the repository: nothing serves")
            rows.append({"model": name, "version": "-", "active": False, "sha256": "", "signed": False, "metrics": {},
                         "error": f"{why} (classroom-edge models activate {name} VERSION)"})
            if args.verify:
                rows[-1]["verified"] = False
    failed = 1 if args.verify and not all(r["verified"] for r in rows) else 0
    if args.json:
        print(json.dumps(rows, indent=2))
        return failed
    if not rows:
        print(f"no models in {repo.root} (classroom-edge models build)")
    for r in rows:
        mark = "*" if r["active"] else " "
        extra = r["error"] or " ".join(f"{k}={v}" for k, v in r["metrics"].items() if not isinstance(v, (dict, list)))
        check = ("verified " if r["verified"] else "FAILED   ") if args.verify else ""
        print(f"{mark} {r['model']:<16} {r['version']:<8} {r['sha256']:<12} {'signed' if r['signed'] else 'unsigned':<8} "
              f"{check}{extra}")
    return failed


def _import(args) -> int:
    cfg, repo, cache = _context(args)
    # --activate loads and warms the verified copy before it appears: one that cannot load never does.
    # So does a model's first version, which serves at once (there is nothing else to serve): it said
    # "serves now" of a TensorRT model on a box without TensorRT.
    def check(staged):
        if args.activate or not repo.versions(staged.name):
            _check_loads(cfg, repo, cache, staged)

    mv = repo.import_version(Path(args.path), name=args.name, version=args.version, sign_key=_read_key(args.sign_key),
                             before_publish=check)
    print(f"imported {mv.name} version {mv.version}")
    print(_activated(cfg, repo, mv) if args.activate else _serving_note(repo, mv))
    return 0


def _build(args) -> int:
    _cfg, repo, _cache = _context(args)
    try:
        from appliance.inference.builders import build_default_models
    except ImportError as exc:
        print(f"the model builders are not available in this build: {exc}", file=sys.stderr)
        return 1
    from appliance.errors import AppError

    before = {name: set(repo.versions(name)) for name in repo.model_names()} if repo.root.is_dir() else {}
    try:
        result = build_default_models(repo.root, *([tuple(args.names)] if args.names else []))
    except AppError as exc:  # an unknown name, or a package missing for one of them
        print(exc.message, file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, default=str))
    for name, version in sorted(result.items()):  # a build that adds nothing says so (it printed only the JSON)
        kept = version in before.get(name, set())
        print(f"{name}: version {version} already holds this build; nothing added" if kept
              else f"{name}: built version {version}", file=sys.stderr)
    return 0


def _quantize(args) -> int:
    from appliance.inference.versions import quantize_version

    cfg, repo, cache = _context(args)
    check = (lambda staged: _check_loads(cfg, repo, cache, staged)) if args.activate else None
    new = quantize_version(repo, _version(repo, args.name, args.version), per_channel=not args.per_tensor,
                           sign_key=_read_key(args.sign_key), before_publish=check)
    print(f"{new.name} version {new.version}: int8 ({new.meta['provenance']['quantization']})")
    print(_activated(cfg, repo, new) if args.activate else _serving_note(repo, new))
    return 0


def _bench(args) -> int:
    from appliance.inference.versions import bench_version

    cfg, repo, cache = _context(args)
    mv = _version(repo, args.name, args.version)
    with _runtime_errors(mv):
        result = bench_version(repo, mv, cfg.inference, cache, args.batch, args.seconds, args.dim)
    print(json.dumps(result, indent=2))
    return 0


def _activate(args) -> int:
    cfg, repo, cache = _context(args)
    mv = repo.version(args.name, args.version)
    _check_loads(cfg, repo, cache, mv)
    repo.set_active(mv.name, mv.version)
    print(f"{mv.name} version {mv.version} is active (web workers switch within {cfg.inference.watch_interval_s:g} s)")
    return 0


def _rollback(args) -> int:
    from appliance.errors import AppError, NotFound

    cfg, repo, cache = _context(args)
    if not repo.versions(args.name):
        raise NotFound(f"model {args.name!r} is not in {repo.root}")
    current = repo.active_version(args.name)
    target = repo.rollback_target(args.name)
    try:
        _check_loads(cfg, repo, cache, repo.version(args.name, target))
    except AppError as exc:
        exc.message = (f"{exc.message}; nothing changed (to skip version {target}, activate an older one: "
                       f"classroom-edge models activate {args.name} VERSION)")
        raise
    repo.mark_rolled_back(args.name, target, current)
    print(f"{args.name} rolled back to version {target}")
    return 0


def _build_engine(args) -> int:
    from appliance.inference.backend import LoadRequest
    from appliance.inference.backends.tensorrt import TensorRTBackend, shipped_engine

    cfg, repo, cache = _context(args)
    mv = _version(repo, args.name, args.version)
    if shipped_engine(mv.model_file("tensorrt")):
        repo.verify(mv, "tensorrt")  # "nothing to build" must not hide a missing or damaged engine
        print(f"{mv.name} version {mv.version} ships its TensorRT engine ({mv.model_file('tensorrt').name}): "
              "there is nothing to build")
        return 0
    reason = TensorRTBackend.check_environment()
    if reason:
        print(f"TensorRT is not available on this box: {reason}", file=sys.stderr)
        return 1
    from appliance.inference.backends.tensorrt_build import build_engine

    repo.verify(mv, "tensorrt")
    request = LoadRequest(name=mv.name, version=mv.version, path=mv.model_file("tensorrt"), sha256=mv.sha256,
                          max_batch_size=int(mv.meta.get("max_batch_size", cfg.inference.batch_max_size)),
                          settings=cfg.inference, cache_dir=cache, meta=mv.meta, version_dir=mv.path)
    print(build_engine(request, force=args.force))
    return 0


def _sign(args) -> int:
    from appliance.inference.manifest import read_manifest, write_atomic
    from appliance.inference.signing import sign_manifest

    _context(args)  # logging and config checks, like every command
    manifest_path = Path(args.path) / "model.json"
    manifest = read_manifest(manifest_path, args.path)
    key = _read_key(args.key_file)
    # Replaced whole or not at all: a full USB stick must not leave half a manifest.
    write_atomic(manifest_path, json.dumps(sign_manifest(manifest, key), indent=2) + "\n")
    print(f"signed {manifest_path}")
    return 0
