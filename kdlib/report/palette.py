"""One look for every figure: the order and colour of varieties, models and error categories.

Defined once here so that a variety (or a model, or a category) has the same place and colour in
every figure of every notebook: MSA first, then the dialects, then `all`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import seaborn as sns

ALL = "all"
VARIETIES = ("MSA", "ALG", "EGY", "JOR", "MOR", "PAL", "UAE", "YEM")  # MSA, then the dialects A-Z
TEACHER = "teacher"
_NEUTRAL = "#4d4d4d"  # `all` and the teacher: the reference in every figure
REFERENCE = "#000000"  # marks on a figure that are no variety, model or category (a threshold line): black, a colour
# no palette below uses, so that no mark is taken for a series


def _colours(count: int, name: str) -> list[str]:
    return [f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}" for r, g, b in sns.color_palette(name, count)]


_QUALITATIVE = [colour for index, colour in enumerate(_colours(10, "tab10")) if index != 7]  # tab10 less its grey
_LIGHT = [colour for index, colour in enumerate(_colours(20, "tab20")) if index % 2 and index != 15]  # light shades


def variety_order(present: Iterable[str]) -> list[str]:
    """The varieties in `present` in the one order: the known ones as in VARIETIES, others A-Z, `all` last."""
    present = set(present)
    known = [variety for variety in VARIETIES if variety in present]
    others = sorted(present - set(VARIETIES) - {ALL})
    return known + others + ([ALL] if ALL in present else [])


def variety_colours(present: Iterable[str]) -> dict[str, str]:
    """Each variety's colour: fixed for the known ones (whatever else is present), `all` in grey."""
    order = variety_order(present)
    fixed = dict(zip(VARIETIES, _QUALITATIVE))
    spare = iter(_LIGHT + _colours(len(order), "husl"))  # unknown varieties: colours VARIETIES do not use
    return {variety: _NEUTRAL if variety == ALL else fixed.get(variety) or next(spare) for variety in order}


def average_colours(averages: Sequence[str]) -> dict[str, str]:
    """The paper's averages over test sets: `avg all` grey like `all`, `avg MSA` in MSA's colour, the rest in
    colours no variety uses."""
    spare = iter(_QUALITATIVE[len(VARIETIES) :] + _colours(20, "tab20b"))
    fixed = {"avg all": _NEUTRAL, "avg MSA": variety_colours(["MSA"])["MSA"]}
    return {average: fixed.get(average) or next(spare) for average in averages}


def model_colours(models: Sequence[str]) -> dict[str, str]:
    """Each model's colour, in the given order (the teacher, then the students as listed), the teacher in grey."""
    students = [model for model in dict.fromkeys(models) if model != TEACHER]
    many = len(students) > len(_QUALITATIVE)
    colours = dict(zip(students, _colours(len(students), "husl") if many else _QUALITATIVE))
    return {model: _NEUTRAL if model == TEACHER else colours[model] for model in dict.fromkeys(models)}


def category_colours(categories: Sequence[str]) -> dict[str, str]:
    """Each error category's colour, in the given order (`kdlib.stages.error_analysis.CATEGORIES`)."""
    return dict(zip(categories, _colours(len(categories), "Set2")))


def set_theme() -> None:
    """The figures' common style (seaborn's white grid, legends without a frame), and tables shown whole: pandas
    cuts no row, column or cell of a table a notebook shows (`kdlib.report.render.show_table` shows most)."""
    import pandas as pd

    sns.set_theme(style="whitegrid", rc={"legend.frameon": False, "figure.dpi": 100})
    for option in ("display.max_rows", "display.max_columns", "display.max_colwidth", "display.width"):
        pd.set_option(option, None)
