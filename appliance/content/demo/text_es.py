"""Texto en español del curso de demostración (de 9 a 11 años)."""


NUMBERS = ("cero", "un", "dos", "tres", "cuatro", "cinco", "seis", "siete", "ocho", "nueve", "diez", "once", "doce")
PARTS = {2: ("medio", "medios"), 3: ("tercio", "tercios"), 4: ("cuarto", "cuartos"), 5: ("quinto", "quintos"),
         6: ("sexto", "sextos"), 7: ("séptimo", "séptimos"), 8: ("octavo", "octavos"), 9: ("noveno", "novenos"),
         10: ("décimo", "décimos"), 12: ("doceavo", "doceavos")}


# "Tres cuartas partes": the ordinal with "parte(s)" is as common as "tres cuartos".
ORDINALS = {3: "tercera", 4: "cuarta", 5: "quinta", 6: "sexta", 7: "séptima", 8: "octava", 9: "novena",
            10: "décima"}


def fraction_words(n: int, d: int) -> list[str]:
    one, many = PARTS[d]
    out = [f"{NUMBERS[n]} {one if n == 1 else many}"]
    if n == 1 and d == 2:
        out += ["una mitad", "la mitad", "mitad", "medio"]
    if d in ORDINALS:
        parts = f"una {ORDINALS[d]} parte" if n == 1 else f"{NUMBERS[n]} {ORDINALS[d]}s partes"
        out += [parts, ("la " if n == 1 else "las ") + parts]
    return out


COURSE = {
    "id": "fractions-es",
    "title": "Fracciones",
    "description": "Partes de un entero, comparar y simplificar fracciones, sumar fracciones con el mismo denominador, fracciones de un número, números mixtos y decimales, con dibujos para mirar y problemas para resolver.",
    "audience": "de 9 a 11 años",
}

SKILLS = {
    "fraction-basics": ("Fracciones básicas", "Lee y escribe fracciones como partes iguales de un entero; conoce el numerador y el denominador."),
    "compare-fractions": ("Comparar fracciones", "Decide cuál de dos fracciones es mayor y usa <, > e =."),
    "equivalent-fractions": ("Fracciones equivalentes", "Encuentra fracciones que representan la misma cantidad multiplicando o dividiendo arriba y abajo."),
    "simplify-fractions": ("Simplificar fracciones", "Escribe una fracción en su forma más simple."),
    "add-like-denominators": ("Sumar y restar fracciones", "Suma y resta fracciones que tienen el mismo denominador."),
    "fraction-of-number": ("Fracción de un número", "Calcula una fracción de un número entero, como 2/3 de 12."),
    "mixed-numbers": ("Números mixtos", "Pasa de números mixtos a fracciones impropias y al revés."),
    "decimals-fractions": ("Decimales y fracciones", "Pasa de décimas y centésimas a fracciones y al revés."),
    "word-problems": ("Problemas", "Usa fracciones para resolver problemas contados como historias."),
}

