"""Choosing a free-text exercise's threshold and confidence scale from scored examples (pure numpy).

``choose_threshold(pos, neg)`` takes the similarities of known-right texts (positives) and known-wrong
texts (negatives) to the exercise's references and returns
- the threshold with the best balanced accuracy; among equally good thresholds the one farthest from
  any example (maximum margin). When even the best threshold separates the examples poorly, the
  examples say little, so the threshold is pulled towards the default in proportion (a balanced
  accuracy of 0.5 is no evidence, 0.9 or more is full trust); then clipped to a sane range;
- ``tau``, the width of a logistic curve p(right | similarity) = sigmoid((s - threshold) / tau) fitted by
  class-balanced maximum likelihood. Where positives and negatives overlap, tau is wide and grades
  near the threshold get low confidence; where they are far apart, tau is narrow. A floor keeps a
  perfectly separated calibration set from claiming certainty a hair away from the threshold.
Confidence of a grade = |2 p - 1| = tanh(|s - threshold| / (2 tau)).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

MIN_THRESHOLD, MAX_THRESHOLD = 0.35, 0.9
DEFAULT_THRESHOLD = 0.7
MIN_TAU, MAX_TAU = 0.03, 0.5

# Everyday non-answers in the languages of the demo courses: a grader must never accept these.
NON_ANSWERS = [
    "I don't know.", "No idea.", "Because.", "Yes.", "No.", "It is a number.", "I like pizza.",
    "The cat sleeps on the warm sofa.", "My favourite colour is blue.", "asdf",
    "No sé.", "Porque sí.", "Sí.", "Me gusta la pizza.", "El gato duerme en el sofá.", "Es un número.",
]


@dataclass
class Calibration:
    threshold: float
    spread: float                      # tau of the logistic curve
    refs_sha256: str
    detail: dict = field(default_factory=dict)


def effective(to_references: float, to_question: float) -> float:
    """The similarity a grade uses: to the references, minus how much closer the text is to the question.

    A child who copies or restates the question scores high against the references (same topic, same
    words) but higher still against the question; a real answer is closer to the references. The
    discount makes "restating the question" lose points without touching real answers.
    """
    return to_references - max(0.0, to_question - to_references)


def confidence(similarity: float, threshold: float, tau: float) -> float:
    return math.tanh(abs(similarity - threshold) / (2 * max(tau, MIN_TAU)))


def shortened(reference: str) -> list[str]:
    """Incomplete versions of a reference (its first and last ~60% of words), as a child might write."""
    words = reference.split()
    if len(words) < 6:
        return []
    k = math.ceil(len(words) * 0.6)
    return [" ".join(words[:k]), " ".join(words[-k:])]


def wrong_answers_of(spec: dict) -> list[str]:
    """The author's known-wrong answers of a free-text spec (classic misconceptions), if any."""
    return [t for t in spec.get("wrong_answers", []) or [] if isinstance(t, str) and t.strip()]


def negatives_for(exercise: dict, course_rows: list[dict]) -> list[str]:
    """The question itself, the course's other questions and their references, and non-answers
    (the exercise's own wrong answers are scored apart: ``wrong_answers_of``)."""
    out = [exercise["prompt"]]
    for r in course_rows:
        if r["id"] == exercise["id"]:
            continue
        out.append(r["prompt"])
        if r["kind"] == "free_text":
            out += [t for t in r["spec"].get("references", []) if isinstance(t, str) and t.strip()]
    out += NON_ANSWERS
    own = set(exercise["spec"].get("references", [])) | set(wrong_answers_of(exercise["spec"]))
    return [t for t in dict.fromkeys(out) if t and t not in own]


def _balanced_accuracy(P: np.ndarray, N: np.ndarray, t: float) -> float:
    return float(((P >= t).mean() + (N < t).mean()) / 2)


def _fit_tau(P: np.ndarray, N: np.ndarray, t: float) -> float:
    best_tau, best_ll = MAX_TAU, -math.inf
    for tau in np.geomspace(MIN_TAU, MAX_TAU, 40):
        # Class-balanced log-likelihood: there are many more negatives than positives.
        lp = -np.logaddexp(0, -(P - t) / tau).mean()
        ln = -np.logaddexp(0, (N - t) / tau).mean()
        if lp + ln > best_ll:
            best_tau, best_ll = float(tau), lp + ln
    return best_tau


def choose_threshold(pos: list[float], neg: list[float], refs_sha256: str,
                     wrong: list[float] = ()) -> Calibration:
    """``wrong``: scores of the exercise's own known-wrong answers (on topic, the hard negatives).

    They are few next to the off-topic negatives, so they count as a class of their own: the
    negative side's accuracy is the mean of the two, and a threshold that lets them pass loses.
    """
    wrong = list(wrong)
    if not pos or not (neg or wrong):
        # One reference and nothing to shorten, or no references: no evidence, the default stands.
        return Calibration(DEFAULT_THRESHOLD, 0.1, refs_sha256,
                           {"source": "default", "positives": len(pos), "negatives": len(neg) + len(wrong)})
    P, N, W = np.asarray(pos, float), np.asarray(list(neg) + wrong, float), np.asarray(wrong, float)
    scores = np.unique(np.concatenate([P, N]))
    cands = np.concatenate([[scores[0] - 0.01], (scores[:-1] + scores[1:]) / 2, [scores[-1] + 0.01]])
    acc = np.array([_balanced_accuracy(P, N, t) if not len(W) else
                    (_balanced_accuracy(P, N, t) + _balanced_accuracy(P, W, t)) / 2 for t in cands])
    ties = cands[acc >= acc.max() - 1e-9]
    margin = np.array([np.abs(scores - t).min() for t in ties])
    best = float(ties[int(np.argmax(margin))])
    trust = float(np.clip((acc.max() - 0.5) / 0.4, 0.0, 1.0))
    t = float(np.clip(trust * best + (1 - trust) * DEFAULT_THRESHOLD, MIN_THRESHOLD, MAX_THRESHOLD))
    if not len(W):
        # Off-topic negatives (other questions, non-answers) are easy to beat, so they let the threshold
        # fall far below what separates a right answer from an on-topic wrong one ("The numerator."
        # passed "what does the denominator tell you?" at 0.47). Without the author's wrong answers
        # there is no evidence for going below the default.
        t = max(t, DEFAULT_THRESHOLD)
    tau = _fit_tau(P, N, t)
    detail = {"source": "calibrated", "positives": len(pos), "negatives": len(N), "wrong_answers": len(W),
              "best_separating_threshold": round(best, 4), "trust": round(trust, 3),
              "balanced_accuracy": round(_balanced_accuracy(P, N, t), 4),
              "wrong_answer_max": round(float(W.max()), 4) if len(W) else None,
              "positive_median": round(float(np.median(P)), 4), "positive_min": round(float(P.min()), 4),
              "negative_max": round(float(N.max()), 4)}
    return Calibration(round(t, 4), round(tau, 4), refs_sha256, detail)
