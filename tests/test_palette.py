"""One order and one colour per variety, model and error category, whichever figure draws them."""

from __future__ import annotations

from kdlib.report import palette
from kdlib.stages.error_analysis import CATEGORIES


def test_varieties_keep_their_place_and_colour_whatever_else_is_present() -> None:
    assert palette.variety_order(["all", "YEM", "PAL", "MSA", "ZZZ", "ALG"]) == [
        "MSA",
        "ALG",
        "PAL",
        "YEM",
        "ZZZ",
        "all",
    ]
    everything = palette.variety_colours([*palette.VARIETIES, "all"])
    for subset in (["YEM"], ["PAL", "YEM", "all"], ["MSA", "YEM", "XYZ"]):
        colours = palette.variety_colours(subset)
        assert all(colours[variety] == everything[variety] for variety in subset if variety != "XYZ")
    assert len(set(everything.values())) == len(everything)  # no two varieties share a colour, `all` included
    unknown = palette.variety_colours([*palette.VARIETIES, "XYZ", "QQQ"])
    assert len(set(unknown.values())) == len(unknown)


def test_models_averages_and_categories() -> None:
    models = palette.model_colours(["teacher", "DW-2-2 λ=10", "DW-2-2 λ=none", "whisper-small"])
    assert models["teacher"] == palette.variety_colours(["all"])["all"]  # the reference is grey everywhere
    assert len(set(models.values())) == 4
    assert palette.model_colours(["DW-2-2 λ=10", "DW-2-2 λ=none"]) == {
        k: models[k] for k in ("DW-2-2 λ=10", "DW-2-2 λ=none")
    }
    many = palette.model_colours([f"DW λ={n}" for n in range(14)])
    assert len(set(many.values())) == 14
    averages = palette.average_colours(["avg all", "avg MSA", "avg dialects"])
    assert averages["avg MSA"] == palette.variety_colours(["MSA"])["MSA"] and len(set(averages.values())) == 3
    categories = palette.category_colours(CATEGORIES[1:])
    assert list(categories) == list(CATEGORIES[1:]) and len(set(categories.values())) == len(CATEGORIES) - 1