LESSONS = [
    {"id": "what-is-a-fraction", "title": "¿Qué es una fracción?", "blocks": [
        ("text", "# Partes de un entero\n\nUna **fracción** nos habla de partes iguales de una cosa entera. Si cortamos una pizza en 4 porciones **iguales**, cada porción es *un cuarto* de la pizza, y lo escribimos 1/4.\n\nUna fracción tiene dos números:\n\n- el **numerador** (arriba) cuenta las partes que tenemos;\n- el **denominador** (abajo) dice cuántas partes iguales forman el entero."),
        ("image", "pies-half-quarter-three-quarters.svg", "Tres círculos: 1 de 2 partes coloreada (1/2), 1 de 4 partes coloreada (1/4) y 3 de 4 partes coloreadas (3/4)."),
        ("text", "Las partes tienen que ser **iguales**. Si cortas un pastel en un trozo grande y otro pequeño, cada trozo *no* es un medio."),
        ("image", "bar-2-3.svg", "Una barra dividida en 3 partes iguales con 2 partes coloreadas: 2/3."),
        ("text", "## Fracciones que se oyen\n\nLa música también usa fracciones. Escucha: primero una nota *redonda* larga, después dos *blancas* (medios) y después cuatro *negras* (cuartos). Cada grupo dura lo mismo, porque 2 medios y 4 cuartos forman un entero."),
        ("audio", "whole-half-quarter-notes.wav", "Un entero, dos medios, cuatro cuartos", "Una nota larga que dura todo el tiempo. Después dos notas, cada una la mitad de larga. Después cuatro notas, cada una un cuarto de larga. Los tres grupos duran lo mismo."),
    ]},
    {"id": "comparing-fractions", "title": "Comparar fracciones", "blocks": [
        ("text", "# ¿Cuál es mayor?\n\nSi dos fracciones tienen el **mismo denominador**, las partes son del mismo tamaño, así que es mayor la que tiene más partes: 4/5 es mayor que 2/5."),
        ("image", "bars-2-5-and-4-5.svg", "Dos barras de la misma longitud divididas en quintos: 2 de 5 partes coloreadas y 4 de 5 partes coloreadas."),
        ("text", "Si dos fracciones tienen el **mismo numerador**, fíjate en el tamaño de las partes. Una pizza cortada en 3 porciones tiene porciones más grandes que una cortada en 4, así que 1/3 es mayor que 1/4."),
        ("image", "pies-1-3-and-1-4.svg", "Dos círculos: 1 de 3 partes coloreada y 1 de 4 partes coloreada. El tercio es mayor que el cuarto."),
        ("text", "Si los dos números son distintos, primero convierte las fracciones en otras con el mismo denominador (la próxima lección explica cómo).\n\nEscribimos **>** para *es mayor que*, **<** para *es menor que* e **=** para *es igual a*. Por ejemplo 3/4 > 1/2 y 1/3 < 2/3."),
    ]},
    {"id": "equivalent-fractions", "title": "Fracciones equivalentes", "blocks": [
        ("text", "# La misma cantidad con otro nombre\n\nLas fracciones que representan la misma cantidad son **equivalentes**. Mira: 1/2, 2/4 y 4/8 colorean el mismo trozo de barra."),
        ("image", "bars-1-2-2-4-4-8.svg", "Tres barras de la misma longitud: 1 de 2 partes, 2 de 4 partes y 4 de 8 partes coloreadas. Los trozos coloreados miden lo mismo."),
        ("text", "Para obtener una fracción equivalente, **multiplica** (o divide) el numerador y el denominador por el **mismo número**:\n\n1. 1/2 = (1×2)/(2×2) = 2/4\n2. 2/4 = (2×2)/(4×2) = 4/8\n\n## Forma más simple\n\nUna fracción está en su **forma más simple** cuando ningún número, salvo el 1, divide a la vez al numerador y al denominador. Para simplificar 6/8, divide los dos números entre 2: 6/8 = 3/4."),
        ("image", "bars-6-8-and-3-4.svg", "Dos barras: 6 de 8 partes coloreadas y 3 de 4 partes coloreadas. Los trozos coloreados miden lo mismo."),
    ]},
    {"id": "adding-fractions", "title": "Sumar y restar fracciones", "blocks": [
        ("text", "# Sumar partes del mismo tamaño\n\nSi los denominadores son iguales, las partes son del mismo tamaño. Suma los numeradores y **deja el mismo denominador**: 2/7 + 3/7 = 5/7."),
        ("image", "line-sevenths-2-plus-3.svg", "Una recta numérica de 0 a 1 en séptimos. Un salto de 2/7 desde 0 y después un salto de 3/7, que llega a 5/7."),
        ("text", "Cuidado: 2/7 + 3/7 **no** es 5/14. Estamos contando séptimos, y los séptimos no cambian de tamaño al sumarlos.\n\n## Quitar\n\nRestar funciona igual: 6/8 − 2/8 = 4/8, que simplificado es 1/2."),
        ("image", "line-eighths-6-minus-2.svg", "Una recta numérica de 0 a 1 en octavos. Un salto hacia atrás de 2/8 desde 6/8 llega a 4/8."),
    ]},
    {"id": "fraction-of-a-number", "title": "La fracción de un número", "blocks": [
        ("text", "# Repartir en grupos iguales\n\nPara calcular 2/3 de 12, reparte 12 en **3** grupos iguales (el denominador) y toma **2** de los grupos (el numerador).\n\n- 12 ÷ 3 = 4 en cada grupo\n- 2 grupos × 4 = 8\n\nAsí que 2/3 de 12 es 8."),
        ("image", "dots-12-in-3-groups.svg", "Doce puntos en tres cajas de cuatro. Dos cajas están coloreadas: ocho puntos."),
        ("text", "Una forma rápida de recordarlo: **divide entre el denominador y multiplica por el numerador**."),
    ]},
    {"id": "mixed-numbers", "title": "Números mixtos", "blocks": [
        ("text", "# Más de un entero\n\nUna fracción puede ser mayor que 1. 7/4 son siete cuartos: una pizza entera (4 cuartos) y 3 cuartos más. Lo escribimos como el **número mixto** 1 3/4."),
        ("image", "mixed-1-3-4.svg", "Un círculo entero y un círculo con 3 de 4 partes coloreadas: 1 3/4 = 7/4."),
        ("text", "Para pasar 7/4 a número mixto, divide: 7 ÷ 4 = 1 y sobran 3, así que 7/4 = 1 3/4.\n\nPara volver, multiplica el número entero por el denominador y suma el numerador: 1 × 4 + 3 = 7, así que 1 3/4 = 7/4."),
        ("image", "line-quarters-to-2.svg", "Una recta numérica de 0 a 2 en cuartos, con 7/4 marcado entre 1 y 2."),
    ]},
    {"id": "decimals-and-fractions", "title": "Decimales y fracciones", "blocks": [
        ("text", "# Décimas\n\nLa primera cifra después de la coma decimal cuenta **décimas**: 0,3 significa 3/10. (También se puede escribir con punto: 0.3.)"),
        ("image", "line-tenths.svg", "Una recta numérica de 0 a 1 en décimas, marcada de 0.1 a 0.9, con 0.3 señalado."),
        ("text", "Algunas fracciones para saber de memoria:\n\n- 1/2 = 5/10 = 0,5\n- 1/4 = 25/100 = 0,25\n- 3/4 = 75/100 = 0,75\n- 1/5 = 2/10 = 0,2\n\nPara escribir una fracción como decimal, busca una fracción equivalente con denominador 10 o 100. Para escribir un decimal como fracción, escribe las décimas (o centésimas) y simplifica: 0,4 = 4/10 = 2/5."),
    ]},
    {"id": "word-problems", "title": "Fracciones en historias", "blocks": [
        ("text", "# Problemas\n\nLee la historia despacio y pregúntate: **¿cuál es el entero?** y **¿cuántas partes iguales hay?**"),
        ("image", "pizza-8-slices-3-eaten.svg", "Una pizza cortada en 8 porciones; se han comido 3 y quedan 5."),
        ("text", "La pizza de Leo tenía 8 porciones y se comió 3, así que queda 5/8 de la pizza.\n\nPasos útiles:\n\n1. Busca el entero y el número de partes iguales.\n2. Decide: ¿estoy sumando partes, quitando partes o calculando una fracción *de* un número?\n3. Resuélvelo y comprueba: ¿tiene sentido la respuesta?"),
    ]},
]

