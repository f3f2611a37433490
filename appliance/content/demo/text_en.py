"""English text of the demo course (ages 9-11)."""


NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve")
PARTS = {2: ("half", "halves"), 3: ("third", "thirds"), 4: ("quarter", "quarters"), 5: ("fifth", "fifths"),
         6: ("sixth", "sixths"), 7: ("seventh", "sevenths"), 8: ("eighth", "eighths"), 9: ("ninth", "ninths"),
         10: ("tenth", "tenths"), 12: ("twelfth", "twelfths")}


def fraction_words(n: int, d: int) -> list[str]:
    one, many = PARTS[d]
    out = [f"{NUMBERS[n]} {one if n == 1 else many}"]
    if n == 1:
        out.append(f"a {one}")
        if d == 2:
            out.append("half")
    if d == 4:
        out.append(f"{NUMBERS[n]} {'fourth' if n == 1 else 'fourths'}")
    return out


COURSE = {
    "id": "fractions",
    "title": "Fractions",
    "description": "Parts of a whole, comparing and simplifying fractions, adding fractions with the same denominator, fractions of a number, mixed numbers and decimals, with pictures to look at and problems to solve.",
    "audience": "ages 9-11",
}

SKILLS = {
    "fraction-basics": ("Fraction basics", "Reads and writes fractions as equal parts of a whole; knows the numerator and the denominator."),
    "compare-fractions": ("Comparing fractions", "Decides which of two fractions is bigger and uses <, > and =."),
    "equivalent-fractions": ("Equivalent fractions", "Finds fractions that show the same amount by multiplying or dividing top and bottom."),
    "simplify-fractions": ("Simplifying fractions", "Writes a fraction in simplest form."),
    "add-like-denominators": ("Adding and subtracting fractions", "Adds and subtracts fractions that have the same denominator."),
    "fraction-of-number": ("Fraction of a number", "Finds a fraction of a whole number, like 2/3 of 12."),
    "mixed-numbers": ("Mixed numbers", "Changes between mixed numbers and improper fractions."),
    "decimals-fractions": ("Decimals and fractions", "Changes between tenths, hundredths and fractions."),
    "word-problems": ("Word problems", "Uses fractions to solve problems told as stories."),
}

