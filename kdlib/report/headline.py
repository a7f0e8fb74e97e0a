"""The answer first: what a reader of the index wants before the study, computed from the stage products.

The best student (lowest average WER over every test set, in the headline view) against the teacher, each with its
bootstrap interval, and their paired difference; its size and speed-up; what the filter did (the pairs the
paper's λ keeps, and the filter's effect on the best student and the strongest one the intervals support).
`read_headline` gathers it from a run's products (None until stage 04 is built), `headline` computes it from the
tables, `headline_rows` says it in a few labelled sentences, which `kdlib.report.index` puts at the top of the page.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from kdlib.config import Params, threshold_label

AVERAGE = "avg all"
TEACHER = "teacher"


@dataclass(frozen=True)
class Interval:
    """A number in % (or percentage points) with its bootstrap interval."""

    estimate: float
    low: float
    high: float

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def text(self, signed: bool = False, unit: str = "") -> str:
        """`49.5 % [44.2, 55.0]`, or signed: `+16.6 points [+12.4, +20.9]` with unit " points"."""
        form = "+.1f" if signed else ".1f"
        return f"{self.estimate:{form}}{unit} [{self.low:{form}}, {self.high:{form}}]"


@dataclass(frozen=True)
class Difference:
    """A paired WER difference, `model` minus `against`, in percentage points."""

    model: str
    against: str
    points: Interval


@dataclass(frozen=True)
class Headline:
    view: str
    confidence: float
    test_sets: int
    teacher: Interval  # average WER, %
    student: str | None = None  # the best student's row name, e.g. "DW-4-2 λ=80"
    student_wer: Interval | None = None
    gap: Interval | None = None  # the best student minus the teacher, points
    parameters_m: tuple[float, float] | None = None  # (student, teacher), millions
    speedup: float | None = None  # the teacher's latency over the student's, on `device`
    device: str | None = None
    selected: str | None = None  # the paper's λ
    kept: tuple[int, int] | None = None  # pool pairs the selected λ keeps, of all
    twin: Difference | None = None  # the best student against its no-filter twin
    strongest: Difference | None = None  # the largest filter effect the intervals support (any student)
    compared: int = 0  # filtered students compared with their no-filter twins (on the average)


def _interval(row: pd.Series, scale: float = 100.0) -> Interval:
    return Interval(scale * float(row["estimate"]), scale * float(row["low"]), scale * float(row["high"]))


def _difference(row: pd.Series) -> Difference:
    points = Interval(100 * float(row["difference"]), 100 * float(row["low"]), 100 * float(row["high"]))
    return Difference(str(row["model"]), str(row["against"]), points)


def headline(
    intervals: pd.DataFrame,
    differences: pd.DataFrame,
    efficiency: pd.DataFrame | None,
    sweep_counts: pd.DataFrame | None,
    *,
    view: str,
    confidence: float,
    selected: str | None,
    default_pool: str,
    test_sets: int,
) -> Headline | None:
    """The headline of one view from stage 04's `intervals` and `differences` (fractions, as stored), its
    `efficiency` (parameters_M, speedup, device) and stage 02's `sweep_counts`; None without a teacher row."""
    averages = intervals[(intervals["view"] == view) & (intervals["average"] == AVERAGE)]
    teacher = averages[averages["model"] == TEACHER]
    if not len(teacher):
        return None
    found = Headline(view, confidence, test_sets, _interval(teacher.iloc[0]))
    kept = None
    if sweep_counts is not None and selected is not None:
        rows = sweep_counts[
            (sweep_counts["threshold"].astype(str) == selected)
            & (sweep_counts["variety"] == "all")
            & (sweep_counts["pool"].astype(str) == default_pool)
        ]
        kept = (int(rows["kept"].iloc[0]), int(rows["total"].iloc[0])) if len(rows) else None
    found = Headline(**{**found.__dict__, "selected": selected, "kept": kept})
    students = averages[averages["model"].str.contains(" λ=", regex=False)]
    if not len(students):
        return found
    best = students.sort_values(["estimate", "model"]).iloc[0]
    name = str(best["model"])
    paired = differences[(differences["view"] == view) & (differences["average"] == AVERAGE)]
    against_teacher = paired[(paired["model"] == name) & (paired["against"] == TEACHER)]
    twin_name = f"{name.split(' λ=')[0]} λ={threshold_label(None)}"
    twin = paired[(paired["model"] == name) & (paired["against"] == twin_name)]
    filtered = paired[paired["against"] != TEACHER]
    supported = filtered[filtered["excludes_zero"].astype(str) == "True"]
    strongest = supported.loc[supported["difference"].abs().idxmax()] if len(supported) else None
    size = speedup = device = None
    if efficiency is not None and len(efficiency):
        rows = efficiency.set_index("model")
        if name in rows.index and TEACHER in rows.index:
            size = (float(rows.at[name, "parameters_M"]), float(rows.at[TEACHER, "parameters_M"]))
            speedup = float(rows.at[name, "speedup"])
            device = str(rows.at[name, "device"]) if "device" in rows else None
    return Headline(
        **{
            **found.__dict__,
            "student": name,
            "student_wer": _interval(best),
            "gap": _difference(against_teacher.iloc[0]).points if len(against_teacher) else None,
            "parameters_m": size,
            "speedup": speedup,
            "device": device,
            "twin": _difference(twin.iloc[0]) if len(twin) else None,
            "compared": len(filtered),
            "strongest": _difference(strongest) if strongest is not None else None,
        }
    )


