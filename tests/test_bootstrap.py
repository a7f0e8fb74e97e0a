"""Bootstrap intervals: they cover the estimate, narrow with more clips, pair models and are seeded."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kdlib.config import Params
from kdlib.scoring import intervals as bootstrap
from kdlib.stages import evaluate

GROUPS = {"avg all": ["a", "b"], "avg MSA": ["a"]}


def clips(model: str, clips_per_set: int, error_rate: float, seed: int = 0) -> pd.DataFrame:
    """Per-clip counts of a model on sets a and b: 10 words a clip, each wrong with `error_rate`."""
    rng = np.random.default_rng(seed)
    rows = [
        {"model": model, "dataset": dataset, "id": f"{dataset}{i:05d}", "errors": rng.binomial(10, error_rate)}
        for dataset in ("a", "b")
        for i in range(clips_per_set)
    ]
    return pd.DataFrame(rows).assign(words=10)


def averages(frame: pd.DataFrame, resamples: int = 400, seed: int = 0) -> pd.DataFrame:
    return bootstrap.average_intervals(frame, GROUPS, resamples, seed, 0.95)


def test_the_interval_contains_the_point_estimate() -> None:
    frame = clips("m", 200, 0.3)
    table = averages(frame)
    assert (table["low"] < table["estimate"]).all() and (table["estimate"] < table["high"]).all()
    mean_of_sets = np.mean([part["errors"].sum() / part["words"].sum() for _, part in frame.groupby("dataset")])
    assert table.set_index("average").loc["avg all", "estimate"] == pytest.approx(mean_of_sets)


def test_the_interval_narrows_as_clips_grow() -> None:
    widths = [(t["high"] - t["low"]).iloc[0] for t in (averages(clips("m", n, 0.3)) for n in (20, 200, 2000))]
    assert widths[0] > widths[1] > widths[2] > 0


def test_a_model_against_itself_differs_by_exactly_zero() -> None:
    frame = pd.concat([clips("m", 100, 0.3), clips("copy", 100, 0.3)])
    table = bootstrap.difference_intervals(frame, GROUPS, [("copy", "m")], 300, 0, 0.95)
    assert (table[["difference", "low", "high"]] == 0).all().all() and not table["excludes_zero"].any()


def test_a_clearly_better_model_excludes_zero() -> None:
    frame = pd.concat([clips("good", 150, 0.1, seed=1), clips("bad", 150, 0.4, seed=2)])
    table = bootstrap.difference_intervals(frame, GROUPS, [("good", "bad")], 300, 0, 0.95)
    assert table["excludes_zero"].all() and (table["high"] < 0).all()
    supported, unsupported = bootstrap.claims(table)
    assert len(supported) == 2 and not unsupported and supported[0].startswith("good has lower WER than bad")


def test_paired_resamples_recover_a_constant_shift_exactly() -> None:
    base = clips("m", 200, 0.3)
    shifted = base.assign(model="m+1", errors=base["errors"] + 1)  # one more error on every clip
    table = bootstrap.difference_intervals(pd.concat([base, shifted]), GROUPS, [("m+1", "m")], 300, 0, 0.95)
    assert np.allclose(table[["difference", "low", "high"]], 0.1)  # paired: the same clips in both


def test_results_are_fixed_by_the_seed() -> None:
    frame = clips("m", 100, 0.3)
    pd.testing.assert_frame_equal(averages(frame, seed=3), averages(frame, seed=3))
    assert not averages(frame, seed=3)["low"].equals(averages(frame, seed=4)["low"])


def test_mismatched_clips_and_unknown_sets_are_errors() -> None:
    frame = pd.concat([clips("m", 50, 0.3), clips("n", 49, 0.3)])
    with pytest.raises(ValueError, match="'n' was not scored on the same clips of 'a'"):
        averages(frame)
    with pytest.raises(ValueError, match="unknown ones: \\['c'\\]"):
        bootstrap.average_intervals(clips("m", 5, 0.3), {"avg": ["c"]}, 10, 0, 0.95)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        bootstrap.percentile_interval(np.zeros(3), 1.0)


def test_students_are_paired_with_the_teacher_and_their_no_filter_twin() -> None:
    models = pd.DataFrame(
        {
            "model": ["teacher", "DW-2-2 λ=80", "DW-2-2 λ=none", "DW-1-1 λ=80"],
            "kind": ["teacher", "student", "student", "student"],
            "student": [None, "DW-2-2", "DW-2-2", "DW-1-1"],
        }
    )
    assert evaluate.comparison_pairs(models) == [
        ("DW-2-2 λ=80", "teacher"),
        ("DW-2-2 λ=80", "DW-2-2 λ=none"),
        ("DW-2-2 λ=none", "teacher"),
        ("DW-1-1 λ=80", "teacher"),
    ]


def test_stage_04_intervals_match_the_main_table(ci_params: Params) -> None:
    references = ["كتب الولد الدرس", "ذهب الى السوق", "قال شيئا جديدا", "هذا بيت كبير"]
    hypotheses = {
        "teacher": references,
        "DW-1-1 λ=80": ["كتب الولد", "ذهب الى السوق", "قال شيئا", "هذا بيت كبير"],
        "DW-1-1 λ=none": ["كتب", "ذهب", "قال شيئا جديدا", "بيت"],
    }
    predictions = pd.DataFrame(
        {
            "model": model,
            "kind": "teacher" if model == "teacher" else "student",
            "student": None if model == "teacher" else "DW-1-1",
            "dataset": dataset,
            "variety": dataset,
            "id": f"{dataset}-{i}",
            "reference": reference,
            "hypothesis": hypothesis,
        }
        for model, said in hypotheses.items()
        for dataset in ("MSA", "PAL")
        for i, (reference, hypothesis) in enumerate(zip(references, said))
    )
    scores = evaluate.scores_table(predictions, ci_params)
    averages, differences = evaluate.intervals(predictions, scores, ci_params)
    assert set(averages["view"]) == set(differences["view"]) == set(ci_params.evaluate.views)
    normalized = averages[averages["view"] == "normalized"].pivot(index="model", columns="average", values="estimate")
    table = evaluate.main_table(scores)
    pd.testing.assert_frame_equal(
        normalized.loc[table.index, ["avg all", "avg MSA", "avg dialects"]],
        table[["avg all", "avg MSA", "avg dialects"]],
        check_names=False,
    )
    pairs = differences[["model", "against"]].drop_duplicates().itertuples(index=False)
    assert [tuple(pair) for pair in pairs] == [
        ("DW-1-1 λ=80", "teacher"),
        ("DW-1-1 λ=80", "DW-1-1 λ=none"),
        ("DW-1-1 λ=none", "teacher"),
    ]
    assert (averages["low"] <= averages["estimate"]).all() and (averages["estimate"] <= averages["high"]).all()
