"""End to end: the runner builds every stage of the ci profile and renders every report; a rerun rebuilds nothing."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile
import torch
import yaml
from conftest import REPO, with_overrides
from transformers import WhisperConfig, WhisperForConditionalGeneration

from kdlib.cli import main
from kdlib.config import load_params
from kdlib.models.cards import read_facts
from kdlib.pipeline.graph import STAGES, build, staleness
from kdlib.report.render import read_findings
from kdlib.run import plan, select_stages
from kdlib.stages.products import read_predictions, read_pseudo_labels, read_students
from kdlib.storage.paths import RunLayout, from_run

EXPECTED_TABLES = [
    "corpora",
    "skipped_clips",
    "teacher_pool_wer",
    "filter_sweep_counts",
    "training_sets",
    "student_layers",
    "student_sizes",
    "distillation_runs",
    "wer_normalized",
    "cer_normalized",
    "wer_orthographic",
    "cer_orthographic",
    "efficiency",
    "headline",
    "wer_intervals",
    "wer_difference_intervals",
    "paired_differences",
    "threshold_wer",
    "error_categories_by_model",
    "error_categories_by_variety",
    "error_examples",
]
EXPECTED_FIGURES = [
    "teacher_wer_by_variety",
    "teacher_wer_histogram",
    "kept_fraction_vs_threshold",
    "distillation_losses",
    "threshold_wer",
    "wer_per_test_set",
    "error_categories_by_model",
    "error_categories_by_variety",
    "distillation_eval_wer",
]


@pytest.mark.slow
def test_every_stage_runs_on_the_ci_profile_and_a_rerun_rebuilds_nothing(
    ci_yaml: Path, ci_teacher: str, ci_report: Path, capsys
) -> None:
    params = load_params(ci_yaml)
    reports = params.reports_path
    assert reports == ci_report
    for stage in STAGES:
        html = (reports / f"{stage.name}.html").read_text(encoding="utf-8")
        assert "Traceback" not in html and len(html) > 10_000, stage.name
        assert str(REPO) not in html, stage.name  # no machine path in a report
    log = json.loads((reports / "run_log.json").read_text())
    assert {log["notebooks"][stage.name]["status"] for stage in STAGES} == {"ok"}
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
    assert runs[trained].groupby("pool")["held-out pairs"].nunique().eq(1).all()  # one held-out split per pool
    assert set(runs.loc[trained, "pool"]) == {"default", "small"}  # a student of each pool
    assert headline["WER avg all (%)"].between(0, 1000).all() and headline["parameters (M)"].gt(0).all()
    sizes = pd.read_csv(reports / "tables" / "student_sizes.csv").set_index("student")
    assert sizes.loc["DW-1-1", "trained"] and not sizes.loc["DW-2-2", "trained"]  # distill.count_only: counted
    with torch.device("meta"):  # DW-2-2 of a 2 + 2 layer teacher is as large as the teacher
        teacher_size = sum(
            p.numel() for p in WhisperForConditionalGeneration(WhisperConfig.from_pretrained(ci_teacher)).parameters()
        )
    assert sizes.loc["DW-2-2", "parameters"] == teacher_size > sizes.loc["DW-1-1", "parameters"]
    assert headline.set_index("model").loc["teacher", "speed-up (×)"] == pytest.approx(1.0)
    index = (reports / "index.html").read_text(encoding="utf-8")
    assert all(f"{stage.name}.html" in index for stage in STAGES) and "WER avg all (%)" in index
    for stage in STAGES:  # each notebook ends with findings written from the run's numbers, shown on the index
        assert read_findings(reports, stage.name), stage.name
    predictions = read_predictions(params)
    assert set(predictions["dataset"]) == {spec.name for spec in params.data.test}
    assert (
        predictions["model"].nunique()
        == len(headline)
        == 1 + sum(r["model_dir"] is not None for r in read_students(params))
    )
    for record in read_students(params):  # every trained model's card has its WER per test set (stage 04)
        if record["model_dir"] is not None:
            card = read_facts(record["model_dir"])
            assert card.kind == "student" and set(card.test_wer) == {spec.name for spec in params.data.test}
    assert set(read_facts(ci_teacher).test_wer) == {spec.name for spec in params.data.test}

    # a rerun: every stage is up to date, nothing is rebuilt
    manifests = {stage.name: RunLayout(params).manifest(stage.name).read_text() for stage in STAGES}
    capsys.readouterr()
    assert main(["run", str(ci_yaml)]) == 0
    assert capsys.readouterr().out.count("up to date") == len(STAGES)
    assert {stage.name: RunLayout(params).manifest(stage.name).read_text() for stage in STAGES} == manifests

    # a changed error rule makes only stage 05 stale
    changed = load_params(with_overrides(ci_yaml, ci_yaml.parent / "rules.yaml", error_rules={"min_repeats": 4}))
    steps = plan(changed, select_stages(STAGES), STAGES)
    assert [step.stage.name for step in steps if step.build] == ["05_error_analysis"]
    assert steps[-1].reason == "params changed: error_rules"


@pytest.fixture(scope="module")
def opened_repo(ci_yaml: Path, ci_report: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository as JupyterLab shows it: the notebooks, and at the path their `parameters` cell names
    (params/tiny.yaml) the session's ci profile, built by `ci_report`, with reports of its own. Its cache is
    the session's, at the path relative to the repository that the products record."""
    root = tmp_path_factory.mktemp("opened")
    (root / "pyproject.toml").write_text("[project]\nname = 'opened'\n", encoding="utf-8")
    shutil.copytree(REPO / "notebooks", root / "notebooks")
    (root / "params").mkdir()
    with_overrides(ci_yaml, root / "params" / "tiny.yaml", reports_dir=str(root / "reports" / "ci"))
    cache = load_params(ci_yaml).cache_path
    (root / cache.relative_to(ci_yaml.parent)).symlink_to(cache, target_is_directory=True)
    return root


