"""What every exercise generator shares: fraction formatting, answer tolerances, and the ``Builder``
that shuffles choices deterministically and numbers exercises by stable ids (``compare-03``)."""
from __future__ import annotations

import math
import random
import re
from fractions import Fraction

from appliance.content.demo.text import Lang


def fs(f: Fraction) -> str:
    """A fraction as children write it: 3/4 (never 6/8 unless asked), whole numbers bare."""
    return str(f.numerator) if f.denominator == 1 else f"{f.numerator}/{f.denominator}"


def raw(n: int, d: int) -> str:
    """An unsimplified fraction exactly as written (6/8 stays 6/8)."""
    return f"{n}/{d}"


def mixed(f: Fraction) -> str:
    w, r = divmod(f.numerator, f.denominator)
    return f"{w} {r}/{f.denominator}" if r else str(w)


def frac_pattern(text: str) -> str:
    """A regex accepting ``text`` with any spaces around the slash ("3 / 4")."""
    parts = [re.escape(p) for p in text.split("/")]
    return r"^\s*" + r"\s*/\s*".join(parts) + r"\s*$"


def tolerance_for(f: Fraction) -> float:
    # Exact decimals (3/4 = 0.75) must be typed exactly; repeating ones (2/3) accept two decimals.
    d = f.denominator
    while d % 2 == 0:
        d //= 2
    while d % 5 == 0:
        d //= 5
    return 0.0 if d == 1 else 0.005


class Builder:
    def __init__(self, lang: Lang, rng: random.Random):
        self.t = lang
        self.rng = rng
        self.items: list[dict] = []
        self._seen: set[tuple] = set()

    def fresh(self, key: tuple) -> bool:
        """True the first time ``key`` is seen, so generators never repeat an exercise."""
        if key in self._seen:
            return False
        self._seen.add(key)
        return True

    def _add(self, prefix: str, lesson: str, kind: str, skills: list[str], difficulty: float, prompt: str, spec: dict):
        n = sum(1 for e in self.items if e["id"].startswith(prefix + "-")) + 1
        jitter = self.rng.uniform(-0.04, 0.04)
        self.items.append({
            "id": f"{prefix}-{n:02d}", "lesson": lesson, "kind": kind, "skills": skills,
            "difficulty": round(min(1.0, max(0.0, difficulty + jitter)), 2), "prompt": prompt, "spec": spec,
        })

    def single(self, prefix, lesson, skills, diff, prompt, correct: str, wrong: list[str], hints, expl):
        options = [correct] + [w for w in dict.fromkeys(wrong) if w != correct]
        self.rng.shuffle(options)
        self._add(prefix, lesson, "single_choice", skills, diff, prompt,
                  {"choices": options, "answer": options.index(correct), "hints": hints, "explanation": expl})

    def multiple(self, prefix, lesson, skills, diff, prompt, options: list[tuple[str, bool]], hints, expl):
        options = list(dict(options).items())
        self.rng.shuffle(options)
        self._add(prefix, lesson, "multiple_choice", skills, diff, prompt,
                  {"choices": [o for o, _ in options], "answer": [i for i, (_, ok) in enumerate(options) if ok],
                   "hints": hints, "explanation": expl})

    def numeric(self, prefix, lesson, skills, diff, prompt, answer: Fraction, hints, expl, form: str | None = None):
        spec = {"answer": float(answer), "tolerance": tolerance_for(answer), "hints": hints, "explanation": expl}
        if form:
            spec["form"] = form  # the question practises writing it so: its own number copied is no answer
        self._add(prefix, lesson, "numeric", skills, diff, prompt, spec)

    def short(self, prefix, lesson, skills, diff, prompt, answers: list[str], hints, expl, patterns=(), case_sensitive=False):
        self._add(prefix, lesson, "short_text", skills, diff, prompt,
                  {"answers": answers, "patterns": list(patterns), "case_sensitive": case_sensitive,
                   "hints": hints, "explanation": expl})

    def free(self, prefix, lesson, skills, diff, prompt, references: list[str], hints, expl, wrong: list[str] = ()):
        # Wrong answers are the classic misconceptions: the calibration's only on-topic negatives.
        self._add(prefix, lesson, "free_text", skills, diff, prompt,
                  {"references": references, "wrong_answers": list(wrong), "threshold": None, "hints": hints,
                   "explanation": expl})


def proper(rng: random.Random, dens=(3, 4, 5, 6, 8, 10, 12)) -> tuple[int, int]:
    d = rng.choice(dens)
    return rng.randint(1, d - 1), d


def coprime(rng: random.Random, dens) -> tuple[int, int]:
    """A proper fraction already in simplest form (word problems read better with 3/4 than 6/8)."""
    while True:
        n, d = proper(rng, dens)
        if math.gcd(n, d) == 1:
            return n, d
