"""Exercise generators for the fractions course.

Every number is drawn from a seeded ``random.Random`` and every right answer is computed with
``fractions.Fraction``, never typed. Each generator consumes the random stream in the same way
whatever the language, so ``fractions`` and ``fractions-es`` hold the same exercises (same ids, same
numbers) with different words.
"""
from __future__ import annotations

import math
import random
from fractions import Fraction

from appliance.content.demo.builder import (
    Builder,
    coprime,
    frac_pattern,
    fs,
    mixed,
    proper,
    raw,
)
from appliance.content.demo.text import Lang

SEED = "classroom-edge fractions v1"
NAMES = ("Sam", "Ana", "Leo", "Maya", "Omar", "Zoe", "Iker", "Lucía")


def basics(b: Builder) -> None:
    t, rng, L, S = b.t, b.rng, "what-is-a-fraction", ["fraction-basics"]
    while sum(e["id"].startswith("basics-") for e in b.items) < 3:
        n, d = proper(rng)
        if b.fresh(("pizza", n, d)):
            b.single("basics", L, S, 0.15, t("pizza_q", n=n, d=d), raw(n, d), [raw(d, n), raw(d - n, d), raw(n, d + n)],
                     [t("pizza_hint1"), t("pizza_hint2")], t("pizza_expl", n=n, d=d))
    for n, d in ((3, 5), (5, 8), (2, 3)):
        words = t.words(n, d)[0]
        b.short("basics", L, S, 0.25, t("write_frac_q", words=words), [raw(n, d)], [t("write_frac_hint")],
                t("write_frac_expl", words=words, n=n, d=d), patterns=[frac_pattern(raw(n, d))])
    n, d = proper(rng)
    b.numeric("basics", L, S, 0.1, t("numerator_q", n=n, d=d), Fraction(n), [t("numden_hint")], t("numerator_expl", n=n, d=d))
    n, d = proper(rng, (5, 7, 9, 11))
    b.numeric("basics", L, S, 0.1, t("denominator_q", n=n, d=d), Fraction(d), [t("numden_hint")], t("denominator_expl", n=n, d=d))
    for n, d in ((1, 2), (3, 4)):
        words = t.words(n, d)
        b.short("basics", L, S, 0.35, t("in_words_q", n=n, d=d), words, [t("in_words_hint")],
                t("in_words_expl", n=n, d=d, words=words[0]))
    b.free("basics", L, S, 0.45, t("den_free_q"), t.list("den_free_refs"), [t("den_free_hint")], t("den_free_expl"),
           wrong=t.list("den_free_wrong"))