LESSONS = [
    {"id": "what-is-a-fraction", "title": "What is a fraction?", "blocks": [
        ("text", "# Parts of a whole\n\nA **fraction** tells us about equal parts of one whole thing. When we cut a pizza into 4 **equal** slices, each slice is *one quarter* of the pizza, and we write it as 1/4.\n\nA fraction has two numbers:\n\n- the **numerator** (on top) counts the parts we have;\n- the **denominator** (at the bottom) says how many equal parts make the whole."),
        ("image", "pies-half-quarter-three-quarters.svg", "Three circles: 1 of 2 parts shaded (1/2), 1 of 4 parts shaded (1/4), and 3 of 4 parts shaded (3/4)."),
        ("text", "The parts must be **equal**. If you cut a cake into one big piece and one small piece, each piece is *not* one half."),
        ("image", "bar-2-3.svg", "A bar cut into 3 equal parts with 2 parts coloured: 2/3."),
        ("text", "## Fractions you can hear\n\nMusic uses fractions too. Listen: first one long *whole* note, then two *half* notes, then four *quarter* notes. Each group takes the same time, because 2 halves and 4 quarters both make one whole."),
        ("audio", "whole-half-quarter-notes.wav", "One whole, two halves, four quarters", "A long note that lasts the whole time. Then two notes, each half as long. Then four notes, each a quarter as long. All three groups take the same time."),
    ]},
    {"id": "comparing-fractions", "title": "Comparing fractions", "blocks": [
        ("text", "# Which is bigger?\n\nWhen two fractions have the **same denominator**, the parts are the same size, so the fraction with more parts is bigger: 4/5 is bigger than 2/5."),
        ("image", "bars-2-5-and-4-5.svg", "Two bars of the same length cut into fifths: 2 of 5 parts coloured, and 4 of 5 parts coloured."),
        ("text", "When two fractions have the **same numerator**, look at the size of the parts. A pizza cut into 3 slices has bigger slices than a pizza cut into 4 slices, so 1/3 is bigger than 1/4."),
        ("image", "pies-1-3-and-1-4.svg", "Two circles: 1 of 3 parts shaded and 1 of 4 parts shaded. The third is bigger than the quarter."),
        ("text", "When both numbers are different, first change them into fractions with the same denominator (the next lesson shows how).\n\nWe write **>** for *is bigger than*, **<** for *is smaller than* and **=** for *is equal to*. For example 3/4 > 1/2 and 1/3 < 2/3."),
    ]},
    {"id": "equivalent-fractions", "title": "Equivalent fractions", "blocks": [
        ("text", "# Same amount, different names\n\nFractions that show the same amount are **equivalent**. Look: 1/2, 2/4 and 4/8 colour the same length of the bar."),
        ("image", "bars-1-2-2-4-4-8.svg", "Three bars of the same length: 1 of 2 parts, 2 of 4 parts and 4 of 8 parts coloured. The coloured lengths are equal."),
        ("text", "To make an equivalent fraction, **multiply** (or divide) the numerator and the denominator by the **same number**:\n\n1. 1/2 = (1×2)/(2×2) = 2/4\n2. 2/4 = (2×2)/(4×2) = 4/8\n\n## Simplest form\n\nA fraction is in **simplest form** when no number except 1 divides both its numerator and its denominator. To simplify 6/8, divide both numbers by 2: 6/8 = 3/4."),
        ("image", "bars-6-8-and-3-4.svg", "Two bars: 6 of 8 parts coloured and 3 of 4 parts coloured. The coloured lengths are the same."),
    ]},
    {"id": "adding-fractions", "title": "Adding and subtracting fractions", "blocks": [
        ("text", "# Adding parts of the same size\n\nWhen the denominators are the same, the parts are the same size. Add the numerators and **keep the denominator**: 2/7 + 3/7 = 5/7."),
        ("image", "line-sevenths-2-plus-3.svg", "A number line from 0 to 1 in sevenths. A jump of 2/7 from 0, then a jump of 3/7, landing on 5/7."),
        ("text", "Be careful: 2/7 + 3/7 is **not** 5/14. We are counting sevenths, and sevenths do not change size when we add them.\n\n## Taking away\n\nSubtracting works the same way: 6/8 − 2/8 = 4/8, which simplifies to 1/2."),
        ("image", "line-eighths-6-minus-2.svg", "A number line from 0 to 1 in eighths. A jump back of 2/8 from 6/8 lands on 4/8."),
    ]},
    {"id": "fraction-of-a-number", "title": "A fraction of a number", "blocks": [
        ("text", "# Sharing into equal groups\n\nTo find 2/3 of 12, share 12 into **3** equal groups (the denominator), then take **2** of the groups (the numerator).\n\n- 12 ÷ 3 = 4 in each group\n- 2 groups × 4 = 8\n\nSo 2/3 of 12 is 8."),
        ("image", "dots-12-in-3-groups.svg", "Twelve dots in three boxes of four. Two boxes are coloured: eight dots."),
        ("text", "A quick way to remember: **divide by the denominator, then multiply by the numerator**."),
    ]},
    {"id": "mixed-numbers", "title": "Mixed numbers", "blocks": [
        ("text", "# More than one whole\n\nA fraction can be bigger than 1. 7/4 means seven quarters: that is one whole pizza (4 quarters) and 3 more quarters. We write it as the **mixed number** 1 3/4."),
        ("image", "mixed-1-3-4.svg", "One full circle and a circle with 3 of 4 parts shaded: 1 3/4 = 7/4."),
        ("text", "To change 7/4 into a mixed number, divide: 7 ÷ 4 = 1 remainder 3, so 7/4 = 1 3/4.\n\nTo go back, multiply the whole number by the denominator and add the numerator: 1 × 4 + 3 = 7, so 1 3/4 = 7/4."),
        ("image", "line-quarters-to-2.svg", "A number line from 0 to 2 in quarters, with 7/4 marked between 1 and 2."),
    ]},
    {"id": "decimals-and-fractions", "title": "Decimals and fractions", "blocks": [
        ("text", "# Tenths\n\nThe first place after the decimal point counts **tenths**: 0.3 means 3/10."),
        ("image", "line-tenths.svg", "A number line from 0 to 1 in tenths, labelled 0.1 to 0.9, with 0.3 marked."),
        ("text", "Some fractions to know by heart:\n\n- 1/2 = 5/10 = 0.5\n- 1/4 = 25/100 = 0.25\n- 3/4 = 75/100 = 0.75\n- 1/5 = 2/10 = 0.2\n\nTo write a fraction as a decimal, find an equivalent fraction with denominator 10 or 100. To write a decimal as a fraction, write the tenths (or hundredths) and then simplify: 0.4 = 4/10 = 2/5."),
    ]},
    {"id": "word-problems", "title": "Fractions in stories", "blocks": [
        ("text", "# Word problems\n\nRead the story slowly and ask: **what is the whole?** and **how many equal parts are there?**"),
        ("image", "pizza-8-slices-3-eaten.svg", "A pizza cut into 8 slices; 3 slices have been eaten and 5 are left."),
        ("text", "Leo's pizza had 8 slices and he ate 3, so 5/8 of the pizza is left.\n\nUseful steps:\n\n1. Find the whole and the number of equal parts.\n2. Decide: am I adding parts, taking parts away, or finding a fraction *of* a number?\n3. Work it out, then check: does the answer make sense?"),
    ]},
]

