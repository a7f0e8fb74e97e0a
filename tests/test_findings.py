"""Findings are written from the numbers they are given: other numbers, other sentences."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import REPO

from kdlib.config import load_params, params_from_dict
from kdlib.report import findings
from kdlib.stages.filtering import sweep_counts


@pytest.fixture(scope="module")
def tiny():
    return load_params(REPO / "params" / "tiny.yaml")


def test_the_data_note_says_whether_speech_is_synthetic(tiny) -> None:
    assert "synthetic speech" in findings.data_note(tiny) and "not the paper's findings" in findings.data_note(tiny)
    paper = load_params(REPO / "params" / "paper.yaml")
    note = findings.data_note(paper)
    assert "synthetic" not in note and "MGB-2 (hub)" in note and "ALG (local)" in note and "pool-500K (hub)" in note
    bare = params_from_dict({"profile": "bare", "run_dir": "r", "reports_dir": "s"})
    assert findings.data_note(bare) == "The bare profile names no speech corpus."


def test_pseudo_label_findings(tiny) -> None:
    overview = pd.DataFrame(
        {
            "role": ["train", "test", "test"],
            "set": ["pool", "MSA", "PAL"],
            "clips": [1200, 30, 20],
            "hours": [1.5, 0.1, 0.1],
            "varieties": ["MSA, PAL", "MSA", "PAL"],
            "skipped or flagged": [3, 0, 0],
        }
    )
    skips = pd.DataFrame({"dataset": ["pool", "pool"], "reason": ["corrupt", "too_long"], "clips": [1, 2]})
    per_variety = pd.DataFrame({"variety": ["MSA", "PAL", "all"], "wer": [12.34, 56.78, 30.0]})
    sentences = findings.pseudo_labels(tiny, overview, skips, per_variety)
    assert sentences[1] == "The distillation pool holds 1,200 clips (1.50 h) of MSA, PAL; 2 test sets hold 50 clips."
    assert sentences[2] == "Skipped or flagged: 3 clips, too_long (2) and corrupt (1)."
    assert "30.0 % WER" in sentences[3] and "best on MSA (12.3 %), worst on PAL (56.8 %)" in sentences[3]
    same = findings.pseudo_labels(tiny, overview, skips.iloc[:0], per_variety.assign(wer=100.0))
    assert same[2] == "No clip was skipped or flagged." and "the same on every variety" in same[3]


def test_filter_findings_follow_the_sweep() -> None:
    pool = pd.DataFrame(
        {
            "variety": ["MSA"] * 4 + ["PAL"] * 4,
            "teacher_wer": [0.0, 0.1, 0.5, 0.9, 0.3, 0.6, 0.9, 1.2],
            "duration_s": [1.0] * 8,
        }
    )
    counts = sweep_counts(pool, (10.0, 20.0, 80.0, None))
    training = pd.DataFrame(
        {"λ": ["10", "20", "80", "none"], "training pairs": [2, 2, 5, 7], "held-out pairs": [1, 1, 1, 1]}
    )
    sentences = findings.filter_sweep(counts, training, "80")
    assert sentences[0] == "At λ = 80 the filter keeps 5 of 8 pool pairs (62.5 %): from 50.0 % of PAL to 75.0 % of MSA."
    assert sentences[1] == "The tightest λ (10) keeps 25.0 % of the pool."
    assert "λ = 10 and λ = 20 keep the same 2 training pairs" in sentences[2]
    assert sentences[-1] == "1 pair held out before filtering, the same for every student and λ."
    empty = findings.filter_sweep(counts, training.assign(**{"training pairs": [0, 0, 5, 7]}), "80")
    assert "λ = 10 and λ = 20 keep no training pair: no student learns." in empty


def test_distillation_findings() -> None:
    results = pd.DataFrame(
        {
            "student": ["DW-2-2", "DW-2-2", "DW-2-2"],
            "threshold": ["10", "80", "none"],
            "status": ["skipped: λ=10 keeps no pairs", "trained", "trained"],
            "eval_pairs": [0, 40, 40],
            "eval_wer": [None, 61.25, 70.5],
        }
    )
    history = pd.DataFrame(
        {
            "run": ["DW-2-2 λ=80"] * 2 + ["DW-2-2 λ=none"] * 2,
            "step": [1, 2, 1, 2],
            "loss": [3.0, 1.0, 2.0, 2.5],
        }
    )
    sentences = findings.distillation(results, history)
    assert sentences[0] == "Students trained: 2 of 3 runs; DW-2-2 λ=10 had no pair to learn from."
    assert sentences[1] == (
        "On the 40 held-out pairs the lowest WER is DW-2-2 λ=80 (61.2 %), the highest DW-2-2 λ=none (70.5 %)."
    )
    assert (
        sentences[2]
        == "The training loss fell from its first to its last logged step in 1 of 2 runs (not in DW-2-2 λ=none)."
    )


def test_evaluation_findings_state_only_what_the_intervals_support() -> None:
    intervals = pd.DataFrame(
        {
            "model": ["teacher", "DW"],
            "average": ["avg all", "avg all"],
            "estimate": [0.3, 0.35],
            "low": [0.25, 0.3],
            "high": [0.35, 0.4],
        }
    )
    paired = pd.DataFrame(
        {
            "model": ["DW", "DW"],
            "against": ["teacher", "DW λ=none"],
            "average": ["avg all", "avg all"],
            "difference": [0.05, -0.03],
            "low": [0.01, -0.07],
            "high": [0.09, 0.01],
            "excludes_zero": [True, False],
        }
    )
    sentences = findings.evaluation(intervals, paired, 0.95, 3)
    assert sentences == [
        "Lowest average WER: teacher, 30.00 % [25.00, 35.00] (95% interval, 3 test sets).",
        "1 of 2 paired differences are supported by their intervals (marked * in the table of paired differences).",
        "Against the teacher, 1 of 1 differences are supported: DW has higher WER on 1 of its averages.",
        "Against their unfiltered twins: none of the 1 differences is supported.",
        "Not supported: the other 1 difference, whose intervals include 0; the largest is DW vs DW λ=none "
        "(avg all): -3.00 points [-7.00, +1.00].",
    ]
    none = findings.evaluation(intervals, paired.assign(excludes_zero=False), 0.95, 3)
    assert none[1:] == ["No difference is supported: each of the 2 intervals includes 0."]
    assert findings.evaluation(intervals, paired.iloc[:0], 0.95, 3)[1:] == ["No student to compare with the teacher."]


def test_many_paired_differences_make_one_table_not_one_bullet_each() -> None:
    rows = [
        (model, against, average, sign * 0.05, sign * 0.05 - 0.02, sign * 0.05 + 0.02, True)
        for model, sign in (("DW λ=10", 1), ("DW λ=80", -1))
        for against in ("teacher", "DW λ=none")
        for average in ("avg all", "avg MSA", "avg dialects")
    ]
    columns = ["model", "against", "average", "difference", "low", "high", "excludes_zero"]
    paired = pd.DataFrame(rows, columns=columns)
    paired.loc[paired["average"] == "avg MSA", "excludes_zero"] = False  # one average unsupported in every row
    table = findings.comparison_table(paired)
    assert list(table.columns) == [
        "student",
        "against",
        "avg all (points)",
        "avg MSA (points)",
        "avg dialects (points)",
    ]
    assert table[["student", "against"]].values.tolist() == [
        ["DW λ=10", "teacher"],
        ["DW λ=10", "DW λ=none"],
        ["DW λ=80", "teacher"],
        ["DW λ=80", "DW λ=none"],
    ]
    assert table.loc[3, "avg all (points)"] == "-5.0 [-7.0, -3.0] *"  # supported: marked
    assert table.loc[3, "avg MSA (points)"] == "-5.0 [-7.0, -3.0]"  # not supported: no mark
    intervals = pd.DataFrame(
        {"model": ["teacher"], "average": ["avg all"], "estimate": [0.3], "low": [0.25], "high": [0.35]}
    )
    sentences = findings.evaluation(intervals, paired, 0.95, 3)
    assert len(sentences) == 5  # not one bullet per difference (12 here)
    assert sentences[2] == (
        "Against the teacher, 4 of 6 differences are supported: DW λ=10 has higher WER on 2 of its averages; "
        "DW λ=80 has lower WER on 2 of its averages."
    )


def test_error_findings() -> None:
    predictions = pd.DataFrame(
        {
            "model": ["teacher"] * 4 + ["DW"] * 4,
            "variety": ["MSA", "PAL", "PAL", "PAL"] * 2,
            "category": ["correct", "dialectal", "substitution", "hallucination"]
            + ["substitution", "dialectal", "dialectal", "correct"],
        }
    )
    by_model = pd.DataFrame(
        {
            "model": ["teacher", "DW"],
            "category": ["hallucination", "hallucination"],
            "count": [1, 0],
            "share": [1 / 3, 0.0],
        }
    )
    sentences = findings.errors(predictions, by_model)
    assert sentences[0] == "6 of 8 predictions (75.0 %) have at least one word error."
    assert sentences[1].startswith("The most common category is dialectal (50.0 % of erroneous predictions)")
    assert sentences[2] == "1 of 2 models make hallucination errors; most of all teacher (33.3 % of its errors)."
    assert sentences[3] == "Dialectal substitutions make 60.0 % of the errors on dialect test sets and 0.0 % on MSA."
