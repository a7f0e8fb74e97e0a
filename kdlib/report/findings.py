"""What each stage found, as sentences written from the run's own numbers: the last cell of each notebook
(`kdlib.report.render.show_findings`) and the index page. No sentence here is true by itself: each one is made
from the tables the notebook shows, so another run says what that run found. Rates are percentages here.
"""

from __future__ import annotations

import pandas as pd

from kdlib.config import Params

ALL = "all"


def _pct(value: float) -> str:
    return f"{value:.1f} %"


def _count(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'s' * (count != 1)}"


def _listed(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" and {names[-1]}"


def _run(run: pd.Series) -> str:
    return f"{run['student']} λ={run['threshold']} ({_pct(run['eval_wer'])})"


def data_note(params: Params) -> str:
    """Where the speech of a profile comes from, and what that means for its numbers."""
    pools = [spec for specs in params.data.pools.values() for spec in specs]
    sets = [*params.data.teacher_train, *params.data.train, *pools, *params.data.test]
    synthetic = [spec.name for spec in sets if spec.source == "synthetic"]
    if not sets:
        return f"The {params.profile} profile names no speech corpus."
    if len(synthetic) == len(sets) and params.data.synthetic.language == "en":
        return (
            f"Every set of the {params.profile} profile is synthetic English speech (espeak-ng reading the shipped "
            f"English sentences) and the teacher is {params.teacher.model} ({params.teacher.source}): its numbers show "
            "a real Whisper going through the pipeline, not the paper's findings."
        )
    if len(synthetic) == len(sets):
        return (
            f"Every set of the {params.profile} profile is synthetic speech (espeak-ng reading the shipped "
            "and templated sentences) with small models trained by kdlib: its numbers show the pipeline and the simulated "
            "phenomena at work, not the paper's findings."
        )
    real = [f"{spec.name} ({spec.source})" for spec in sets if spec.source != "synthetic"]
    shown = _listed(list(dict.fromkeys(real)))
    return f"The {params.profile} profile reads {shown}" + (
        f", and {len(synthetic)} synthetic sets." if synthetic else "."
    )


def pseudo_labels(params: Params, overview: pd.DataFrame, skips: pd.DataFrame, per_variety: pd.DataFrame) -> list[str]:
    """Stage 01: the pool and test sets (`overview`), what was skipped (`skips`: dataset, reason, clips) and the
    teacher's WER on the pool per variety (`per_variety`: variety, wer in %, with an `all` row)."""
    pool = overview[overview["role"] == "train"].iloc[0]
    tests = overview[overview["role"] == "test"]
    sentences = [
        data_note(params),
        f"The distillation pool holds {pool['clips']:,} clips ({pool['hours']:.2f} h) of {pool['varieties']}; "
        f"{len(tests)} test sets hold {int(tests['clips'].sum()):,} clips.",
    ]
    if len(skips):
        reasons = skips.groupby("reason")["clips"].sum().sort_values(ascending=False)
        shown = _listed([f"{reason} ({count})" for reason, count in reasons.items()])
        sentences.append(f"Skipped or flagged: {_count(int(reasons.sum()), 'clip')}, {shown}.")
    else:
        sentences.append("No clip was skipped or flagged.")
    varieties = per_variety[per_variety["variety"] != ALL].sort_values("wer")
    overall = per_variety.loc[per_variety["variety"] == ALL, "wer"].iloc[0]
    best, worst = varieties.iloc[0], varieties.iloc[-1]
    spread = (
        f"best on {best['variety']} ({_pct(best['wer'])}), worst on {worst['variety']} ({_pct(worst['wer'])})"
        if _pct(best["wer"]) != _pct(worst["wer"])
        else "the same on every variety"
    )
    sentences.append(
        f"The teacher's pseudo-labels are {_pct(overall)} WER from the references over the pool "
        f"({params.filter.view} view): {spread}."
    )
    return sentences


def filter_sweep(
    counts: pd.DataFrame, training_sets: pd.DataFrame, selected: str, max_label_tokens: int | None = None
) -> list[str]:
    """Stage 02: what each λ keeps of the pool (`counts`, from `kdlib.stages.filtering.sweep_counts`) and the training
    sets of stage 03 (`training_sets`: λ, training pairs, held-out pairs); `selected` is the paper's λ label;
    `max_label_tokens` the label-length filter's limit, when there is one (`counts` then has `dropped_too_long`)."""
    overall = counts[counts["variety"] == ALL].set_index("threshold")
    sentences = []
    if max_label_tokens is not None and "dropped_too_long" in overall:
        too_long = overall["dropped_too_long"]
        shown = _listed([f"{int(count):,} at λ = {label}" for label, count in too_long.items()])
        sentences.append(
            f"The label-length filter (labels of at most {max_label_tokens} tokens, at every λ) drops, of the pairs "
            f"the WER filter keeps, {shown}."
        )
    if selected in overall.index:
        chosen = counts[(counts["threshold"] == selected) & (counts["variety"] != ALL)].sort_values("kept_fraction")
        low, high = chosen.iloc[0], chosen.iloc[-1]
        row = overall.loc[selected]
        sentences.append(
            f"At λ = {selected} the filter keeps {int(row['kept']):,} of {int(row['total']):,} pool pairs "
            f"({_pct(100 * row['kept_fraction'])}): from {_pct(100 * low['kept_fraction'])} of {low['variety']} "
            f"to {_pct(100 * high['kept_fraction'])} of {high['variety']}."
        )
    tightest = overall["kept_fraction"].idxmin()
    sentences.append(
        f"The tightest λ ({tightest}) keeps {_pct(100 * overall.loc[tightest, 'kept_fraction'])} of the pool."
    )
    pairs = training_sets.set_index("λ")["training pairs"]
    for size, labels in pairs.groupby(pairs, sort=False):
        shown = _listed([f"λ = {label}" for label in labels.index])
        if size == 0:
            sentences.append(f"{shown} {'keep' if len(labels) > 1 else 'keeps'} no training pair: no student learns.")
        elif len(labels) > 1:  # thresholds nest: equal counts are equal sets
            sentences.append(f"{shown} keep the same {size:,} training pairs: their students learn from the same data.")
    held_out = int(training_sets["held-out pairs"].iloc[0]) if len(training_sets) else 0
    sentences.append(f"{_count(held_out, 'pair')} held out before filtering, the same for every student and λ.")
    return sentences


def distillation(results: pd.DataFrame, history: pd.DataFrame) -> list[str]:
    """Stage 03: the runs (`results`: student, threshold, status, eval_pairs, eval_wer in %) and their logged
    steps (`history`: run, step, loss)."""
    trained = results[results["status"] == "trained"]
    skipped = results[results["status"] != "trained"]
    sentences = [
        f"Students trained: {len(trained)} of {len(results)} runs"
        + (
            f"; {_listed([f'{r.student} λ={r.threshold}' for r in skipped.itertuples()])} had no pair to learn from."
            if len(skipped)
            else "."
        )
    ]
    scored = trained.dropna(subset=["eval_wer"]).sort_values("eval_wer")
    if len(scored) > 1:
        best, worst = scored.iloc[0], scored.iloc[-1]
        sentences.append(
            f"On the {int(best['eval_pairs']):,} held-out pairs the lowest WER is {_run(best)}, "
            f"the highest {_run(worst)}."
        )
    elif len(scored):
        only = scored.iloc[0]
        sentences.append(f"On the {int(only['eval_pairs']):,} held-out pairs: {_run(only)} WER.")
    if "loss" in history and len(history):
        losses = history.dropna(subset=["loss"]).sort_values("step").groupby("run")["loss"]
        fell = losses.last() < losses.first()
        sentences.append(
            f"The training loss fell from its first to its last logged step in {int(fell.sum())} of {len(fell)} runs"
            + (f" (not in {_listed(list(fell.index[~fell]))})." if not fell.all() else ".")
        )
    return sentences


def comparison_table(paired: pd.DataFrame) -> pd.DataFrame:
    """Paired differences of one view (`paired`, from `kdlib.scoring.intervals.difference_intervals`, fractions) as
    one table: a row per student and what it is compared with, a column per average, each cell the difference in
    percentage points with its interval, `*` where the interval excludes 0 (the claims the intervals support)."""
    if not len(paired):
        return pd.DataFrame(columns=["student", "against"])
    cells = paired.assign(
        cell=[
            f"{100 * row.difference:+.1f} [{100 * row.low:+.1f}, {100 * row.high:+.1f}]"
            + (" *" if bool(row.excludes_zero) else "")
            for row in paired.itertuples()
        ]
    )
    table = cells.pivot(index=["model", "against"], columns="average", values="cell")
    order = list(dict.fromkeys(paired[["model", "against"]].itertuples(index=False, name=None)))
    table = table.reindex(index=pd.MultiIndex.from_tuples(order), columns=list(dict.fromkeys(paired["average"])))
    table.columns = [f"{average} (points)" for average in table.columns]
    return table.rename_axis(["student", "against"]).reset_index().fillna("—")


def evaluation(
    intervals: pd.DataFrame,
    paired: pd.DataFrame,
    confidence: float,
    test_sets: int,
    long_clips: pd.DataFrame | None = None,
) -> list[str]:
    """Stage 04, in one view: the lowest average WER with its interval (`intervals`: model, average,
    estimate, low, high as fractions), then what the paired differences (`paired`, from
    `kdlib.scoring.intervals.difference_intervals`; every one is in `comparison_table`) support, per kind of
    comparison (against the teacher; against the no-filter twin), and the largest one they do not; with
    `long_clips` (`kdlib.stages.evaluate.long_clip_counts`), how the test clips longer than the window were heard."""
    best = intervals[intervals["average"] == "avg all"].nsmallest(1, "estimate").iloc[0]
    sentences = [
        f"Lowest average WER: {best['model']}, {100 * best['estimate']:.2f} % "
        f"[{100 * best['low']:.2f}, {100 * best['high']:.2f}] ({confidence:.0%} interval, {test_sets} test sets)."
    ]
    if long_clips is not None and long_clips["long_clips"].sum() > 0:
        sets = long_clips[long_clips["long_clips"] > 0]
        shown = _listed([f"{name} {count:,}" for name, count in zip(sets["dataset"], sets["long_clips"])])
        total = int(sets["long_clips"].sum())
        many, verb = _count(total, "test clip"), "is" if total == 1 else "are"
        if (sets["handling"] == "truncate").all():
            sentences.append(
                f"{many} ({shown}) {verb} longer than the models' window: the models heard the first window only "
                f"({sets['seconds_beyond'].sum():,.1f} s of audio unheard), scored against the whole reference "
                "(data.long_clips: truncate, as the authors)."
            )
        else:
            sentences.append(
                f"{many} ({shown}) {verb} longer than the models' window: transcribed window by window, the "
                "transcripts joined (data.long_clips: chunk)."
            )
    if not len(paired):
        return [*sentences, "No student to compare with the teacher."]
    supported = paired["excludes_zero"].astype(str) == "True"
    if not supported.any():
        return [*sentences, f"No difference is supported: each of the {len(paired)} intervals includes 0."]
    sentences.append(
        f"{int(supported.sum())} of {len(paired)} paired differences are supported by their intervals "
        "(marked * in the table of paired differences)."
    )
    kinds = {"the teacher": paired["against"] == "teacher", "their unfiltered twins": paired["against"] != "teacher"}
    for kind, rows in kinds.items():
        part = paired[rows & supported]
        if not rows.any():
            continue
        if not len(part):
            sentences.append(f"Against {kind}: none of the {int(rows.sum())} differences is supported.")
            continue
        higher, lower = part[part["difference"] > 0], part[part["difference"] < 0]
        said = []
        for direction, group in (("higher", higher), ("lower", lower)):
            if len(group):
                models = list(dict.fromkeys(group["model"]))
                who = _listed(models) if len(models) <= 3 else f"{len(models)} students"
                one = len(models) == 1
                said.append(
                    f"{who} {'has' if one else 'have'} {direction} WER on {len(group)} of {'its' if one else 'their'} "
                    f"averages"
                )
        sentences.append(
            f"Against {kind}, {len(part)} of {int(rows.sum())} differences are supported: {'; '.join(said)}."
        )
    if (~supported).any():  # the one a reader would most likely take for a finding
        row = paired.loc[paired.loc[~supported, "difference"].abs().idxmax()]
        sentences.append(
            f"Not supported: the other {_count(int((~supported).sum()), 'difference')}, whose intervals include 0; the "
            f"largest is {row['model']} vs {row['against']} ({row['average']}): {100 * row['difference']:+.2f} points "
            f"[{100 * row['low']:+.2f}, {100 * row['high']:+.2f}]."
        )
    return sentences


def errors(predictions: pd.DataFrame, by_model: pd.DataFrame, msa: str = "MSA") -> list[str]:
    """Stage 05: every prediction with its `category` and `variety`, and the category shares per model
    (`by_model`, from `kdlib.stages.error_analysis.category_shares`, shares as fractions)."""
    wrong = predictions[predictions["category"] != "correct"]
    sentences = [
        f"{len(wrong):,} of {len(predictions):,} predictions ({_pct(100 * len(wrong) / max(len(predictions), 1))}) "
        "have at least one word error."
    ]
    if not len(wrong):
        return sentences
    shares = wrong["category"].value_counts(normalize=True)
    sentences.append(
        f"The most common category is {shares.index[0]} ({_pct(100 * shares.iloc[0])} of erroneous predictions)"
        + (f", then {shares.index[1]} ({_pct(100 * shares.iloc[1])})." if len(shares) > 1 else ".")
    )
    for category in ("hallucination", "empty"):
        part = by_model[(by_model["category"] == category) & (by_model["count"] > 0)].sort_values("share")
        if len(part):
            top = part.iloc[-1]
            sentences.append(
                f"{len(part)} of {by_model['model'].nunique()} models make {category} errors; most of all "
                f"{top['model']} ({_pct(100 * top['share'])} of its errors)."
            )
    dialect = wrong["variety"] != msa
    if dialect.any() and (~dialect).any():
        on_dialects = (wrong.loc[dialect, "category"] == "dialectal").mean()
        on_msa = (wrong.loc[~dialect, "category"] == "dialectal").mean()
        sentences.append(
            f"Dialectal substitutions make {_pct(100 * on_dialects)} of the errors on dialect test sets "
            f"and {_pct(100 * on_msa)} on {msa}."
        )
    return sentences
