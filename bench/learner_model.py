"""Learner model quality: our Best-LR vs pyBKT vs the simulator's truth, on held-out students.

    python -m bench.learner_model [--quick] [--seed N]

Same simulated classrooms for everyone (varied pace, ability and curriculum order); 20% of the
students are held out of training. Reports AUC and RMSE of
- "ours" (``ours_best_lr``, the row the target is on): our learner model fitted on the training
  students' answers like pyBKT is, with every feature (per-skill counts and recency, item and skill
  difficulties; L2 logistic regression, L-BFGS). That is what the classrooms' federated training
  fits (``bench.federated``: the federated model ends within 0.01 AUC of this centralized fit);
- "ours as shipped, cold start" (``ours_cold_start_as_shipped``): the model ``build_default_models``
  installs before a box has any answers. It is fitted on the shared features only (the simulator's
  item and skill ids are not a real course's: ``learner_train.shared_columns_only``), so it knows no
  item's difficulty and scores below the fitted model and pyBKT; it is reported, not held to the target;
- pyBKT: standard BKT and BKT with forgetting + per-item guess/slip (quick: BKT only; BKT with
  forgetting alone scored no better than BKT here and took 4x as long, so it is not run); items tagged with two skills are fed to pyBKT once per skill and its predictions averaged;
- "ceiling": the simulator's true P(correct), which no model can beat.
Target: AUC(ours) >= AUC(best pyBKT variant) + 0.02. Writes bench/out/learner_model.json (+ .png).

Also ``failing_runs``: the default model as shipped (shared features only), on fresh simulated
classrooms, where a student right more than 60% of the time overall has answered a skill wrong at
least 4 times, right at most once, and wrong the last 3 times. The teacher's grid flags such a child
"Needs help" by its own rule; this shows what the model says there next to the simulator's truth and
what such students then do.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from appliance.learning.features import FeatureSpec, LearnerState
from appliance.learning.learner_train import (
    auc,
    build_dataset,
    rmse,
    shared_columns_only,
    simulate_training_data,
    split_students,
    train,
    train_default,
)
from bench.common import OUT, emit

TARGET_MARGIN = 0.02


def import_pybkt():
    """pyBKT 1.4.3 against today's numpy / scikit-learn needs two narrow shims (reported in the JSON).

    1. At import it probes every sklearn *_loss function with lists; sklearn >= 1.6's private
       `_log_loss` raises AttributeError instead of TypeError. We hide it during the import only.
    2. Its EM loop stores a (1, 1) array into a float slot, which numpy >= 2 refuses; we hand it
       the scalar it meant. The fitted model and its predictions are unchanged.
    """
    import sklearn.metrics._classification as skc

    original = skc._log_loss

    def _not_a_metric(*_a, **_k):
        raise TypeError("private helper, not a metric")

    skc._log_loss = _not_a_metric
    try:
        from pyBKT.models import Model
    finally:
        skc._log_loss = original
    import pyBKT.fit.EM_fit as em

    if not getattr(em.run, "_ce_scalar_shim", False):
        run = em.run

        def scalar_loglike(*a, **k):
            result = run(*a, **k)
            result["total_loglike"] = float(np.asarray(result["total_loglike"]).reshape(-1)[0])
            return result

        scalar_loglike._ce_scalar_shim = True
        em.run = scalar_loglike
    return Model, ["sklearn _log_loss hidden during import", "EM total_loglike as scalar (numpy 2)"]


def pybkt_predict(Model, rows, train_mask, test_mask, seed: int, **fit_kwargs) -> tuple[np.ndarray, float]:
    import pandas as pd

    records = [{"row": i, "user_id": a.student_id, "skill_name": s, "correct": int(a.correct),
                "order_id": 0, "item_id": a.item_id} for i, a in enumerate(rows) for s in a.skills]
    df = pd.DataFrame.from_records(records)
    df["order_id"] = np.arange(len(df))  # rows are already in time order per student
    in_train = train_mask[df["row"].to_numpy()]
    t0 = time.perf_counter()
    model = Model(seed=seed, num_fits=1, parallel=False)
    model.fit(data=df[in_train], **fit_kwargs)
    fit_s = time.perf_counter() - t0
    pred = model.predict(data=df[test_mask[df["row"].to_numpy()]])
    per_row = pred.groupby("row")["correct_predictions"].mean()
    out = np.full(len(rows), np.nan)
    out[per_row.index.to_numpy()] = per_row.to_numpy()
    return out[test_mask], fit_s


def _plot(curves: dict, y: np.ndarray, path) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(5, 5))
    for name, p in curves.items():
        order = np.argsort(-p)
        tp = np.cumsum(y[order]) / y.sum()
        fp = np.cumsum(1 - y[order]) / (1 - y).sum()
        ax.plot(fp, tp, label=f"{name} (AUC {auc(y, p):.3f})")
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="Held-out students")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return str(path)


def failing_runs(seed: int, classrooms: int, students: int) -> dict:
    """The shipped default model where a strong student keeps failing one skill (see the module doc)."""
    model, _metrics = train_default(seed, classrooms, students)
    spec, states, runs, picked = FeatureSpec(), {}, {}, []
    for a in simulate_training_data(seed + 7, classrooms, students):  # students the model never saw
        state = states.setdefault(a.student_id, LearnerState())
        skill, seen = a.skills[0], runs.setdefault((a.student_id, a.skills[0]), [])
        st = state.skills.get(skill)
        total = state.success + state.failure
        if st and st.failure >= 4 and st.success <= 1 and seen[-3:] == [0, 0, 0] and state.success > 0.6 * total:
            p = float(model.predict(spec.encode(state, a.item_id, a.skills, a.timestamp)[None, :])[0])
            picked.append((p, a.p_true, a.correct))
        state.observe(a.item_id, a.skills, a.correct, a.timestamp)
        seen.append(int(a.correct))
    if not picked:
        return {"answers": 0}
    p, truth, right = np.array(picked).mean(axis=0)
    return {"answers": len(picked), "model_p": round(float(p), 3), "simulator_true_p": round(float(truth), 3),
            "answered_right": round(float(right), 3)}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small data, standard BKT only")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    classrooms, students = (4, 20) if args.quick else (12, 40)

    attempts = simulate_training_data(args.seed, classrooms, students)
    spec = FeatureSpec()
    X, y, rows = build_dataset(attempts, spec)
    tr, te = split_students(rows, 0.2, args.seed)
    yt = y[te]
    p_true = np.array([a.p_true for a in rows])[te]

    t0 = time.perf_counter()
    ours = train(X[tr], y[tr], spec).predict(X[te])
    results = {"ours_best_lr": {"auc": auc(yt, ours), "rmse": rmse(yt, ours), "fit_s": time.perf_counter() - t0}}
    curves = {"ours (Best-LR)": ours}
    shipped, _metrics = train_default(args.seed, classrooms, students)
    cold = shipped.predict(shared_columns_only(X, spec)[te])
    results["ours_cold_start_as_shipped"] = {"auc": auc(yt, cold), "rmse": rmse(yt, cold)}
    curves["ours as shipped (cold start)"] = cold

    Model, shims = import_pybkt()
    variants = {"pybkt_bkt": {}}
    if not args.quick:
        variants["pybkt_bkt_forgets_item_guess_slip"] = {"forgets": True, "multigs": "item_id"}
    for name, kw in variants.items():
        p, fit_s = pybkt_predict(Model, rows, tr, te, args.seed, **kw)
        results[name] = {"auc": auc(yt, p), "rmse": rmse(yt, p), "fit_s": fit_s}
        curves[name] = p
    results["ceiling_simulator_truth"] = {"auc": auc(yt, p_true), "rmse": rmse(yt, p_true)}
    curves["ceiling"] = p_true

    best_bkt = max((k for k in results if k.startswith("pybkt")), key=lambda k: results[k]["auc"])
    margin = results["ours_best_lr"]["auc"] - results[best_bkt]["auc"]
    for r in results.values():
        for k in r:
            r[k] = round(float(r[k]), 4)
    OUT.mkdir(exist_ok=True)
    plot = _plot(curves, yt, OUT / "learner_model.png")
    return emit("learner_model", {
        "quick": args.quick,
        "data": {"seed": args.seed, "classrooms": classrooms, "students_per_classroom": students,
                 "train_rows": int(tr.sum()), "test_rows": int(te.sum()),
                 "test_students": len({rows[i].student_id for i in np.flatnonzero(te)})},
        "results": results,
        "best_pybkt": best_bkt,
        "auc_margin_over_best_pybkt": round(margin, 4),
        "auc_gap_to_ceiling": round(results["ceiling_simulator_truth"]["auc"] - results["ours_best_lr"]["auc"], 4),
        "target": {"auc_margin_at_least": TARGET_MARGIN, "met": bool(margin >= TARGET_MARGIN)},
        "failing_runs": failing_runs(args.seed, classrooms * 2, students),
        "pybkt_shims": shims,
        "plot": plot,
    })


if __name__ == "__main__":
    main()
