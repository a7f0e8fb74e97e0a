"""The answer first: the index's headline block is computed from the stage products (best student against the
teacher with intervals, size and speed-up, what the filter did), and says only what the intervals support."""

from __future__ import annotations

import pandas as pd

from kdlib.report.headline import headline, headline_rows

VIEW = "normalized"


def intervals(rows: dict[str, tuple[float, float, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [(model, "avg all", *values, VIEW) for model, values in rows.items()]
        + [("teacher", "avg all", 0.9, 0.8, 1.0, "orthographic")],  # another view: ignored
        columns=["model", "average", "estimate", "low", "high", "view"],
    )


def differences(rows: list[tuple[str, str, float, float, float]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["model", "against", "difference", "low", "high"])
    return frame.assign(average="avg all", excludes_zero=(frame["low"] > 0) | (frame["high"] < 0), view=VIEW)


EFFICIENCY = pd.DataFrame(
    {
        "model": ["teacher", "DW-2-2 λ=20", "DW-2-2 λ=none", "DW-4-2 λ=80"],
        "parameters_M": [2.0, 1.1, 1.1, 1.5],
        "speedup": [1.0, 1.5, 1.5, 1.25],
        "device": ["CPU: test"] * 4,
    }
)
COUNTS = pd.DataFrame(
    {
        "pool": ["default", "default", "other"],
        "threshold": ["80", "80", "80"],
        "variety": ["all", "MSA", "all"],
        "kept": [663, 100, 5],
        "total": [895, 120, 9],
    }
)


def test_the_headline_names_the_best_student_with_its_interval_size_speed_and_the_filter() -> None:
    found = headline(
        intervals(
            {
                "teacher": (0.495, 0.442, 0.550),
                "DW-2-2 λ=20": (0.670, 0.610, 0.730),
                "DW-2-2 λ=none": (0.717, 0.660, 0.780),
                "DW-4-2 λ=80": (0.661, 0.611, 0.719),
            }
        ),
        differences(
            [
                ("DW-4-2 λ=80", "teacher", 0.165, 0.124, 0.209),
                ("DW-2-2 λ=20", "teacher", 0.175, 0.128, 0.229),
                ("DW-2-2 λ=20", "DW-2-2 λ=none", -0.047, -0.089, -0.002),
            ]
        ),
        EFFICIENCY,
        COUNTS,
        view=VIEW,
        confidence=0.95,
        selected="80",
        default_pool="default",
        test_sets=6,
    )
    assert found is not None and found.student == "DW-4-2 λ=80"
    assert found.student_wer is not None and found.student_wer.text() == "66.1 [61.1, 71.9]"
    assert found.teacher.text(unit=" %") == "49.5 % [44.2, 55.0]"
    assert found.gap is not None and found.gap.excludes_zero
    assert found.parameters_m == (1.5, 2.0) and found.speedup == 1.25
    assert found.kept == (663, 895)  # the default pool's, over every variety
    assert found.twin is None  # DW-4-2 has no λ=none twin here
    assert found.strongest is not None and found.strongest.model == "DW-2-2 λ=20"
    rows = dict(headline_rows(found))
    assert rows["Best student"] == (
        "DW-4-2 λ=80, average WER 66.1 % [61.1, 71.9]; the teacher 49.5 % [44.2, 55.0] (95 % intervals over 6 test "
        "sets, normalized view); student minus teacher: +16.5 points [+12.4, +20.9], supported: its interval "
        "excludes 0."
    )
    assert rows["Size and speed"] == (
        "1.50 M parameters, 75 % of the teacher's 2.00 M; 1.25× the teacher's speed per clip on CPU: test."
    )
    assert rows["The filter"] == (
        "At λ = 80 it keeps 663 of 895 pool pairs (74.1 %); the largest effect the intervals support: "
        "DW-2-2 λ=20 against DW-2-2 λ=none, -4.7 points [-8.9, -0.2]."
    )


def test_an_unsupported_gap_is_not_a_finding_and_the_twin_is_reported() -> None:
    found = headline(
        intervals({"teacher": (0.30, 0.25, 0.35), "DW λ=80": (0.29, 0.24, 0.34), "DW λ=none": (0.31, 0.26, 0.36)}),
        differences(
            [
                ("DW λ=80", "teacher", -0.01, -0.04, 0.02),
                ("DW λ=80", "DW λ=none", -0.02, -0.05, 0.01),
            ]
        ),
        None,
        None,
        view=VIEW,
        confidence=0.9,
        selected="80",
        default_pool="default",
        test_sets=3,
    )
    assert found is not None and found.student == "DW λ=80" and found.kept is None and found.parameters_m is None
    rows = dict(headline_rows(found))
    assert "-1.0 points [-4.0, +2.0], not a finding: its interval includes 0" in rows["Best student"]
    assert "Size and speed" not in rows
    assert rows["The filter"] == (
        "DW λ=80 against its unfiltered twin: -2.0 points [-5.0, +1.0], not a finding: its interval includes 0; "
        "none of the 1 filtered students differs from its unfiltered twin beyond its interval."
    )


def test_without_students_the_headline_is_the_teacher_and_without_a_teacher_there_is_none() -> None:
    only_teacher = intervals({"teacher": (0.30, 0.25, 0.35)})
    empty = differences([])
    found = headline(
        only_teacher, empty, None, None, view=VIEW, confidence=0.95, selected=None, default_pool="d", test_sets=2
    )
    assert found is not None and found.student is None
    assert headline_rows(found) == [
        (
            "Best model",
            "The teacher, average WER 30.0 % [25.0, 35.0] (95 % intervals over 2 test sets, normalized "
            "view); no student.",
        )
    ]
    assert (
        headline(
            only_teacher[only_teacher["view"] != VIEW],
            empty,
            None,
            None,
            view=VIEW,
            confidence=0.95,
            selected=None,
            default_pool="d",
            test_sets=2,
        )
        is None
    )
