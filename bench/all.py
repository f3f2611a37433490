"""``make bench``: run every benchmark in turn (``--quick`` for a smoke run) and collect the JSON."""
from __future__ import annotations

import importlib
import json
import sys
import time

BENCHES = ("lms", "learning", "content", "mdns", "learner_model", "quantization", "grading", "inference", "learner_breakdown", "thread_split", "balance", "sync", "gpu_providers",
           "federated")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    results, failed = {}, []
    for name in BENCHES:
        try:
            mod = importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"bench.{name}":
                print(f"# bench/{name}.py not present, skipped", file=sys.stderr)
                continue
            raise
        t0 = time.monotonic()
        print(f"# bench/{name}.py {' '.join(argv)}", file=sys.stderr, flush=True)
        try:
            results[name] = mod.main(argv)
        except Exception as exc:  # noqa: BLE001 - one broken benchmark must not hide the others
            failed.append(name)
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
        print(f"# bench/{name}.py took {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)
    print(json.dumps({"failed": failed}, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
