"""The published table: consistent averages, the abstract's numbers, and the comparison with a run."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from kdlib.report.published import (
    COMPARISON_COLUMNS,
    DIALECTS,
    TEST_SETS,
    compare_with_published,
    parity_plot,
    read_published,
)


@pytest.fixture(scope="module")
def published() -> pd.DataFrame:
    return read_published()


def test_table_shape(published: pd.DataFrame) -> None:
    assert list(published.columns) == ["model", "pool", "threshold", "params_B", *TEST_SETS, "avg_10", "teacher"]
    assert len(published) == 12 and published["model"].is_unique
    assert published.loc[published["teacher"], "model"].tolist() == ["whisper-large-v2"]


def test_averages_are_the_mean_of_the_ten_test_sets(published: pd.DataFrame) -> None:
    gap = (published[list(TEST_SETS)].mean(axis=1) - published["avg_10"]).abs()
    assert gap.max() <= 0.05 + 1e-9, published.loc[gap.idxmax(), "model"]


def test_the_abstracts_numbers(published: pd.DataFrame) -> None:
    table = published.set_index("model")
    students = table[table.index.str.startswith("DW-")]
    assert students["avg_10"].idxmin() == "DW-32-16++" and students["avg_10"].min() == 45.0
    assert table.at["SeamlessM4T-large-v2", "avg_10"] == 47.0
    assert table.loc[table["teacher"], "avg_10"].item() == 55.1
    assert math.isclose(round(students[list(DIALECTS)].mean(axis=1).min(), 1), 56.9)


def test_compare_with_published() -> None:
    scores = pd.DataFrame(
        {"cv15_test": [20.0, 47.5, 10.0], "fleurs_eg": [12.0, float("nan"), 5.0], "private": [1.0, 2.0, 3.0]},
        index=["teacher", "DW-32-16", "my-model"],
    )
    names = {"teacher": "whisper-large-v2", "cv15_test": "CV15", "fleurs_eg": "FLEURS"}
    comparison = compare_with_published(scores, names)
    assert list(comparison.columns) == list(COMPARISON_COLUMNS)
    assert comparison[["model", "test_set"]].values.tolist() == [
        ["whisper-large-v2", "CV15"],
        ["whisper-large-v2", "FLEURS"],
        ["DW-32-16", "CV15"],
    ]
    assert comparison["published"].tolist() == [19.6, 11.4, 18.8]
    assert comparison["this_run"].tolist() == [20.0, 12.0, 47.5]
    assert comparison["difference"].round(6).tolist() == [0.4, 0.6, 28.7]


def test_compare_with_published_nothing_in_common() -> None:
    comparison = compare_with_published(pd.DataFrame({"x": [1.0]}, index=["my-model"]), {})
    assert comparison.empty and list(comparison.columns) == list(COMPARISON_COLUMNS)


@pytest.mark.parametrize("empty", [False, True])
def test_parity_plot_draws(empty: bool) -> None:
    scores = pd.DataFrame({"CV15": [20.0], "MGB2": [25.0]}, index=["whisper-large-v2"])
    comparison = compare_with_published(scores, {"whisper-large-v2": "unpublished"} if empty else {})
    figure = Figure()
    canvas = FigureCanvasAgg(figure)
    ax = figure.subplots()
    assert parity_plot(comparison, ax) is ax
    assert len(ax.collections) == (0 if empty else 1) and len(ax.lines) == 1
    assert ax.get_xlabel() and ax.get_ylabel() and ax.get_legend() is not None
    canvas.draw()


def test_averages_are_taken_over_the_same_test_sets_on_both_sides() -> None:
    """A run with five of the ten sets (params/paper-public.yaml) is compared on those five: the published
    average is recomputed from its cells, never the ten-set avg_10; with all ten, avg_10 is used as it is."""
    runs = {"CV-15.0": "CV15", "MGB-2": "MGB2", "MGB-3": "MGB3", "MGB-5": "MGB5", "Fleurs": "FLEURS"}
    scores = pd.DataFrame({name: [10.0 + index] for index, name in enumerate(runs)}, index=["teacher"])
    groups = {"avg all": list(runs), "avg MSA": ["CV-15.0", "MGB-2", "Fleurs"], "avg dialects": ["MGB-3", "MGB-5"]}
    for average, sets in groups.items():
        scores[average] = scores[sets].mean(axis=1)
    names = {"teacher": "whisper-large-v2", **runs, "avg all": "avg_10"}
    comparison = compare_with_published(scores, names, groups).set_index("test_set")
    teacher = read_published().set_index("model").loc["whisper-large-v2"]
    assert "avg_10" not in comparison.index
    mean_all = teacher[["CV15", "MGB2", "MGB3", "MGB5", "FLEURS"]].mean()
    assert comparison.at["avg all (CV15, MGB2, MGB3, MGB5, FLEURS)", "published"] == pytest.approx(mean_all)
    assert comparison.at["avg all (CV15, MGB2, MGB3, MGB5, FLEURS)", "this_run"] == 12.0
    assert comparison.at["avg dialects (MGB3, MGB5)", "published"] == pytest.approx((53.0 + 99.2) / 2)
    assert comparison.at["avg MSA (CV15, MGB2, FLEURS)", "published"] == pytest.approx((19.6 + 26.5 + 11.4) / 3)
    # without the groups, the old mapping compares a five-set average with the ten-set one: what this replaces
    assert compare_with_published(scores, names).set_index("test_set").at["avg_10", "published"] == 55.1

    everything = pd.DataFrame({name: [teacher[name]] for name in TEST_SETS}, index=["whisper-large-v2"])
    everything["avg all"] = everything.mean(axis=1)
    full = compare_with_published(everything, {}, {"avg all": list(TEST_SETS)}).set_index("test_set")
    assert full.at["avg_10", "published"] == 55.1


def test_an_average_over_an_unpublished_set_is_left_out() -> None:
    scores = pd.DataFrame({"CV15": [20.0], "private": [1.0]}, index=["whisper-large-v2"])
    scores["avg all"] = scores.mean(axis=1)
    comparison = compare_with_published(scores, {}, {"avg all": ["CV15", "private"]})
    assert comparison["test_set"].tolist() == ["CV15"]
