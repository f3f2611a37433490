"""Federated learning across simulated classrooms, through the real relay, Mosquitto and hub.

    python -m bench.federated [--quick] [--classrooms 20] [--nights 20]

Each classroom is a box with its own SQLite database, its own sync relay (``SyncService`` with the
federated install handler) and its own nightly ``run_training``; the district runs one Mosquitto, one
hub ingest worker and the federated aggregator service, which publishes every new version through the
downlink publisher. Each night half the boxes (chosen at random) are online: they fetch the newest
global model (verify, judge on their holdout, activate or keep), train from it, send their update and
wait for the hub's end-to-end ack; the others only keep recording answers.

Reports, on the test students of every classroom (never on any box):
- held-out AUC after each night for federated (FedAvg), centralized (all training rows in one place)
  and local-only (each classroom alone, judged on its own test students);
- one classroom sending every update scaled by 100: FedAvg and a robust strategy (norm_bound), and the
  robust strategy without the attack, so the drop is measured like for like;
- bytes of each update against the same update as float32.
Targets: federated ends within 0.01 AUC of centralized and clearly above local-only; with the robust
option on, the attack lowers the final AUC by at most 0.01; updates <= 25% of float32.
Writes bench/out/federated.json and bench/out/federated.png.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import tempfile
import time
from pathlib import Path

import numpy as np

from appliance.federated.update import float32_size
from appliance.learning.features import FeatureSpec
from bench.common import OUT, emit
from bench.fl_world import (
    Evaluator,
    Mosquitto,
    baselines,
    describe,
    make_world,
    seed_night,
)

log = logging.getLogger("bench.federated")
MODEL = "learner"


def _keys(tmp: Path) -> tuple[Path, str]:
    from appliance.hub.publisher import generate_key

    path = tmp / "hub-signing.key"
    return path, generate_key(path)


def _wait(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


@contextlib.contextmanager
def _poisoned(factor: float):
    """A malicious box: its honest, clipped update multiplied by ``factor`` before encoding."""
    from appliance.federated import training

    honest = training.make_update

    def scaled(*a, **k):
        upd = honest(*a, **k)
        upd.delta = (upd.delta * factor).astype(np.float32)
        return upd

    training.make_update = scaled
    try:
        yield
    finally:
        training.make_update = honest


def run_federated(rooms, ev: Evaluator, args, *, strategy: str, attacker: int | None, noise: float = 0.0) -> dict:
    from appliance.federated.downlink import FederatedInstallHandler
    from appliance.federated.training import run_training
    from appliance.hub.federated import FederatedHub
    from appliance.hub.ingest import IngestWorker
    from appliance.services import Services
    from appliance.sync.service import SyncService
    from bench.fl_world import box_config, hub_config

    rng = np.random.default_rng(args.seed + 17)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ce-bench-fl-") as tmp_name, Mosquitto() as broker:
        tmp = Path(tmp_name)
        key_file, pub = _keys(tmp)
        hub_cfg = hub_config(tmp / "hub", broker.url, key_file, strategy=strategy, buffer_size=args.buffer_size)
        hub = FederatedHub(hub_cfg).open()
        worker = IngestWorker(hub_cfg, on_update=hub.wake)
        worker.start()
        hub.start()
        boxes = [Services.open(box_config(tmp / f"box{r.index:02d}", broker.url, f"room{r.index:02d}", pub, noise))
                 for r in rooms]
        curve, sizes, decisions, refused, eps = [], [], {"active": 0, "candidate": 0, "rejected": 0}, 0, []
        try:
            for night in range(args.nights):
                for r, box in zip(rooms, boxes):
                    seed_night(box.db, r.nights[night])
                online = sorted(rng.choice(len(rooms), size=max(1, round(len(rooms) * args.online)),
                                           replace=False).tolist())
                relays = {i: SyncService(boxes[i].cfg, boxes[i].db, FederatedInstallHandler(boxes[i])) for i in online}
                for svc in relays.values():
                    svc.start()
                _wait(lambda: hub.status()["published"] == hub.status()["version"], 60, "the hub's announcement")
                newest = hub.status()["published"]
                for i in online:  # the box syncs first: the newest global model arrives and is judged
                    _wait(lambda b=boxes[i], v=newest: _decided(b, v), 120, f"room {i} to get version {newest}")
                sent_before = hub.status()["consumed"]
                night_sizes = []
                for i in online:
                    with _poisoned(100.0) if i == attacker else contextlib.nullcontext():
                        res = run_training(boxes[i], now=True)
                    if res.status == "sent":
                        night_sizes.append(res.size_bytes)
                        eps.append(res.epsilon)
                want = sent_before + len(night_sizes)
                _wait(lambda w=want: hub.status()["consumed"] >= w, 120, "the hub to take the updates")
                for i in online:  # the hub acknowledged end to end: the update left the box
                    _wait(lambda b=boxes[i]: _outbox_empty(b), 60, f"room {i}'s ack")
                _wait(lambda: hub.status()["published"] == hub.status()["version"], 60, "the new version's announcement")
                for svc in relays.values():
                    svc.stop(15)
                params = _hub_params(hub)
                curve.append(ev.global_auc(params))
                sizes.append(night_sizes)
                log.info("%s%s night %d: version %s, AUC %.4f, %d updates", strategy,
                         " (attacked)" if attacker is not None else "", night, hub.status()["version"], curve[-1],
                         len(night_sizes))
            for box in boxes:
                with box.db.read() as conn:
                    for status, n in conn.execute("SELECT status, count(*) FROM candidates GROUP BY status"):
                        decisions[status] = decisions.get(status, 0) + n
            refused = hub.status()["refused"]
            final = hub.status()
        finally:
            hub.stop(15)
            worker.stop(15)
            hub.close()
            for box in boxes:
                box.close()
    flat = [s for night in sizes for s in night]
    spent = [e for e in eps if e is not None]
    return {"strategy": strategy, "attacked_by_classroom": attacker, "noise_multiplier": noise,
            "largest_epsilon_per_box": round(max(spent), 2) if spent else None, "auc_by_night": [round(a, 4) for a in curve],
            "final_auc": round(curve[-1], 4), "global_versions": final["version"], "updates": len(flat),
            "updates_refused_by_hub": refused, "box_decisions": decisions, "update_bytes": flat,
            "bytes_per_night_mean": [round(float(np.mean(s)), 1) if s else None for s in sizes],
            "seconds": round(time.monotonic() - t0, 1)}


def _decided(box, version) -> bool:
    with box.db.read() as conn:
        return conn.execute("SELECT 1 FROM candidates WHERE model = ? AND version = ?", (MODEL, version)).fetchone() \
            is not None


def _outbox_empty(box) -> bool:
    with box.db.read() as conn:
        return conn.execute("SELECT count(*) FROM sync_blobs").fetchone()[0] == 0


def _hub_params(hub) -> np.ndarray:
    with hub.db.read() as conn:
        return hub.agg.current(conn).params


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = result["runs"]
    x = np.arange(1, len(result["centralized"]["auc_by_night"]) + 1)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 5.2), gridspec_kw={"width_ratios": [2.2, 1]})
    ax.plot(x, result["centralized"]["auc_by_night"], "k-", lw=2.2, label="centralized (all data in one place)")
    ax.plot(x, runs["fedavg"]["auc_by_night"], "-", color="tab:blue", lw=2.2, marker="o", ms=4,
            label="federated, FedAvg")
    ax.plot(x, result["local_only"]["auc_by_night"], "-", color="tab:gray", lw=2, label="local only (each classroom alone)")
    ax.plot(x, runs[f"{result['setup']['robust_strategy']}_attacked"]["auc_by_night"], "--", color="tab:green", lw=2,
            label=f"federated, {result['setup']['robust_strategy']}, 1 classroom x100")
    robust = result["setup"]["robust_strategy"]
    ax.plot(x, runs[robust]["auc_by_night"], "-", color="tab:green", lw=1, alpha=0.5,
            label=f"federated, {robust}, no attack")
    att = runs["fedavg_attacked"]
    ax.plot(x, att["auc_by_night"], ":", color="tab:red", lw=2,
            label=f"federated, FedAvg, 1 classroom x100 (ends at {att['final_auc']:.2f})")
    ax.set_xlabel("night (half of the classrooms online each night)")
    ax.set_ylabel("held-out AUC (test students of every classroom)")
    ax.set_title(f"{result['setup']['classrooms']} simulated classrooms, real relay + Mosquitto + hub")
    lo = min(min(result["local_only"]["auc_by_night"]), min(runs["fedavg"]["auc_by_night"])) - 0.01
    ax.set_ylim(max(0.45, lo), max(result["centralized"]["auc_by_night"]) + 0.01)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=9)
    b = result["bytes"]
    bars = bx.bar(["float32 update", "int8 + zstd\n(mean)", "int8 + zstd\n(max)"],
                  [b["float32_bytes"], b["mean_update_bytes"], b["max_update_bytes"]],
                  color=["tab:gray", "tab:blue", "tab:cyan"])
    for rect in bars:
        bx.annotate(f"{rect.get_height():.0f} B", (rect.get_x() + rect.get_width() / 2, rect.get_height()),
                    ha="center", va="bottom")
    bx.set_title(f"bytes per classroom per night: {100 * b['mean_ratio']:.0f}% of float32")
    bx.set_ylabel("bytes of one update")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small smoke run")
    p.add_argument("--classrooms", type=int, default=20)
    p.add_argument("--nights", type=int, default=20)
    p.add_argument("--students", type=int, default=30, help="students per classroom on the box")
    p.add_argument("--test-students", type=int, default=6, help="students per classroom kept for testing")
    p.add_argument("--online", type=float, default=0.5, help="share of classrooms online each night")
    p.add_argument("--buffer-size", type=int, default=10, help="FedBuff K")
    p.add_argument("--robust", default="norm_bound", choices=("norm_bound", "median", "trimmed_mean"))
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--dp-noise", type=float, default=0.0,
                   help="also run FedAvg with local DP noise of this multiplier (0 = skip; the bench targets are "
                        "without noise)")
    args = p.parse_args(argv)
    if args.quick:
        args.classrooms, args.nights, args.students, args.buffer_size = 6, 4, 12, 3
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("appliance", "bench.fl_world"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    t0 = time.monotonic()
    rooms = make_world(args.classrooms, args.students, args.test_students, 10, args.nights, args.seed, 0.2)
    ev = Evaluator(rooms)
    log.info("%d classrooms simulated in %.0f s", len(rooms), time.monotonic() - t0)
    base = baselines(rooms, ev, args.nights, l2=1.0)
    log.info("centralized and local-only baselines done at %.0f s", time.monotonic() - t0)
    attacker = 0
    runs = {"fedavg": run_federated(rooms, ev, args, strategy="fedavg", attacker=None),
            "fedavg_attacked": run_federated(rooms, ev, args, strategy="fedavg", attacker=attacker),
            f"{args.robust}": run_federated(rooms, ev, args, strategy=args.robust, attacker=None),
            f"{args.robust}_attacked": run_federated(rooms, ev, args, strategy=args.robust, attacker=attacker)}
    if args.dp_noise > 0:
        runs["fedavg_dp"] = run_federated(rooms, ev, args, strategy="fedavg", attacker=None, noise=args.dp_noise)
    n = FeatureSpec().n_features + 1
    sizes = runs["fedavg"]["update_bytes"]
    fed, cen, loc = runs["fedavg"]["final_auc"], base["centralized"][-1], base["local_only"][-1]
    robust_clean, robust_att = runs[args.robust]["final_auc"], runs[f"{args.robust}_attacked"]["final_auc"]
    result = {
        "setup": {"classrooms": args.classrooms, "nights": args.nights, "online_share": args.online,
                  "students_per_box": args.students, "test_students_per_classroom": args.test_students,
                  "buffer_size": args.buffer_size, "transport": "relay (SyncService) -> Mosquitto -> hub ingest -> "
                  "FederatedHub -> publisher -> downlink -> activation policy", "initial_global_model": "zeros",
                  "data_window": "all", "robust_strategy": args.robust, "attacker": f"classroom {attacker}, x100",
                  "classrooms_detail": describe(rooms)},
        "centralized": {"auc_by_night": [round(a, 4) for a in base["centralized"]], "final_auc": round(cen, 4)},
        "local_only": {"auc_by_night": [round(a, 4) for a in base["local_only"]], "final_auc": round(loc, 4)},
        "runs": runs,
        "bytes": {"float32_bytes": float32_size(n), "parameters": n,
                  "mean_update_bytes": round(float(np.mean(sizes)), 1), "max_update_bytes": int(np.max(sizes)),
                  "mean_ratio": round(float(np.mean(sizes)) / float32_size(n), 4),
                  "max_ratio": round(float(np.max(sizes)) / float32_size(n), 4)},
        "targets": {
            "federated_within_0.01_of_centralized": {"gap": round(cen - fed, 4), "met": cen - fed <= 0.01},
            "federated_above_local_only": {"gain": round(fed - loc, 4), "met": fed - loc >= 0.01},
            "robust_attack_drop_at_most_0.01": {"robust_clean": robust_clean, "robust_attacked": robust_att,
                                                "drop_vs_robust_clean": round(robust_clean - robust_att, 4),
                                                "drop_vs_fedavg_clean": round(fed - robust_att, 4),
                                                "met": max(robust_clean, fed) - robust_att <= 0.01},
            "fedavg_attack_drop": round(fed - runs["fedavg_attacked"]["final_auc"], 4),
            "update_at_most_25pct_of_float32": {"max_ratio": round(float(np.max(sizes)) / float32_size(n), 4),
                                                "met": float(np.max(sizes)) <= 0.25 * float32_size(n)},
        },
        "seconds": round(time.monotonic() - t0, 1),
    }
    for r in runs.values():
        r.pop("update_bytes", None)
    OUT.mkdir(exist_ok=True)
    plot(result, OUT / "federated.png")
    result["plot"] = str(OUT / "federated.png")
    return emit("federated", result)


if __name__ == "__main__":
    main()