def _supported(points: Interval) -> str:
    return "supported: its interval excludes 0" if points.excludes_zero else "not a finding: its interval includes 0"


def headline_rows(found: Headline) -> list[tuple[str, str]]:
    """The headline as (label, sentence) rows: the best student against the teacher, size and speed, the filter."""
    share = f"{100 * found.confidence:.0f} % intervals over {found.test_sets} test sets, {found.view} view"
    rows = []
    if found.student is None or found.student_wer is None:
        rows.append(("Best model", f"The teacher, average WER {found.teacher.text(unit=' %')} ({share}); no student."))
    else:
        gap = (
            f"; student minus teacher: {found.gap.text(signed=True, unit=' points')}, {_supported(found.gap)}"
            if found.gap is not None
            else ""
        )
        rows.append(
            (
                "Best student",
                f"{found.student}, average WER {found.student_wer.text(unit=' %')}; the teacher "
                f"{found.teacher.text(unit=' %')} ({share}){gap}.",
            )
        )
    if found.parameters_m is not None and found.speedup is not None:
        student, teacher = found.parameters_m
        where = f" on {found.device}" if found.device else ""
        rows.append(
            (
                "Size and speed",
                f"{student:,.2f} M parameters, {100 * student / teacher:.0f} % of the teacher's {teacher:,.2f} M; "
                f"{found.speedup:.2f}× the teacher's speed per clip{where}.",
            )
        )
    filter_parts = []
    if found.kept is not None and found.selected is not None:
        kept, total = found.kept
        filter_parts.append(
            f"at λ = {found.selected} it keeps {kept:,} of {total:,} pool pairs ({100 * kept / max(total, 1):.1f} %)"
        )
    if found.twin is not None:
        filter_parts.append(
            f"{found.twin.model} against its unfiltered twin: {found.twin.points.text(signed=True, unit=' points')}, "
            f"{_supported(found.twin.points)}"
        )
    elif found.student is not None and found.student.endswith(f"λ={threshold_label(None)}"):
        filter_parts.append("the best student learnt from unfiltered pairs")
    if found.strongest is not None:
        if found.twin is None or found.strongest != found.twin:
            filter_parts.append(
                f"the largest effect the intervals support: {found.strongest.model} against "
                f"{found.strongest.against}, {found.strongest.points.text(signed=True, unit=' points')}"
            )
    elif found.compared:
        filter_parts.append(
            f"none of the {found.compared} filtered students differs from its unfiltered twin beyond its interval"
        )
    elif found.student is not None:
        filter_parts.append("no filtered student has an unfiltered twin to compare with")
    if filter_parts:
        text = "; ".join(filter_parts)
        rows.append(("The filter", text[0].upper() + text[1:] + "."))
    return rows


def read_headline(params: Params) -> Headline | None:
    """The headline of a run in its headline view, from its products; None until stage 04 is built and current."""
    from kdlib.pipeline.graph import MissingProduct, StaleProduct
    from kdlib.stages import products

    try:
        intervals = products.read_intervals(params)
        differences = products.read_differences(params)
        efficiency = products.read_efficiency(params)
        scores = products.read_scores(params)
    except (MissingProduct, StaleProduct, FileNotFoundError):
        return None
    try:
        counts = products.read_sweep_counts(params)
    except (MissingProduct, StaleProduct, FileNotFoundError):
        counts = None
    view = params.evaluate.headline_view
    return headline(
        intervals,
        differences,
        efficiency,
        counts,
        view=view,
        confidence=params.evaluate.bootstrap.confidence,
        selected=threshold_label(params.filter.selected),
        default_pool=params.data.default_pool,
        test_sets=int(scores.loc[scores["view"] == view, "dataset"].nunique()),
    )