def _common(a: Fraction, c: Fraction) -> tuple[str, str]:
    lcm = a.denominator * c.denominator // math.gcd(a.denominator, c.denominator)
    return raw(a.numerator * lcm // a.denominator, lcm), raw(c.numerator * lcm // c.denominator, lcm)


def compare(b: Builder) -> None:
    t, rng, L, S = b.t, b.rng, "comparing-fractions", ["compare-fractions"]
    kinds = ["same_den", "same_num", "common", "common"]
    for kind in kinds:
        while True:
            if kind == "same_den":
                d = rng.choice((5, 7, 8, 9))
                n1, n2 = rng.sample(range(1, d), 2)
                a, c, hint = Fraction(n1, d), Fraction(n2, d), t("cmp_hint_same_den")
            elif kind == "same_num":
                n = rng.randint(1, 3)
                d1, d2 = rng.sample(range(n + 1, 11), 2)
                a, c, hint = Fraction(n, d1), Fraction(n, d2), t("cmp_hint_same_num")
            else:
                a, c = Fraction(*proper(rng, (2, 3, 4, 5, 6))), Fraction(*proper(rng, (3, 4, 6, 8)))
                hint = t("cmp_hint_common")
            if a != c and b.fresh(("cmp", a, c)):
                break
        big = max(a, c)
        ac, cc = _common(a, c)
        expl = (t("cmp_expl_same_den", big=fs(big)) if kind == "same_den"
                else t("cmp_expl", a=fs(a), b=fs(c), ac=ac, bc=cc, big=fs(big)))
        b.single("compare", L, S, {"same_den": 0.2, "same_num": 0.4, "common": 0.6}[kind],
                 t("bigger_q", a=fs(a), b=fs(c)), fs(big), [fs(a), fs(c), t("equal")], [hint], expl)
    for _ in range(2):
        while True:
            a, c = Fraction(*proper(rng, (3, 4, 5, 6, 8))), Fraction(*proper(rng, (3, 4, 5, 6, 8)))
            if b.fresh(("sym", a, c)):
                break
        sym = ">" if a > c else "<" if a < c else "="
        ac, cc = _common(a, c)
        b.short("compare", L, S, 0.5, t("symbol_q", a=fs(a), b=fs(c)), [sym], [t("cmp_hint_common")],
                t("symbol_expl", a=fs(a), b=fs(c), ac=ac, bc=cc, sym=sym))
    # Each round in its own words: two questions reading the same made two Next-up cards a child
    # could not tell apart.
    for d_pool, prompt in (((4, 5, 6, 8), "greater_half_q"), ((6, 8, 10, 12), "greater_half_q2")):
        opts: dict[Fraction, bool] = {}
        while len(opts) < 5:
            f = Fraction(*proper(rng, d_pool))
            if f != Fraction(1, 2):
                opts[f] = f > Fraction(1, 2)
        if not any(opts.values()):
            opts[Fraction(3, 4)] = True
        right = ", ".join(fs(f) for f in sorted(opts) if opts[f])
        b.multiple("compare", L, S, 0.55, t(prompt), [(fs(f), ok) for f, ok in opts.items()],
                   [t("greater_half_hint")], t("greater_half_expl", list=right))
    b.free("compare", L, S, 0.5, t("cmp_free_q"), t.list("cmp_free_refs"), [t("cmp_free_hint")], t("cmp_free_expl"),
           wrong=t.list("cmp_free_wrong"))


def equivalent(b: Builder) -> None:
    t, rng, L, S = b.t, b.rng, "equivalent-fractions", ["equivalent-fractions"]
    for _ in range(3):
        while True:
            n, d = proper(rng, (2, 3, 4, 5))
            k = rng.randint(2, 4)
            if math.gcd(n, d) == 1 and b.fresh(("eq", n, d, k)):
                break
        g = raw(n * k, d * k)
        wrong = [raw(n + k, d + k), raw(n * k, d + k), raw(n, d * k)]
        b.single("equivalent", L, S, 0.35, t("equiv_q", f=raw(n, d)), g, wrong, [t("equiv_hint")],
                 t("equiv_expl", f=raw(n, d), n=n, d=d, k=k, g=g))
    for _ in range(3):
        while True:
            n, d = proper(rng, (3, 4, 5, 6))
            k = rng.randint(2, 5)
            if b.fresh(("miss", n, d, k)):
                break
        b.numeric("equivalent", L, S, 0.4, t("missing_q", n=n, d=d, dk=d * k), Fraction(n * k),
                  [t("missing_hint", d=d, dk=d * k, n=n)], t("missing_expl", n=n, d=d, k=k, nk=n * k, dk=d * k))
    for base in (Fraction(1, 2), Fraction(2, 3)):
        opts = {raw(base.numerator * k, base.denominator * k): True for k in rng.sample(range(2, 6), 2)}
        for _ in range(3):
            n, d = proper(rng, (4, 6, 8, 9, 10))
            opts.setdefault(raw(n, d), Fraction(n, d) == base)
        right = ", ".join(o for o, ok in opts.items() if ok)
        b.multiple("equivalent", L, S, 0.5, t("equal_to_q", f=fs(base)), list(opts.items()), [t("equiv_hint")],
                   t("equal_to_expl", f=fs(base), list=right))
    b.free("equivalent", L, S, 0.55, t("equiv_free_q"), t.list("equiv_free_refs"), [t("equiv_hint")], t("equiv_free_expl"),
           wrong=t.list("equiv_free_wrong"))


def simplify(b: Builder) -> None:
    t, rng, L, S = b.t, b.rng, "equivalent-fractions", ["simplify-fractions"]
    while sum(e["id"].startswith("simplify-") for e in b.items) < 5:
        n, d = proper(rng, (2, 3, 4, 5))
        k = rng.randint(2, 6)
        s = Fraction(n, d)
        if s.numerator != n or not b.fresh(("simp", n * k, d * k)):
            continue
        g = math.gcd(n * k, d * k)
        b.short("simplify", L, S, 0.45 + 0.05 * k / 2, t("simplify_q", f=raw(n * k, d * k)), [fs(s)],
                [t("simplify_hint", n=n * k, d=d * k), t("simplify_hint2")],
                t("simplify_expl", n=n * k, d=d * k, g=g, a=s.numerator, b=s.denominator, f=raw(n * k, d * k), s=fs(s)),
                patterns=[frac_pattern(fs(s))])
    for prompt in ("simplest_q", "simplest_q2"):
        simple = Fraction(*proper(rng, (5, 7, 9)))
        wrong = []
        while len(wrong) < 3:
            n, d = proper(rng, (4, 6, 8, 10, 12))
            if math.gcd(n, d) > 1:
                wrong.append(raw(n, d))
        b.single("simplify", L, S, 0.5, t(prompt), fs(simple), wrong, [t("simplest_hint")],
                 t("simplest_expl", f=fs(simple)))
    x, y = rng.choice(((12, 18), (16, 24), (15, 25), (14, 21)))
    g = math.gcd(x, y)
    b.numeric("simplify", L, S, 0.6, t("gcd_q", a=x, b=y), Fraction(g), [t("gcd_hint", a=x, b=y)], t("gcd_expl", a=x, b=y, g=g))


def add_like(b: Builder) -> None:
    t, rng, L, S = b.t, b.rng, "adding-fractions", ["add-like-denominators"]
    for op in ("+", "+", "+", "+", "-", "-"):
        while True:
            d = rng.choice((5, 6, 7, 8, 9, 10))
            n1, n2 = rng.randint(1, d - 1), rng.randint(1, d - 1)
            if op == "-" and n1 <= n2:
                continue
            if (op == "+" and n1 + n2 > d + 2) or not b.fresh(("add", op, n1, n2, d)):
                continue
            break
        r = Fraction(n1 + n2 if op == "+" else n1 - n2, d)
        top = n1 + n2 if op == "+" else n1 - n2
        expl = t("add_expl" if op == "+" else "sub_expl", a=raw(n1, d), b=raw(n2, d), n1=n1, n2=n2, n=top, r=raw(top, d))
        if r.denominator != d:
            expl += " " + t("and_simplified", r=raw(top, d), s=fs(r))
        b.numeric("add", L, S, 0.35 if op == "+" else 0.45,
                  t("add_q" if op == "+" else "sub_q", a=raw(n1, d), b=raw(n2, d)), r,
                  [t("add_hint" if op == "+" else "sub_hint")], expl)
    for _ in range(2):
        while True:
            d = rng.choice((3, 4, 5, 7))
            n1, n2 = rng.randint(1, d - 1), rng.randint(1, d - 1)
            if n1 + n2 < d and b.fresh(("addc", n1, n2, d)):
                break
        b.single("add", L, S, 0.3, t("add_choice_q", a=raw(n1, d), b=raw(n2, d)), raw(n1 + n2, d),
                 [raw(n1 + n2, 2 * d), raw(n1 * n2, d), raw(n1 + n2, d * d)], [t("add_trap_hint")],
                 t("add_expl", a=raw(n1, d), b=raw(n2, d), n1=n1, n2=n2, n=n1 + n2, r=raw(n1 + n2, d)))
    b.free("add", L, S, 0.6, t("add_free_q"), t.list("add_free_refs"), [t("add_trap_hint")], t("add_free_expl"),
           wrong=t.list("add_free_wrong"))


def fraction_of(b: Builder) -> None:
    t, rng, L, S = b.t, b.rng, "fraction-of-a-number", ["fraction-of-number"]
    for i in range(6):
        while True:
            n, d = proper(rng, (2, 3, 4, 5, 6, 8))
            big = d * rng.randint(2, 6 if i < 3 else 12)
            if b.fresh(("of", n, d, big)):
                break
        g = big // d
        r = Fraction(n, d) * big
        hints = [t("of_hint1", N=big, d=d), t("of_hint2", n=n)]
        expl = t("of_expl", N=big, d=d, g=g, n=n, r=fs(r))
        if i < 5:
            b.numeric("of", L, S, 0.3 + 0.06 * i, t("of_q", f=raw(n, d), N=big), r, hints, expl)
        else:
            b.single("of", L, S, 0.35, t("of_q", f=raw(n, d), N=big), fs(r),
                     [str(big // n if big % n == 0 else big - n), str(g), str(big * n)], hints, expl)


def mixed_numbers(b: Builder) -> None:
    t, rng, L, S = b.t, b.rng, "mixed-numbers", ["mixed-numbers"]
    for _ in range(3):
        while True:
            d = rng.choice((2, 3, 4, 5, 6))
            w, r = rng.randint(1, 3), rng.randint(1, d - 1)
            f = Fraction(w * d + r, d)
            if f.denominator == d and b.fresh(("tomix", f)):
                break
        b.numeric("mixed", L, S, 0.5, t("to_mixed_q", f=fs(f)), f, [t("to_mixed_hint", n=f.numerator, d=d)],
                  t("to_mixed_expl", n=f.numerator, d=d, w=w, r=r, f=fs(f), m=mixed(f)), form="mixed")
    for _ in range(3):
        while True:
            d = rng.choice((3, 4, 5, 8))
            w, r = rng.randint(1, 4), rng.randint(1, d - 1)
            f = Fraction(w * d + r, d)
            if f.denominator == d and b.fresh(("toimp", f)):
                break
        b.short("mixed", L, S, 0.55, t("to_improper_q", m=mixed(f)), [fs(f)], [t("to_improper_hint")],
                t("to_improper_expl", w=w, d=d, n=r, top=f.numerator, m=mixed(f)), patterns=[frac_pattern(fs(f))])
    for _ in range(2):
        while True:
            d = rng.choice((3, 4, 5))
            w, r = rng.randint(1, 3), rng.randint(1, d - 1)
            f = Fraction(w * d + r, d)
            if f.denominator == d and b.fresh(("mixc", f)):
                break
        wrong = [f"{w + 1} {r}/{d}", f"{r} {w}/{d}", f"{w} {d - r}/{d}" if d - r != r else f"{w} {r}/{d + 1}"]
        b.single("mixed", L, S, 0.45, t("mixed_choice_q", f=fs(f)), mixed(f), wrong,
                 [t("to_mixed_hint", n=f.numerator, d=d)], t("to_mixed_expl", n=f.numerator, d=d, w=w, r=r, f=fs(f), m=mixed(f)))


def _decimal(f: Fraction, lang_code: str = "en") -> str:
    """``f`` as a decimal, written as children in the course's language write it (Spanish: 0,75)."""
    text = f"{float(f):.3f}".rstrip("0").rstrip(".")
    return text.replace(".", ",") if lang_code == "es" else text


def decimals(b: Builder) -> None:
    t, rng, L, S = b.t, b.rng, "decimals-and-fractions", ["decimals-fractions"]

    def _decimal_here(f: Fraction) -> str:
        return _decimal(f, t.code)
    for f in rng.sample([Fraction(1, 2), Fraction(1, 4), Fraction(3, 4), Fraction(2, 5), Fraction(3, 5),
                         Fraction(7, 10), Fraction(1, 5), Fraction(9, 20)], 3):
        scale = 10 if 10 % f.denominator == 0 else 100
        e = raw(f.numerator * scale // f.denominator, scale)
        b.numeric("decimals", L, S, 0.45, t("to_decimal_q", f=fs(f)), f, [t("to_decimal_hint")],
                  t("to_decimal_expl", f=fs(f), e=e, dec=_decimal_here(f)), form="decimal")
    for tenths in rng.sample([2, 4, 5, 6, 8, 3, 7, 9], 3):
        f = Fraction(tenths, 10)
        b.short("decimals", L, S, 0.5, t("to_fraction_q", dec=_decimal_here(f)), [fs(f)],
                [t("to_fraction_hint", dec=_decimal_here(f), k=tenths), t("simplify_hint2")],
                t("to_fraction_expl", dec=_decimal_here(f), raw=raw(tenths, 10), s=fs(f)) if f.denominator != 10
                else t("to_fraction_expl_simple", dec=_decimal_here(f), s=fs(f)), patterns=[frac_pattern(fs(f))])
    for target in (Fraction(1, 2), Fraction(1, 4)):
        num, den = target.numerator, target.denominator
        cand = [fs(target), raw(num * 100 // den, 100), raw(num * 2, den * 2), _decimal_here(target / 10), raw(1, den + 1)]
        opts = [(c, Fraction(c.replace(",", ".")) == target) for c in cand]
        b.multiple("decimals", L, S, 0.55, t("equal_decimal_q", dec=_decimal_here(target)), opts, [t("to_decimal_hint")],
                   t("equal_decimal_expl", dec=_decimal_here(target), list=", ".join(c for c, ok in opts if ok)))


def word_problems(b: Builder) -> None:
    t, rng, L, S = b.t, b.rng, "word-problems", ["word-problems", "fraction-of-number"]
    names = list(NAMES)
    rng.shuffle(names)
    for i in range(2):
        n, d = coprime(rng, (3, 4, 5, 6))
        total = d * rng.randint(3, 8)
        r = Fraction(n, d) * total
        b.numeric("word", L, S, 0.55, t("wp_share_q", name=names[i], N=total, f=raw(n, d)), r,
                  [t("of_hint1", N=total, d=d), t("of_hint2", n=n)],
                  t("of_expl", N=total, d=d, g=total // d, n=n, r=fs(r)))
    n, d = coprime(rng, (4, 5, 10))
    length = d * rng.randint(2, 5)
    r = Fraction(n, d) * length
    b.numeric("word", L, S, 0.6, t("wp_ribbon_q", name=names[2], L=length, f=raw(n, d)), r,
              [t("of_hint1", N=length, d=d)], t("of_expl", N=length, d=d, g=length // d, n=n, r=fs(r)))
    add_skills = ["word-problems", "add-like-denominators"]
    for i in range(2):
        d = rng.choice((6, 8, 10, 12))
        n1, n2 = rng.randint(2, d // 2), rng.randint(2, d // 2 - 1)
        r = Fraction(n1 + n2, d)
        expl = t("add_expl", a=raw(n1, d), b=raw(n2, d), n1=n1, n2=n2, n=n1 + n2, r=raw(n1 + n2, d))
        if r.denominator != d:
            expl += " " + t("and_simplified", r=raw(n1 + n2, d), s=fs(r))
        b.numeric("word", L, add_skills, 0.6 + 0.05 * i,
                  t("wp_cake_q", d=d, a=names[3 + i], b=names[5 + i], n1=n1, n2=n2), r, [t("add_hint")], expl)
    d = rng.choice((6, 8))
    eaten = rng.choice([e for e in range(2, d - 1) if 2 * e != d])
    left = Fraction(d - eaten, d)
    b.single("word", L, add_skills, 0.5, t("wp_left_q", d=d, name=names[7], n=eaten), raw(d - eaten, d),
             [raw(eaten, d), raw(d - eaten, eaten), raw(d, d - eaten)], [t("wp_left_hint", d=d)],
             t("wp_left_expl", d=d, n=eaten, r=raw(d - eaten, d)) + (
                 " " + t("and_simplified", r=raw(d - eaten, d), s=fs(left)) if left.denominator != d else ""))
    (n1, d1, x1), (n2, d2, x2) = (1, 2, 10), (1, 3, 12)
    v1, v2 = Fraction(n1, d1) * x1, Fraction(n2, d2) * x2
    key, other = ("wp_free_refs_yes", "wp_free_refs_no") if v1 > v2 else ("wp_free_refs_no", "wp_free_refs_yes")
    fill = {"v1": fs(v1), "v2": fs(v2), "a": raw(n1, d1), "b": raw(n2, d2), "x": x1, "y": x2}
    # The opposite verdict with the same numbers is the on-topic wrong answer the grader must reject.
    b.free("word", L, S, 0.7, t("wp_free_q", a=raw(n1, d1), x=x1, b=raw(n2, d2), y=x2),
           [r.format(**fill) for r in t.list(key)],
           [t("wp_free_hint")], t("wp_free_expl", **fill), wrong=[r.format(**fill) for r in t.list(other)])


GENERATORS = (basics, compare, equivalent, simplify, add_like, fraction_of, mixed_numbers, decimals, word_problems)


def generate(lang: Lang) -> list[dict]:
    b = Builder(lang, random.Random(SEED))
    for gen in GENERATORS:
        gen(b)
    return b.items
