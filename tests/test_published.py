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