STRINGS = {
    "to_fraction_expl_simple": "{dec} = {s}, y no se puede simplificar.",
    "cmp_expl_same_den": "Las partes son del mismo tamaño, así que es mayor la fracción con más partes: {big}.",
    "equal": "Son iguales",
    "and_simplified": "En su forma más simple, {r} = {s}.",
    "pizza_q": "Una pizza está cortada en {d} porciones iguales. Sam se come {n}. ¿Qué fracción de la pizza se comió Sam?",
    "pizza_hint1": "El denominador (el número de abajo) es cuántas porciones iguales hay en total.",
    "pizza_hint2": "El numerador (el número de arriba) es cuántas porciones se comió Sam.",
    "pizza_expl": "Hay {d} porciones iguales y Sam se comió {n}, así que se comió {n}/{d} de la pizza.",
    "write_frac_q": "Escribe esta fracción con números (como 2/3): {words}",
    "write_frac_hint": "La primera palabra es el numerador; la segunda te dice el denominador.",
    "write_frac_expl": "«{words}» significa {n} partes de {d} partes iguales: {n}/{d}.",
    "numerator_q": "¿Cuál es el numerador de la fracción {n}/{d}?",
    "denominator_q": "¿Cuál es el denominador de la fracción {n}/{d}?",
    "numden_hint": "En una fracción el numerador está arriba y el denominador abajo.",
    "numerator_expl": "En {n}/{d} el número de arriba es {n}.",
    "denominator_expl": "En {n}/{d} el número de abajo es {d}: el entero está cortado en {d} partes iguales.",
    "in_words_q": "Escribe la fracción {n}/{d} con palabras.",
    "in_words_hint": "Di el numerador y después el nombre de las partes (medios, tercios, cuartos, quintos...).",
    "in_words_expl": "{n}/{d} se lee «{words}».",
    "den_free_q": "Con tus propias palabras: ¿qué te dice el denominador de una fracción?",
    "den_free_hint": "Piensa en una pizza. ¿Qué cuenta el número de abajo?",
    "den_free_expl": "El denominador cuenta en cuántas partes iguales se corta el entero; el numerador cuenta las partes que tomamos.",
    "bigger_q": "¿Cuál es mayor: {a} o {b}?",
    "cmp_hint_same_den": "Las partes son del mismo tamaño: cuenta cuántas partes tiene cada fracción.",
    "cmp_hint_same_num": "Las dos tienen el mismo número de partes. ¿Qué partes son más grandes: si el entero se corta en menos trozos o en más?",
    "cmp_hint_common": "Primero da a las dos fracciones el mismo denominador y luego compara los numeradores.",
    "cmp_expl": "{a} = {ac} y {b} = {bc}, así que la mayor es {big}.",
    "symbol_q": "Escribe <, > o = para comparar: {a} ? {b}",
    "symbol_expl": "{a} = {ac} y {b} = {bc}, así que {a} {sym} {b}.",
    "greater_half_q": "Selecciona todas las fracciones mayores que 1/2.",
    "greater_half_q2": "¿Cuáles de estas fracciones son más de un medio? Selecciónalas todas.",
    "greater_half_hint": "Una fracción es mayor que 1/2 cuando su numerador es más de la mitad de su denominador.",
    "greater_half_expl": "Mayores que 1/2: {list}.",
    "cmp_free_q": "Explica por qué 1/3 es mayor que 1/4.",
    "cmp_free_hint": "Imagina la misma pizza cortada en 3 porciones y en 4 porciones.",
    "cmp_free_expl": "Si cortamos el mismo entero en menos partes iguales, cada parte es más grande, así que un tercio es más que un cuarto.",
    "equiv_q": "¿Qué fracción es equivalente a {f}?",
    "equiv_hint": "Multiplica el numerador y el denominador por el mismo número.",
    "equiv_expl": "{f} = ({n}×{k})/({d}×{k}) = {g}.",
    "missing_q": "Completa el número que falta: {n}/{d} = ?/{dk}",
    "missing_hint": "¿Por cuánto multiplicas {d} para obtener {dk}? Haz lo mismo con {n}.",
    "missing_expl": "{d} × {k} = {dk}, así que el numerador es {n} × {k} = {nk}: {n}/{d} = {nk}/{dk}.",
    "equal_to_q": "Selecciona todas las fracciones equivalentes a {f}.",
    "equal_to_expl": "Equivalentes a {f}: {list}.",
    "equiv_free_q": "¿Cómo puedes encontrar una fracción equivalente a 2/3? Explícalo.",
    "equiv_free_expl": "Multiplicar arriba y abajo por el mismo número mantiene la cantidad: 2/3 = 4/6 = 6/9.",
    "simplify_q": "Escribe {f} en su forma más simple.",
    "simplify_hint": "Busca un número que divida a {n} y a {d}.",
    "simplify_hint2": "Sigue dividiendo hasta que solo el 1 divida a los dos números.",
    "simplify_expl": "{n} y {d} se pueden dividir entre {g}: {n} ÷ {g} = {a} y {d} ÷ {g} = {b}, así que {f} = {s}.",
    "simplest_q": "¿Qué fracción ya está en su forma más simple?",
    "simplest_q2": "Solo una de estas fracciones no se puede simplificar. ¿Cuál?",
    "simplest_hint": "Una fracción está en su forma más simple cuando ningún número, salvo el 1, divide a su numerador y a su denominador.",
    "simplest_expl": "{f} no se puede simplificar; las demás se pueden dividir entre 2 o más.",
    "gcd_q": "¿Cuál es el mayor número que divide a {a} y a {b}?",
    "gcd_hint": "Haz la lista de los números que dividen a {a} y mira cuáles dividen también a {b}.",
    "gcd_expl": "{g} divide a {a} y a {b}, y ningún número mayor lo hace.",
    "add_q": "{a} + {b} = ?  (puedes responder con una fracción, como 3/4)",
    "sub_q": "{a} − {b} = ?  (puedes responder con una fracción, como 3/4)",
    "add_hint": "Si los denominadores son iguales, suma los numeradores y deja el mismo denominador.",
    "sub_hint": "Si los denominadores son iguales, resta los numeradores y deja el mismo denominador.",
    "add_expl": "{n1} + {n2} = {n}, así que {a} + {b} = {r}.",
    "sub_expl": "{n1} − {n2} = {n}, así que {a} − {b} = {r}.",
    "add_choice_q": "¿Cuánto es {a} + {b}?",
    "add_trap_hint": "El tamaño de las partes no cambia al sumarlas, así que el denominador se queda igual.",
    "add_free_q": "¿Por qué NO sumamos los denominadores al calcular 1/5 + 2/5?",
    "add_free_expl": "Estamos contando quintos: 1 quinto y 2 quintos son 3 quintos, 3/5. Las partes siguen siendo quintos.",
    "of_q": "¿Cuánto es {f} de {N}?",
    "of_hint1": "Reparte {N} en {d} grupos iguales.",
    "of_hint2": "Después toma {n} de esos grupos.",
    "of_expl": "{N} ÷ {d} = {g} en cada grupo, y {n} × {g} = {r}.",
    "to_mixed_q": "Escribe {f} como número mixto (por ejemplo 1 1/2).",
    "to_mixed_hint": "¿Cuántas veces enteras cabe {d} en {n}? ¿Cuánto sobra?",
    "to_mixed_expl": "{n} ÷ {d} = {w} con resto {r}, así que {f} = {m}.",
    "to_improper_q": "Escribe {m} como fracción impropia (como 7/4).",
    "to_improper_hint": "Multiplica el número entero por el denominador y suma el numerador.",
    "to_improper_expl": "{w} × {d} + {n} = {top}, así que {m} = {top}/{d}.",
    "mixed_choice_q": "¿Qué número mixto es igual a {f}?",
    "to_decimal_q": "Escribe {f} como número decimal (por ejemplo 0,5).",
    "to_decimal_hint": "Busca una fracción equivalente con denominador 10 o 100.",
    "to_decimal_expl": "{f} = {e} = {dec}.",
    "to_fraction_q": "Escribe {dec} como fracción en su forma más simple.",
    "to_fraction_hint": "{dec} significa {k} décimas.",
    "to_fraction_expl": "{dec} = {raw} = {s}.",
    "equal_decimal_q": "Selecciona todo lo que es igual a {dec}.",
    "equal_decimal_expl": "Iguales a {dec}: {list}.",
    "wp_share_q": "{name} tiene {N} pegatinas y le regala {f} de ellas a un amigo. ¿Cuántas pegatinas regala?",
    "wp_ribbon_q": "Una cinta mide {L} metros. {name} corta {f} de la cinta. ¿Cuántos metros corta?",
    "wp_cake_q": "Un pastel está cortado en {d} trozos iguales. {a} se come {n1} trozos y {b} se come {n2}. ¿Qué fracción del pastel se comieron entre los dos?",
    "wp_left_q": "Una pizza tiene {d} porciones iguales. {name} se come {n} porciones. ¿Qué fracción de la pizza queda?",
    "wp_left_hint": "¿Cuántas de las {d} porciones quedan todavía?",
    "wp_left_expl": "Quedan {d} − {n} porciones de {d}, así que queda {r} de la pizza.",
    "wp_free_q": "Lena dice que {a} de {x} es más que {b} de {y}. ¿Tiene razón? Explica cómo lo sabes.",
    "wp_free_hint": "Calcula primero las dos cantidades y después compáralas.",
    "wp_free_expl": "{a} de {x} es {v1} y {b} de {y} es {v2}.",
}