def parameters_cell(notebook) -> dict:
    """The names the notebook's `parameters` cell defines, and their defaults."""
    (cell,) = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", ())]
    defaults: dict = {}
    exec(cell.source, defaults)
    return {name: value for name, value in defaults.items() if not name.startswith("__")}


@pytest.mark.slow
@pytest.mark.parametrize("stage", STAGES, ids=[stage.name for stage in STAGES])
def test_each_notebook_runs_from_notebooks_with_its_parameters_cell_alone(
    stage, opened_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import jupytext
    from nbclient import NotebookClient

    notebook = jupytext.read(opened_repo / "notebooks" / f"{stage.name}.py")
    defaults = parameters_cell(notebook)
    assert defaults == {"params_file": "params/tiny.yaml", "overrides": []}  # nothing injected: the file as it is
    assert (REPO / defaults["params_file"]).is_file()
    notebook.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "python3"}
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    client = NotebookClient(
        notebook, kernel_name="python3", timeout=600, resources={"metadata": {"path": str(opened_repo / "notebooks")}}
    )
    client.execute()  # raises CellExecutionError at the first failing cell
    assert [output.output_type for output in notebook.cells[-1].outputs] == ["execute_result"]
    assert "text/markdown" in notebook.cells[-1].outputs[0].data  # the findings, as Markdown
    assert read_findings(opened_repo / "reports" / "ci", stage.name)


@pytest.mark.slow
def test_a_copied_run_folder_is_current_and_reads_its_own_products(
    ci_yaml: Path, ci_teacher: str, tmp_path: Path
) -> None:
    params = load_params(ci_yaml)
    for stage in STAGES[:3]:
        if staleness(params, stage) is not None:
            build(params, stage)
    copy = tmp_path / "copied-run"
    shutil.copytree(params.run_path, copy)
    copied = load_params(with_overrides(ci_yaml, ci_yaml.parent / "copied.yaml", run_dir=str(copy)))
    assert [staleness(copied, stage) for stage in STAGES[:3]] == [None, None, None]
    assert all(Path(r["model_dir"]).is_relative_to(copy) for r in read_students(copied) if r["model_dir"])
    records = json.loads(RunLayout(copied).pseudo_labels.read_text(encoding="utf-8"))
    assert all(from_run(copied, record["path"]).is_relative_to(copy) for record in records.values())
    for pool in records:
        assert read_pseudo_labels(copied, pool)["pseudo_label"] == read_pseudo_labels(params, pool)["pseudo_label"]


