"""Stage 04's bookkeeping: identical models share a transcription but keep their own names."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd

from kdlib.config import Params
from kdlib.corpus.preparation import load_test_sets
from kdlib.stages import evaluate


def test_identical_models_keep_their_own_rows(ci_params: Params, ci_teacher: str, tmp_path: Path) -> None:
    entries = [
        evaluate.ModelEntry("DW-x λ=10", "student", ci_teacher, "DW-x", "10"),
        evaluate.ModelEntry("DW-x λ=20", "student", ci_teacher, "DW-x", "20"),
    ]
    params = replace(ci_params, run_dir=str(tmp_path / "runs"))
    predictions = evaluate.predict_all(params, entries, load_test_sets(params))
    assert list(predictions["model"].unique()) == ["DW-x λ=10", "DW-x λ=20"]
    assert len(list((tmp_path / "runs" / "evaluation" / "models").glob("*.parquet"))) == 1  # transcribed once
    first, second = (part.reset_index(drop=True) for _, part in predictions.groupby("model", sort=False))
    pd.testing.assert_series_equal(first["hypothesis"], second["hypothesis"])
    scores = evaluate.scores_table(predictions, params)
    table = evaluate.main_table(scores)
    assert list(table.index) == ["DW-x λ=10", "DW-x λ=20"] and {"avg all", "avg MSA", "avg dialects"} <= set(
        table.columns
    )
    assert set(evaluate.threshold_table(scores)["threshold"]) == {"10", "20"}
