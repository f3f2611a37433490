"""``python -m appliance.content.demo OUT``: write the demo course bundle(s)."""
from __future__ import annotations

import argparse
import hashlib
import sys

from appliance.content import demo
from appliance.content.demo.text import LANGUAGES


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m appliance.content.demo",
                                description="Generate the Fractions demo course bundle (deterministic: same bytes every run).")
    p.add_argument("out", help="OUT.zip or a directory for one language; with --lang all, a directory "
                               "that receives <course_id>.zip for every language")
    p.add_argument("--lang", default="en", choices=[*LANGUAGES, "all"], help="course language (default en)")
    p.add_argument("--sign-key", help="file holding a base64 Ed25519 private key to sign course.json with")
    args = p.parse_args(argv)
    key = None
    if args.sign_key:
        from appliance.content.signing import read_private_key

        key = read_private_key(args.sign_key)
    paths = demo.write_all(args.out, key) if args.lang == "all" else [demo.write(args.out, args.lang, key)]
    for path in paths:
        manifest = path / "course.json" if path.is_dir() else None
        digest = hashlib.sha256(manifest.read_bytes() if manifest else path.read_bytes()).hexdigest()
        print(f"{path}  sha256 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