LISTS = {
    "den_free_wrong": [
        "Es lo mismo que el numerador.",
        "El número que está escrito arriba.",
        "Cuántas de las partes tienes o pintas.",
        "Cuántas partes están coloreadas.",
        "Te dice lo grande que es la fracción.",
    ],
    "cmp_free_wrong": [
        "1/4 es mayor porque 4 es más que 3.",
        "Porque 4 es un número más grande que 3, así que un cuarto es más.",
        "Son iguales porque los dos tienen un 1 arriba.",
    ],
    "equiv_free_wrong": [
        "Suma el mismo número arriba y abajo, como 3/4.",
        "Suma 1 al numerador y al denominador.",
        "Multiplica solo el número de arriba por 2.",
    ],
    "add_free_wrong": [
        "También hay que sumarlos: 1/5 + 2/5 = 3/10.",
        "Porque los denominadores se multiplican.",
        "Porque los números de abajo son distintos.",
    ],
    "den_free_refs": [
        "El denominador dice en cuántas partes iguales se divide el entero.",
        "Es el número de partes iguales en que se corta la cosa entera.",
        "El número de abajo dice cuántas partes iguales forman un entero.",
    ],
    "cmp_free_refs": [
        "Si un entero se corta en 3 partes iguales, cada parte es más grande que si se corta en 4 partes.",
        "Los tercios son trozos más grandes que los cuartos porque hay menos en el mismo entero.",
        "Menos trozos quiere decir trozos más grandes, así que un tercio es más que un cuarto.",
    ],
    "equiv_free_refs": [
        "Multiplica el numerador y el denominador por el mismo número, por ejemplo 2/3 = 4/6.",
        "Multiplica arriba y abajo por el mismo número.",
        "Corta cada parte en el mismo número de trozos más pequeños, como 2/3 = 4/6.",
    ],
    "add_free_refs": [
        "El denominador es el tamaño de las partes y las partes siguen siendo quintos, así que solo sumamos los numeradores.",
        "Estamos contando quintos: un quinto más dos quintos son tres quintos.",
        "Los trozos son del mismo tamaño, así que el denominador sigue siendo 5.",
    ],
    "wp_free_refs_yes": [
        "Sí, tiene razón: {a} de {x} es {v1} y {b} de {y} es {v2}, y {v1} es más que {v2}.",
        "Sí, porque {v1} es mayor que {v2}.",
    ],
    "wp_free_refs_no": [
        "No, se equivoca: {a} de {x} es {v1} y {b} de {y} es {v2}, y {v1} no es más que {v2}.",
        "No, porque {v1} no es mayor que {v2}.",
    ],
}