STRINGS = {
    "to_fraction_expl_simple": "{dec} = {s}, and it cannot be simplified.",
    "cmp_expl_same_den": "The parts are the same size, so the fraction with more parts is bigger: {big}.",
    "equal": "They are equal",
    "and_simplified": "In simplest form, {r} = {s}.",
    # fraction basics
    "pizza_q": "A pizza is cut into {d} equal slices. Sam eats {n} of them. What fraction of the pizza did Sam eat?",
    "pizza_hint1": "The denominator (the bottom number) is how many equal slices there are altogether.",
    "pizza_hint2": "The numerator (the top number) is how many slices Sam ate.",
    "pizza_expl": "There are {d} equal slices and Sam ate {n}, so Sam ate {n}/{d} of the pizza.",
    "write_frac_q": "Write this fraction with numbers (like 2/3): {words}",
    "write_frac_hint": "The first word is the numerator; the second word tells you the denominator.",
    "write_frac_expl": "“{words}” means {n} parts out of {d} equal parts: {n}/{d}.",
    "numerator_q": "What is the numerator of the fraction {n}/{d}?",
    "denominator_q": "What is the denominator of the fraction {n}/{d}?",
    "numden_hint": "In a fraction the numerator is on top and the denominator is at the bottom.",
    "numerator_expl": "In {n}/{d} the top number is {n}.",
    "denominator_expl": "In {n}/{d} the bottom number is {d}: the whole is cut into {d} equal parts.",
    "in_words_q": "Write the fraction {n}/{d} in words.",
    "in_words_hint": "Say the numerator as a number, then the name of the parts (halves, thirds, quarters, fifths...).",
    "in_words_expl": "{n}/{d} is read “{words}”.",
    "den_free_q": "In your own words: what does the denominator of a fraction tell you?",
    "den_free_hint": "Think of a pizza. What does the bottom number count?",
    "den_free_expl": "The denominator counts how many equal parts the whole is cut into; the numerator counts the parts we take.",
    # comparing
    "bigger_q": "Which is bigger: {a} or {b}?",
    "cmp_hint_same_den": "The parts are the same size, so count how many parts each fraction has.",
    "cmp_hint_same_num": "Both have the same number of parts. Which parts are bigger: when the whole is cut into fewer pieces, or into more?",
    "cmp_hint_common": "Give both fractions the same denominator first, then compare the numerators.",
    "cmp_expl": "{a} = {ac} and {b} = {bc}, so the bigger one is {big}.",
    "symbol_q": "Write <, > or = to compare: {a} ? {b}",
    "symbol_expl": "{a} = {ac} and {b} = {bc}, so {a} {sym} {b}.",
    "greater_half_q": "Select all the fractions that are bigger than 1/2.",
    "greater_half_q2": "Which of these fractions are more than one half? Select every one.",
    "greater_half_hint": "A fraction is bigger than 1/2 when its numerator is more than half of its denominator.",
    "greater_half_expl": "Bigger than 1/2: {list}.",
    "cmp_free_q": "Explain why 1/3 is bigger than 1/4.",
    "cmp_free_hint": "Imagine the same pizza cut into 3 slices and into 4 slices.",
    "cmp_free_expl": "Cutting the same whole into fewer equal parts makes each part bigger, so one third is more than one quarter.",
    # equivalent
    "equiv_q": "Which fraction is equal to {f}?",
    "equiv_hint": "Multiply the numerator and the denominator by the same number.",
    "equiv_expl": "{f} = ({n}×{k})/({d}×{k}) = {g}.",
    "missing_q": "Fill in the missing number: {n}/{d} = ?/{dk}",
    "missing_hint": "What do you multiply {d} by to get {dk}? Do the same to {n}.",
    "missing_expl": "{d} × {k} = {dk}, so the numerator is {n} × {k} = {nk}: {n}/{d} = {nk}/{dk}.",
    "equal_to_q": "Select all the fractions equal to {f}.",
    "equal_to_expl": "Equal to {f}: {list}.",
    "equiv_free_q": "How can you find a fraction that is equal to 2/3? Explain.",
    "equiv_free_expl": "Multiplying the top and the bottom by the same number keeps the amount the same: 2/3 = 4/6 = 6/9.",
    # simplifying
    "simplify_q": "Write {f} in simplest form.",
    "simplify_hint": "Find a number that divides both {n} and {d}.",
    "simplify_hint2": "Keep dividing until only 1 divides both numbers.",
    "simplify_expl": "{n} and {d} can both be divided by {g}: {n} ÷ {g} = {a} and {d} ÷ {g} = {b}, so {f} = {s}.",
    "simplest_q": "Which fraction is already in simplest form?",
    "simplest_q2": "Only one of these fractions cannot be simplified. Which one?",
    "simplest_hint": "A fraction is in simplest form when no number except 1 divides both its numerator and its denominator.",
    "simplest_expl": "{f} cannot be simplified; each of the others can be divided by 2 or more.",
    "gcd_q": "What is the biggest number that divides both {a} and {b}?",
    "gcd_hint": "List the numbers that divide {a}, then check which of them also divide {b}.",
    "gcd_expl": "{g} divides both {a} and {b}, and no bigger number does.",
    # adding
    "add_q": "{a} + {b} = ?  (you can answer with a fraction, like 3/4)",
    "sub_q": "{a} − {b} = ?  (you can answer with a fraction, like 3/4)",
    "add_hint": "When the denominators are the same, add the numerators and keep the denominator.",
    "sub_hint": "When the denominators are the same, subtract the numerators and keep the denominator.",
    "add_expl": "{n1} + {n2} = {n}, so {a} + {b} = {r}.",
    "sub_expl": "{n1} − {n2} = {n}, so {a} − {b} = {r}.",
    "add_choice_q": "What is {a} + {b}?",
    "add_trap_hint": "The size of the parts does not change when you add them, so the denominator stays the same.",
    "add_free_q": "Why do we NOT add the denominators when we work out 1/5 + 2/5?",
    "add_free_expl": "We are counting fifths: 1 fifth and 2 fifths make 3 fifths, 3/5. The parts stay fifths.",
    # fraction of a number
    "of_q": "What is {f} of {N}?",
    "of_hint1": "Share {N} into {d} equal groups.",
    "of_hint2": "Then take {n} of those groups.",
    "of_expl": "{N} ÷ {d} = {g} in each group, and {n} × {g} = {r}.",
    # mixed numbers
    "to_mixed_q": "Write {f} as a mixed number (for example 1 1/2).",
    "to_mixed_hint": "How many whole times does {d} go into {n}? What is left over?",
    "to_mixed_expl": "{n} ÷ {d} = {w} remainder {r}, so {f} = {m}.",
    "to_improper_q": "Write {m} as an improper fraction (like 7/4).",
    "to_improper_hint": "Multiply the whole number by the denominator, then add the numerator.",
    "to_improper_expl": "{w} × {d} + {n} = {top}, so {m} = {top}/{d}.",
    "mixed_choice_q": "Which mixed number is equal to {f}?",
    # decimals
    "to_decimal_q": "Write {f} as a decimal.",
    "to_decimal_hint": "Find an equal fraction with denominator 10 or 100.",
    "to_decimal_expl": "{f} = {e} = {dec}.",
    "to_fraction_q": "Write {dec} as a fraction in simplest form.",
    "to_fraction_hint": "{dec} means {k} tenths.",
    "to_fraction_expl": "{dec} = {raw} = {s}.",
    "equal_decimal_q": "Select everything that is equal to {dec}.",
    "equal_decimal_expl": "Equal to {dec}: {list}.",
    # word problems
    "wp_share_q": "{name} has {N} stickers and gives {f} of them to a friend. How many stickers does {name} give away?",
    "wp_ribbon_q": "A ribbon is {L} metres long. {name} cuts off {f} of it. How many metres does {name} cut off?",
    "wp_cake_q": "A cake is cut into {d} equal pieces. {a} eats {n1} pieces and {b} eats {n2} pieces. What fraction of the cake did they eat together?",
    "wp_left_q": "A pizza has {d} equal slices. {name} eats {n} slices. What fraction of the pizza is left?",
    "wp_left_hint": "How many of the {d} slices are still there?",
    "wp_left_expl": "{d} − {n} slices are left out of {d}, so {r} of the pizza is left.",
    "wp_free_q": "Lena says that {a} of {x} is more than {b} of {y}. Is she right? Explain how you know.",
    "wp_free_hint": "Work out both amounts first, then compare them.",
    "wp_free_expl": "{a} of {x} is {v1} and {b} of {y} is {v2}.",
}

