"""The derived tables (`kdlib.report.tables`) come from the stages' products, and the index shows them from the
products, whether or not a notebook wrote them: on a run whose products are written here by hand (stages 02 to
05), and on the ci profile's run (stage 01's corpora and pseudo-labels, the teacher's layers)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import pytest
from conftest import REPO

from kdlib.config import Params, load_params
from kdlib.pipeline.graph import STAGES, MissingProduct, StaleProduct, record
from kdlib.report import render as report
from kdlib.report import tables
from kdlib.report.index import write_index
from kdlib.scoring.metrics import corpus_scores
from kdlib.stages.products import PreparedSet, read_corpora, read_pseudo_labels, read_scores, read_teacher
from kdlib.storage.paths import RunLayout, from_run

SCORES = pd.DataFrame(
    [
        {"model": model, "dataset": dataset, "variety": dataset, "view": view, "wer": wer, "cer": wer / 2, "n": 4}
        for view, shift in (("normalized", 0.0), ("orthographic", 0.1), ("authors", 0.05))
        for model, dataset, wer in (
            ("teacher", "MSA", 0.2),
            ("teacher", "PAL", 0.4),
            ("DW-1-1 λ=80", "MSA", 0.3),
            ("DW-1-1 λ=80", "PAL", 0.7),
        )
        for wer in [wer + shift]
    ]
)
EFFICIENCY = pd.DataFrame(
    {
        "model": ["teacher", "DW-1-1 λ=80"],
        "parameters_M": [2.0, 1.0],
        "latency_ms": [10.0, 5.0],
        "rtf": [0.1, 0.05],
        "speedup": [1.0, 2.0],
    }
)
STUDENTS = [
    {"student": "DW-1-1", "pool": "default", "threshold": "80", "status": "trained", "eval_pairs": 2, "eval_wer": 0.5},
    {"student": "DW-1-1", "pool": "small", "threshold": "10", "status": "skipped: λ=10 keeps no pair"},
]
CATEGORIES = pd.DataFrame(
    {
        "category": ["correct", "hallucination", "substitution", "substitution", "empty", "substitution"],
        "model": ["teacher", "teacher", "teacher", "DW-1-1 λ=80", "DW-1-1 λ=80", "teacher"],
        "dataset": ["MSA", "PAL", "MSA", "PAL", "MSA", "PAL"],
        "id": ["1", "2", "3", "4", "5", "6"],
        "reference": ["a b", "a b", "a b", "c d", "e f", "g h"],
        "hypothesis": ["a b", "a b a b a b", "a x", "c y", "", "g z"],
        "variety": ["MSA", "PAL", "MSA", "PAL", "MSA", "PAL"],
    }
)


def clips(
    varieties: list[str], seconds: list[float], texts: list[str] = (), labels: list[str] = ()
) -> datasets.Dataset:
    """A prepared set's columns that the tables read (the audio a stand-in), with pseudo-labels if given."""
    columns = {"id": [f"c{i}" for i in range(len(varieties))], "variety": varieties, "duration_s": seconds}
    columns |= {"audio": [0] * len(varieties), "text": list(texts) or [""] * len(varieties)}
    return datasets.Dataset.from_dict(columns | ({"pseudo_label": list(labels)} if labels else {}))


SKIPPED = pd.DataFrame({"dataset": ["synth-pool", "synth-pool"], "reason": ["too long", "too long"]})
PREPARED = [
    PreparedSet("synth-pool", "train", clips(["MSA", "PAL", "PAL"], [3600, 1800, 1800]), SKIPPED, "default"),
    PreparedSet("small-set", "train", clips(["MSA"], [360]), SKIPPED.iloc[:0], "small"),
    PreparedSet("MSA", "test", clips(["MSA", "MSA"], [36, 36]), SKIPPED.iloc[:0]),
]
LABELLED = {  # reference, pseudo-label: PAL 3 word errors of 4 words, MSA none
    "default": clips(["MSA", "PAL", "PAL"], [1, 1, 1], ["بيت ولد", "كتب درس", "شمس قمر"], ["بيت ولد", "كتب ولد", ""]),
    "small": clips(["MSA"], [1], ["بيت"], ["ولد"]),
}