@pytest.mark.slow
def test_the_runner_launches_stage_04_on_two_processes_with_the_same_scores(
    ci_yaml: Path, ci_teacher: str, tmp_path: Path, capfd
) -> None:
    params = load_params(ci_yaml)
    for stage in STAGES[:4]:
        if staleness(params, stage) is not None:
            build(params, stage)
    copy = tmp_path / "launched-run"
    shutil.copytree(params.run_path, copy)
    shutil.rmtree(copy / "evaluation" / "models")  # no cached transcription: both processes transcribe
    launched = with_overrides(
        ci_yaml, ci_yaml.parent / "launched.yaml", run_dir=str(copy), reports_dir=str(tmp_path / "r")
    )
    assert main(["run", str(launched), "--only", "04", "--force", "--set", "launch.num_processes=2"]) == 0
    output = capfd.readouterr()
    assert "accelerate.commands.launch" in output.out and "--num_processes 2" in output.out
    assert len(list((copy / "evaluation" / "models").glob("*.parquet"))) >= 2  # the models were transcribed again
    single = pd.read_csv(RunLayout(params).scores)
    pd.testing.assert_frame_equal(pd.read_csv(RunLayout(load_params(launched)).scores), single)


@pytest.mark.slow
def test_hostile_strings_are_escaped_and_an_empty_test_set_is_reported(
    ci_yaml: Path, ci_teacher: str, tmp_path: Path
) -> None:
    folder = tmp_path / "local"
    folder.mkdir()
    tone = (0.3 * np.sin(np.linspace(0, 2000, 32_000))).astype(np.float32)
    soundfile.write(folder / "tone.wav", tone, 16_000)
    (folder / "broken.wav").write_bytes(b"RIFF not really")
    hostile = "<script>alert(1)</script>"
    (folder / "metadata.csv").write_text(f"file_name,text,variety\ntone.wav,نص,{hostile}\n", encoding="utf-8")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "metadata.csv").write_text("file_name,text\nbroken.wav,نص\n", encoding="utf-8")
    (tmp_path / "empty" / "broken.wav").write_bytes(b"RIFF not really")
    raw = yaml.safe_load(ci_yaml.read_text())
    raw["data"]["test"] += [
        {"name": "evil onmouseover=alert(1)", "source": "local", "path": str(folder), "variety_column": "variety"},
        {"name": "EMPTY", "source": "local", "path": str(tmp_path / "empty"), "variety": "MSA"},
    ]
    raw.update(run_dir=str(tmp_path / "runs"), reports_dir=str(tmp_path / "reports"))
    (tmp_path / "hostile.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    assert main(["run", str(tmp_path / "hostile.yaml"), "--only", "01", "02", "03", "04"]) == 0
    params = load_params(tmp_path / "hostile.yaml")
    manifest = json.loads(RunLayout(params).manifest("04_evaluate").read_text())
    assert manifest["counts"]["empty_test_sets"] == ["EMPTY"]
    assert "evil onmouseover=alert(1)" in manifest["counts"]["test_sets"]
    for name in ("01_pseudo_label", "04_evaluate"):
        html = (params.reports_path / f"{name}.html").read_text(encoding="utf-8")
        assert "<script>alert(1)" not in html and "onmouseover=alert(1)>" not in html, name
    assert "empty test sets: EMPTY" in (params.reports_path / "04_evaluate.html").read_text(encoding="utf-8")


def test_an_unwritable_reports_folder_is_one_line(ci_yaml: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "reports").write_text("a file where the reports folder should be")
    params_file = with_overrides(ci_yaml, tmp_path / "blocked.yaml", reports_dir=str(tmp_path / "reports" / "ci"))
    assert main(["run", str(params_file), "--only", "05", "--plan"]) == 0  # planning writes nothing
    assert main(["run", str(params_file), "--only", "01"]) == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and str(tmp_path / "reports") in error[0]
