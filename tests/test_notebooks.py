"""End to end: the runner executes all five notebooks on the ci profile and renders every report."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from kdlib.config import load_params
from kdlib.run import NOTEBOOKS, main

EXPECTED_TABLES = [
    "corpora", "skipped_clips", "teacher_pool_wer", "filter_sweep_counts", "student_layers", "distillation_runs",
    "wer_normalized", "cer_normalized", "wer_orthographic", "cer_orthographic", "efficiency", "headline",
    "threshold_wer", "error_categories_by_model", "error_categories_by_variety",
]
EXPECTED_FIGURES = [
    "teacher_wer_by_variety", "teacher_wer_histogram", "kept_fraction_vs_threshold", "distillation_losses",
    "threshold_wer", "wer_per_test_set", "error_categories_by_model", "error_categories_by_variety",
]


@pytest.mark.slow
def test_all_notebooks_run_on_the_ci_profile(ci_yaml: Path, ci_teacher: str) -> None:
    assert main([str(ci_yaml)]) == 0
    params = load_params(ci_yaml)
    reports = params.reports_path
    for name in NOTEBOOKS:
        html = (reports / f"{name}.html").read_text(encoding="utf-8")
        assert "Traceback" not in html and len(html) > 10_000, name
    log = json.loads((reports / "run_log.json").read_text())
    assert {log["notebooks"][name]["status"] for name in NOTEBOOKS} == {"ok"}
    for table in EXPECTED_TABLES:
        assert (reports / "tables" / f"{table}.csv").exists() and (reports / "tables" / f"{table}.md").exists(), table
    for figure in EXPECTED_FIGURES:
        assert (reports / "figures" / f"{figure}.png").stat().st_size > 1_000, figure
    headline = pd.read_csv(reports / "tables" / "headline.csv")
    runs = pd.read_csv(reports / "tables" / "distillation_runs.csv")
    assert len(runs) == sum(len(run.thresholds) for run in params.distill.runs)
    trained = runs["status"] == "trained"
    assert runs.loc[~trained, "status"].str.startswith("skipped: λ=").all()  # a λ that keeps no pair says so
    assert len(headline) == 1 + trained.sum() >= 2  # the teacher and every distilled student
    assert headline["WER avg all"].between(0, 1000).all() and headline["parameters_M"].gt(0).all()
    teacher = headline.set_index("model").loc["teacher"]
    assert teacher["speedup"] == pytest.approx(1.0)
    index = (reports / "index.html").read_text(encoding="utf-8")
    assert all(f"{name}.html" in index for name in NOTEBOOKS) and "WER avg all" in index
    predictions = pd.read_parquet(params.run_path / "evaluation" / "predictions.parquet")
    assert set(predictions["dataset"]) == {spec.name for spec in params.data.test}
    assert predictions["model"].nunique() == len(headline)