LISTS = {
    "den_free_wrong": [
        "It is the same as the numerator.",
        "The number written on top.",
        "How many of the parts you have or colour in.",
        "How many parts are shaded.",
        "It tells you how big the fraction is.",
    ],
    "cmp_free_wrong": [
        "1/4 is bigger because 4 is more than 3.",
        "Because 4 is a bigger number than 3, so a quarter is more.",
        "They are the same because both have 1 on top.",
    ],
    "equiv_free_wrong": [
        "Add the same number to the top and the bottom, like 3/4.",
        "Add 1 to the numerator and to the denominator.",
        "Multiply only the top number by 2.",
    ],
    "add_free_wrong": [
        "We should add them too: 1/5 + 2/5 = 3/10.",
        "Because we multiply the denominators instead.",
        "Because the bottom numbers are different.",
    ],
    "den_free_refs": [
        "The denominator tells how many equal parts the whole is divided into.",
        "It is the number of equal pieces the whole thing is cut into.",
        "The bottom number says how many equal parts make one whole.",
    ],
    "cmp_free_refs": [
        "When a whole is cut into 3 equal parts each part is bigger than when it is cut into 4 parts.",
        "Thirds are bigger pieces than quarters because there are fewer of them in the same whole.",
        "Fewer pieces means bigger pieces, so one third is more than one quarter.",
    ],
    "equiv_free_refs": [
        "Multiply the numerator and the denominator by the same number, for example 2/3 = 4/6.",
        "Multiply the top and the bottom by the same number.",
        "Cut every part into the same number of smaller pieces, like 2/3 = 4/6.",
    ],
    "add_free_refs": [
        "The denominator is the size of the parts and the parts are still fifths, so we only add the numerators.",
        "We are counting fifths: one fifth plus two fifths is three fifths.",
        "The pieces are the same size, so the denominator stays 5.",
    ],
    "wp_free_refs_yes": [
        "Yes, she is right: {a} of {x} is {v1} and {b} of {y} is {v2}, and {v1} is more than {v2}.",
        "Yes, because {v1} is bigger than {v2}.",
    ],
    "wp_free_refs_no": [
        "No, she is wrong: {a} of {x} is {v1} and {b} of {y} is {v2}, and {v1} is not more than {v2}.",
        "No, because {v1} is not bigger than {v2}.",
    ],
}
