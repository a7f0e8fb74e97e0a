"""The paper's published WER table as data, and the comparison of a run with it.

Source: uDistilWhisper (github.com/UBC-NLP/uDistilWhisper) ``assets/main_results.png``, caption "WER after
normalization and removing diacritics; distilled models trained with a filtering threshold of 80 if not
specified". Its averages reproduce the ACL 2024 abstract of arXiv 2406.04512: best student 45.0 (DW-32-16++),
SeamlessM4T-large-v2 47.0, teacher 55.1, best student on the five in-house dialects 56.9.

``kdlib/corpus/resources/published_results.csv``, one row per model: ``model``; ``pool`` (distillation pool, "++" =
500K; empty for models that were not distilled); ``threshold`` (filter λ; empty when unfiltered or not
distilled); ``params_B`` (billions); WER % on the ten test sets (CV15, MGB2, MGB3, MGB5, FLEURS and the in-house
ALG, JOR, PAL, UAE, YEM); ``avg_10`` (their mean, as published, so within 0.05 of the mean of the rounded
columns); ``teacher`` (True for whisper-large-v2). Not published there, so absent: CER, the λ = 10/20/40 and
1M-pool rows, DW-8-8 and DW-16-32.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib import resources
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from matplotlib.axes import Axes

TEST_SETS = ("CV15", "MGB2", "MGB3", "MGB5", "FLEURS", "ALG", "JOR", "PAL", "UAE", "YEM")
DIALECTS = ("ALG", "JOR", "PAL", "UAE", "YEM")
COMPARISON_COLUMNS = ("model", "test_set", "published", "this_run", "difference")


def read_published() -> pd.DataFrame:
    """The published table, one row per model (columns as in the module docstring)."""
    with resources.files("kdlib.corpus.resources").joinpath("published_results.csv").open(encoding="utf-8") as handle:
        return pd.read_csv(handle)


def compare_with_published(
    scores: pd.DataFrame, names: Mapping[str, str], averages: Mapping[str, Sequence[str]] | None = None
) -> pd.DataFrame:
    """This run's WER % (`scores`: models × test sets) next to the published WER, one row per (model, test set)
    present in both; `names` maps this run's model and test-set names to the published ones (unmapped names are
    used as they are). Rows carry the published names; ``difference`` is this run minus published. Missing
    scores (NaN) are skipped; nothing in common gives an empty frame with the same columns.

    `averages` names the average columns of `scores` and the run's test sets each is the mean of (as
    `kdlib.stages.evaluate.average_groups` gives them): both sides of such a row average the same columns.
    The published side is the mean of the published cells of those test sets (those this model has a score
    on), and its row is named by the average and its sets, e.g. ``avg all (CV15, MGB2, MGB3, MGB5, FLEURS)``;
    over all ten sets it is the published ``avg_10`` itself. An average over a test set with no published
    column is left out. Without `averages`, a column mapped to ``avg_10`` is compared as it is."""
    published = read_published().set_index("model")
    averages = dict(averages or {})
    columns = [*TEST_SETS] if averages else [*TEST_SETS, "avg_10"]
    rows = []
    for run_model, row in scores.iterrows():
        model = names.get(run_model, run_model)
        if model not in published.index:
            continue
        for run_test_set, value in row.items():
            test_set = names.get(run_test_set, run_test_set)
            if run_test_set not in averages and test_set in columns and pd.notna(value):
                rows.append((model, test_set, float(published.at[model, test_set]), float(value)))
        for average, run_sets in averages.items():
            value = row.get(average)
            present = [name for name in run_sets if name not in row.index or pd.notna(row[name])]
            mapped = [names.get(name, name) for name in present]
            if value is None or pd.isna(value) or not mapped or any(name not in TEST_SETS for name in mapped):
                continue
            if sorted(mapped) == sorted(TEST_SETS):
                rows.append((model, "avg_10", float(published.at[model, "avg_10"]), float(value)))
            else:
                label = f"{average} ({', '.join(mapped)})"
                rows.append((model, label, float(published.loc[model, mapped].mean()), float(value)))
    frame = pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS[:4])).astype({"published": float, "this_run": float})
    frame["difference"] = frame["this_run"] - frame["published"]
    return frame


def parity_plot(comparison: pd.DataFrame, ax: Axes, colours: Mapping[str, str] | None = None) -> Axes:
    """Published (x) against this run's (y) WER, one colour per model (`colours`, e.g.
    `kdlib.report.palette.model_colours`), with the y = x line; the legend outside, right of the axes."""
    for model, group in comparison.groupby("model", sort=False):
        ax.scatter(group["published"], group["this_run"], label=model, color=(colours or {}).get(model))
    values = comparison[["published", "this_run"]].to_numpy()
    high = 1.05 * float(values.max()) if values.size else 100.0
    ax.plot([0, high], [0, high], color="grey", linestyle="--", linewidth=1, label="y = x")
    ax.set(xlabel="published WER (%)", ylabel="this run WER (%)")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1))
    return ax