@pytest.fixture
def params(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Params:
    """The ci profile with its run written by hand under `tmp_path`: manifests of every stage (no builder runs),
    the products of stages 02 to 05 that the tables read, and stage 01's sets and pseudo-labels in memory."""
    monkeypatch.setattr(tables, "read_corpora", lambda params: PREPARED)
    monkeypatch.setattr(tables, "read_pseudo_labels", lambda params, pool: LABELLED[pool])
    params = load_params(
        REPO / "params" / "ci.yaml", settings=[f"run_dir={tmp_path / 'runs'}", f"reports_dir={tmp_path / 'reports'}"]
    )
    layout = RunLayout(params)
    record(params, STAGES[0], {})
    labels = {pool: {"path": f"labels-{pool}.parquet"} for pool in LABELLED}  # stand-ins: the tables read LABELLED
    for entry in labels.values():
        from_run(params, entry["path"]).touch()
    layout.pseudo_labels.write_text(json.dumps(labels))
    for pool, kept in (("default", ["a", "b", "c"]), ("small", [])):
        layout.split(pool).parent.mkdir(parents=True)
        layout.split(pool).write_text(json.dumps({"eval": ["x", "y"] if pool == "default" else ["z"]}))
        for threshold in params.filter.thresholds:
            layout.training_set(threshold, pool).write_text(json.dumps({"ids": kept}))
    record(params, STAGES[1], {})
    model_dir = layout.root / "students" / "DW-1-1" / "model"
    model_dir.mkdir(parents=True)
    for name in ("config.json", "model.safetensors"):  # stand-ins: stage 03's check wants the model there
        (model_dir / name).touch()
    (model_dir.parent / "history.json").write_text(json.dumps([{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.0}]))
    records = [{**STUDENTS[0], "model_dir": "students/DW-1-1/model"}, {**STUDENTS[1], "model_dir": None}]
    layout.stage_dir("03_distill").mkdir()
    layout.students.write_text(json.dumps(records))
    record(params, STAGES[2], {})
    layout.stage_dir("04_evaluate").mkdir()
    SCORES.to_csv(layout.scores, index=False)
    EFFICIENCY.to_csv(layout.efficiency, index=False)
    record(params, STAGES[3], {})
    layout.stage_dir("05_error_analysis").mkdir()
    CATEGORIES.to_parquet(layout.categories)
    record(params, STAGES[4], {})
    return params


def test_stage_01_tables(params: Params) -> None:
    assert tables.pool_names(params) == {"default": "pool", "small": "pool small"}
    corpora = tables.corpora(params)
    assert corpora.to_dict("list") == {
        "role": ["train", "train", "test"],
        "set": ["pool", "pool small", "MSA"],
        "clips": [3, 1, 2],
        "hours": [2.0, 0.1, 0.02],
        "varieties": ["MSA, PAL", "MSA", "MSA"],
        "skipped or flagged": [2, 0, 0],
    }
    assert tables.skipped_clips(params).to_dict("list") == {"dataset": ["synth-pool"], "reason": ["too long"]} | {
        "clips": [2]
    }
    labels = tables.pool_labels(params)
    assert labels["pool"].tolist() == ["pool"] * 3 + ["pool small"] and "audio" not in labels
    wer = tables.teacher_pool_wer(params)
    assert wer[["pool", "variety", "clips"]].values.tolist() == [
        ["pool", "MSA", 1],
        ["pool", "PAL", 2],
        ["pool", "all", 3],
        ["pool small", "MSA", 1],
        ["pool small", "all", 1],
    ]
    assert wer["wer"].tolist() == [0.0, 75.0, 50.0, 100.0, 100.0] and list(wer.columns) == [
        "pool",
        "variety",
        "clips",
        "wer",
        "cer",
    ]


def test_training_sets_count_each_pool_and_lambda(params: Params) -> None:
    frame = tables.training_sets(params)
    assert list(frame.columns) == ["pool", "λ", "training pairs", "held-out pairs"]
    default = frame[frame["pool"] == "default"].set_index("λ")
    assert default["training pairs"].to_dict() == {"40": 3, "80": 3, "none": 3}
    assert set(default["held-out pairs"]) == {2} and set(frame.loc[frame["pool"] == "small", "held-out pairs"]) == {1}


def test_distillation_runs_and_history(params: Params) -> None:
    runs = tables.distillation_runs(params)
    assert "model_dir" not in runs and runs["eval_wer"].iloc[0] == 50.0 and np.isnan(runs["eval_wer"].iloc[1])
    history = tables.distillation_history(params)
    assert history["run"].tolist() == ["DW-1-1 λ=80"] * 2 and history["loss"].tolist() == [2.0, 1.0]


def test_main_tables_and_the_headline(params: Params) -> None:
    main = tables.main_tables(params)
    assert set(main) == {(metric, view) for metric in ("wer", "cer") for view in params.evaluate.views}
    wer = main["wer", "normalized"]
    assert list(wer.index) == ["teacher", "DW-1-1 λ=80"] and list(wer.columns) == ["MSA", "PAL", *tables.AVERAGES]
    assert wer.loc["teacher", "avg all"] == pytest.approx(30.0) and wer.loc["DW-1-1 λ=80", "avg MSA"] == 30.0
    assert main["cer", "orthographic"].loc["teacher", "PAL"] == pytest.approx(25.0)
    headline = tables.headline(params)
    assert list(headline.columns) == ["WER avg all (%)", "WER avg MSA (%)", "WER avg dialects (%)", "parameters_M"] + [
        "latency_ms",
        "speedup",
    ]
    assert headline.loc["DW-1-1 λ=80", "speedup"] == 2.0 and headline.loc["teacher", "WER avg dialects (%)"] == 40.0
    pd.testing.assert_frame_equal(tables.computed_table(params, "headline"), headline.reset_index())
    pd.testing.assert_frame_equal(tables.computed_table(params, "cer_authors"), main["cer", "authors"])


def test_the_published_comparison_maps_names(params: Params) -> None:
    assert tables.published_vs_this_run(params).empty and tables.computed_table(params, "published_vs_this_run") is None
    mapped = load_params(
        params.source_file,
        settings=[*params.overrides, "evaluate.published_names={teacher: whisper-large-v2, MSA: CV15}"],
    )
    scores = read_scores(params)  # the mapped params' stage 04 is stale: their names change no score
    comparison = tables.published_vs_this_run(mapped, tables.main_tables(params)["wer", "normalized"], scores)
    sets = comparison[~comparison["test_set"].str.startswith("avg")]
    assert sets[["model", "test_set", "this_run"]].values.tolist() == [
        ["whisper-large-v2", "CV15", 20.0],
        ["whisper-large-v2", "PAL", 40.0],  # PAL is a published test set's name as it is
    ]
    overall = comparison[comparison["test_set"] == "avg all (CV15, PAL)"].iloc[0]  # both sides over the same sets
    assert overall["this_run"] == pytest.approx(sets["this_run"].mean())
    assert overall["published"] == pytest.approx(sets["published"].mean())


def test_error_examples_take_the_first_of_each_category_in_order(params: Params) -> None:
    examples = tables.error_examples(params, per_category=2)
    assert examples["category"].tolist() == ["empty", "hallucination", "substitution", "substitution"]
    assert examples["id"].tolist() == ["5", "2", "3", "4"] and list(examples.index) == [0, 1, 2, 3]


def test_readers_name_the_stage_and_unknown_tables_are_refused(params: Params, tmp_path: Path) -> None:
    assert tables.computes(params, "wer_authors") and not tables.computes(params, "wer_phonetic")
    with pytest.raises(KeyError, match="no table 'student_layers' is computed"):
        tables.computed_table(params, "student_layers")
    bare = load_params(REPO / "params" / "ci.yaml", settings=[f"run_dir={tmp_path / 'elsewhere'}"])
    with pytest.raises(MissingProduct, match="run stage 04 first"):
        tables.headline(bare)
    stale = load_params(params.source_file, settings=[*params.overrides, "evaluate.latency_clips=5"])
    with pytest.raises(StaleProduct, match="run stage 04 again"):
        tables.computed_table(stale, "efficiency")


def test_the_index_shows_the_tables_from_the_products(params: Params) -> None:
    """No notebook wrote a table: the index computes them; a notebook's stale table does not replace them."""
    report.write_table(pd.DataFrame({"model": ["old"], "WER avg all": [99.0]}), params.reports_path, "headline")
    page = write_index(params).read_text(encoding="utf-8")
    assert "Training sets per λ" in page and "Headline: WER averages (%) and efficiency" in page
    assert "WER (%), authors view" in page and "DW-1-1 λ=80" in page and ">old<" not in page
    assert "Aligned examples" in page and "hallucination" in page
    assert "Published and this run" not in page  # the ci profile has no published counterpart
    assert "<h3>Sets</h3>" in page and "pool small" in page and "too long" in page
    assert "The teacher on the pool" in page and "75.0" in page  # one decimal: a table of rates (%)


def test_the_index_falls_back_to_a_notebook_table_when_products_are_missing(tmp_path: Path) -> None:
    params = load_params(
        REPO / "params" / "ci.yaml", settings=[f"run_dir={tmp_path / 'runs'}", f"reports_dir={tmp_path / 'reports'}"]
    )
    report.write_table(pd.DataFrame({"model": ["DW-8-8"], "WER avg all": [31.25]}), params.reports_path, "headline")
    page = write_index(params).read_text(encoding="utf-8")
    assert "DW-8-8" in page and "31.2" in page  # one decimal: a table of rates (%)


@pytest.mark.slow
def test_stage_01_tables_on_the_ci_run(ci_yaml: Path, ci_report: Path, tmp_path: Path) -> None:
    params = load_params(ci_yaml)
    corpora = tables.corpora(params)
    prepared = read_corpora(params)
    names = tables.pool_names(params)
    assert corpora["set"].tolist() == [*names.values(), *(c.name for c in prepared if c.role == "test")]
    assert corpora["clips"].sum() == sum(len(c.dataset) for c in prepared)
    assert corpora["hours"].sum() == pytest.approx(sum(sum(c.dataset["duration_s"]) for c in prepared) / 3600)
    assert tables.skipped_clips(params)["clips"].sum() == sum(len(c.skipped) for c in prepared)

    labels = tables.pool_labels(params)
    assert len(labels) == sum(len(read_pseudo_labels(params, pool)) for pool in names) and "audio" not in labels
    wer = tables.teacher_pool_wer(params, labels)
    default = labels[labels["pool"] == "pool"]
    overall = corpus_scores(default["text"], default["pseudo_label"], params.filter.view, params.normalization)
    row = wer[(wer["pool"] == "pool") & (wer["variety"] == "all")].iloc[0]
    assert row["wer"] == pytest.approx(100 * overall["wer"]) and row["clips"] == len(default)
    pd.testing.assert_frame_equal(tables.teacher_pool_wer(params), wer)

    layers = tables.student_layers(params).set_index(["teacher", "student"])
    assert layers.loc[("whisper-large-v2", "DW-8-8"), "decoder layers"] == [0, 4, 8, 13, 17, 22, 26, 31]
    from transformers import WhisperConfig

    teacher = WhisperConfig.from_pretrained(read_teacher(params)["source"])
    assert layers.loc[("this profile's", "DW-1-1"), "encoder layers"] == [teacher.encoder_layers - 1]

    # the notebooks wrote exactly the tables kdlib computes, and an index without them shows the same
    for name in [
        *tables.COMPUTED,
        *(f"{metric}_{view}" for metric in ("wer", "cer") for view in params.evaluate.views),
    ]:
        frame, path = tables.computed_table(params, name), ci_report / "tables" / f"{name}.csv"
        if frame is None:
            assert not path.exists(), name
        else:
            assert path.read_text(encoding="utf-8") == report.labelled(frame).to_csv(index=False), name
    copied = tmp_path / "reports"
    shutil.copytree(ci_report, copied, ignore=shutil.ignore_patterns("tables"))
    again = load_params(ci_yaml, settings=[f"reports_dir={copied}"])
    assert write_index(again).read_text(encoding="utf-8") == (ci_report / "index.html").read_text(encoding="utf-8")
