# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 · Evaluation: every model on every test set
#
# WER and CER, corpus-level per test set, in each view of `evaluate.views`: **orthographic**
# (as written), **normalized** (kdlib's rich "normalized + no diacritics" rules) and **authors**
# (the paper's authors' own normaliser, character for character). Averages are unweighted means
# over test sets (all, MSA, dialects), as in the paper's tables. Efficiency is measured side by
# side on this machine.
#
# Models: the teacher, every student × λ, and the baselines named in `evaluate.baselines`
# (Whisper checkpoints, SeamlessM4T and CTC models such as MMS; each run the way its family
# is meant to be, see `kdlib.models.families`). The tiny profile has no baselines: none ships offline.
# The stage's builder (`kdlib evaluate PARAMS`) transcribes and times; this notebook reads its
# products under `<run_dir>/04_evaluate/`.

# %% tags=["parameters"]
params_file = "params/tiny.yaml"
# `kdlib run` injects its --set KEY=VALUE settings as `overrides`
overrides = []

# %%
from kdlib.run import notebook_params

cfg = notebook_params(params_file, overrides)

# %%
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from IPython.display import display

from kdlib.config import threshold_label
from kdlib.corpus import preparation as data
from kdlib.report import findings, palette
from kdlib.report import render as report
from kdlib.report import tables as derived
from kdlib.report.published import TEST_SETS, parity_plot
from kdlib.stages.evaluate import long_clip_counts, threshold_table
from kdlib.stages.products import (
    read_differences,
    read_efficiency,
    read_intervals,
    read_predictions,
    read_scores,
    read_test_sets,
)

palette.set_theme()
predictions = read_predictions(cfg)
scores = read_scores(cfg)
report.write_table(report.percent(scores, ["wer", "cer"]), cfg.reports_path, "scores_long")
headline_view = cfg.evaluate.headline_view
print(
    f"{predictions['model'].nunique()} models × {predictions['dataset'].nunique()} test sets, {len(predictions)} predictions"
)

# %% [markdown]
# ## The test sets: what was scored, and what was skipped
# A test set whose every clip was skipped is named here and left out of the tables.

# %%
test_sets = read_test_sets(cfg)
skipped = pd.concat([corpus.skipped for corpus in test_sets.values()], ignore_index=True)
empty = [name for name, corpus in test_sets.items() if len(corpus.dataset) == 0]
print(f"empty test sets: {', '.join(empty) if empty else 'none'}")
test_skips = data.skip_summary(skipped)
report.show_table(test_skips) if len(test_skips) else print("no test clip was skipped or flagged")

# %% [markdown]
# Clips longer than `data.max_duration_s` are skipped (`data.long_clips: skip`), transcribed window by
# window (`chunk`), or heard up to the window only and scored against their whole reference (`truncate`,
# the authors').

# %%
long_clips = long_clip_counts(cfg, {name: corpus for name, corpus in test_sets.items() if len(corpus.dataset)})
if cfg.data.long_clips != "skip":
    report.write_table(long_clips, cfg.reports_path, "long_test_clips", floatfmt=".1f")
    display(long_clips)

# %% [markdown]
# ## The main table: WER (%) in the headline view

# %%
tables = derived.main_tables(cfg, scores)
for (metric, view), table in tables.items():
    report.write_table(table, cfg.reports_path, f"{metric}_{view}")
print(f"view: {headline_view}")


def main_table_html(metric: str, view: str):
    """The main table of `metric` in `view`: every cell shaded on one scale (light: lower, better), its legend below."""
    table = tables[metric, view]
    return report.show_table(table, decimals=1, shade=list(table.columns), shade_label=f"{metric.upper()} (%)")


main_table_html("wer", headline_view)

# %% [markdown]
# ### CER (%) in the headline view

# %%
main_table_html("cer", headline_view)

# %% [markdown]
# ### WER (%) in the other views (orthographic: diacritics, hamza forms and punctuation count)

# %%
for view in cfg.evaluate.views:
    if view != headline_view:
        print(f"view: {view}")
        display(main_table_html("wer", view))

# %% [markdown]
# ## Efficiency, measured here

# %%
speed = read_efficiency(cfg)
report.write_table(speed, cfg.reports_path, "efficiency")
report.show_table(speed)

# %% [markdown]
# ## Headline

# %%
headline = derived.headline(cfg, tables["wer", headline_view], speed)
averages = [column for column in headline.columns if column.startswith("WER ")]
report.write_table(headline, cfg.reports_path, "headline")
report.show_table(headline, shade=averages, shade_label="WER (%)")

# %% [markdown]
# ## How sure: bootstrap intervals
# Test clips are resampled with replacement within each test set, every model on the same resamples
# (a paired bootstrap), and each average's corpus-level WER recomputed (`kdlib.scoring.intervals`;
# `evaluate.bootstrap` sets the resamples, seed and confidence). First every average with its
# interval, in %, in the headline view:

# %%
settings = cfg.evaluate.bootstrap
intervals = read_intervals(cfg)
differences = read_differences(cfg)
in_percent = {"estimate": "WER (%)", "low": "low (%)", "high": "high (%)"}
report.write_table(
    report.percent(intervals, list(in_percent)).rename(columns=in_percent), cfg.reports_path, "wer_intervals"
)
in_points = {"difference": "difference (points)", "low": "low (points)", "high": "high (points)"}
report.write_table(
    report.percent(differences, list(in_points)).rename(columns=in_points),
    cfg.reports_path,
    "wer_difference_intervals",
)
shown = intervals[intervals["view"] == headline_view].assign(
    WER=lambda frame: [
        f"{100 * e:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"
        for e, lo, hi in zip(frame["estimate"], frame["low"], frame["high"])
    ]
)
print(f"{settings.confidence:.0%} intervals, {settings.resamples} resamples, seed {settings.seed}")
report.show_table(
    shown.pivot(index="model", columns="average", values="WER")
    .reindex(index=headline.index, columns=list(dict.fromkeys(shown["average"])))
    .rename(columns=lambda average: f"{average} (%)")
)

# %% [markdown]
# Then every student against the teacher and against its no-filter twin (the same student and pool, λ = none),
# in one table: the difference is the student's WER minus the other's, in percentage points (negative: the
# student is better), with its interval; only an interval that excludes 0 supports a claim (marked *).

# %%
paired = differences[differences["view"] == headline_view].drop(columns="view")
comparisons = derived.paired_differences(cfg)
report.write_table(comparisons, cfg.reports_path, "paired_differences")
report.show_table(comparisons) if len(paired) else print("no student to compare")

# %% [markdown]
# ## Student WER vs λ (the paper's threshold plot)
# One panel per average; each student's WER against the λ its training pairs were filtered with, with its
# bootstrap interval; the teacher as a dashed line in its interval's band.

# %%
curve = threshold_table(scores, headline_view)
in_percent = {average: f"{average} (%)" for average in ("avg all", "avg MSA", "avg dialects")}
report.write_table(
    report.percent(curve, list(in_percent)).rename(columns=in_percent), cfg.reports_path, "threshold_wer"
)
in_view = report.percent(intervals[intervals["view"] == headline_view], ["estimate", "low", "high"])
points = in_view[in_view["model"].str.contains(" λ=", regex=False)]
points = points.assign(
    student=points["model"].str.split(" λ=").str[0], threshold=points["model"].str.split(" λ=").str[1]
)
order = [threshold_label(t) for t in cfg.filter.thresholds if threshold_label(t) in set(points["threshold"])]
panels = [average for average in ("avg all", "avg MSA", "avg dialects") if average in set(points["average"])]
if len(points):
    students = list(dict.fromkeys(points["student"]))
    colours = palette.model_colours([palette.TEACHER, *students])
    teacher = in_view[in_view["model"] == palette.TEACHER].set_index("average")
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.4), sharey=True, squeeze=False)
    for ax, average in zip(axes[0], panels):
        for number, student in enumerate(students):
            part = points[(points["student"] == student) & (points["average"] == average)].set_index("threshold")
            part = part.reindex([t for t in order if t in part.index])
            shift = (number - (len(students) - 1) / 2) * 0.08  # students side by side at each λ
            ax.errorbar(
                [order.index(t) + shift for t in part.index],
                part["estimate"],
                yerr=[part["estimate"] - part["low"], part["high"] - part["estimate"]],
                color=colours[student],
                marker="o",
                capsize=3,
                label=student,
            )
        if average in teacher.index:
            row = teacher.loc[average]
            ax.axhspan(row["low"], row["high"], color=colours[palette.TEACHER], alpha=0.12, linewidth=0)
            ax.axhline(row["estimate"], color=colours[palette.TEACHER], linestyle="--", linewidth=1, label="teacher")
        ax.set(title=average, xticks=range(len(order)), xticklabels=order, xlabel="λ (pseudo-label WER, %)")
        ax.set_xlim(-0.5, len(order) - 0.5)
    axes[0][0].set_ylabel(f"WER (%, {headline_view})")
    axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    report.show_figure(
        fig,
        cfg.reports_path,
        "threshold_wer",
        title="Student WER vs λ",
        caption=f"Each student's average WER ({headline_view} view) against the λ its training pairs were filtered "
        f"with, bars its {settings.confidence:.0%} bootstrap interval; the dashed line is the teacher's, the band "
        "its interval.",
    )
else:
    print("no distilled student to plot against λ")

# %% [markdown]
# ## Per test set

# %%
in_view = report.percent(scores[scores["view"] == headline_view], ["wer"])
models = list(tables["wer", headline_view].index)
fig, ax = plt.subplots(figsize=(8, 3.8))
sns.barplot(
    data=in_view, x="dataset", y="wer", hue="model", hue_order=models, palette=palette.model_colours(models), ax=ax
)
ax.set(xlabel="test set", ylabel="WER (%)")
sns.move_legend(ax, "upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
report.show_figure(
    fig,
    cfg.reports_path,
    "wer_per_test_set",
    title="WER per test set",
    caption=f"Every model's WER on every test set ({headline_view} view), the teacher in grey and each student "
    "in the colour it has in every figure.",
)

# %% [markdown]
# ## Published vs this run
# The paper's table (WER %, the authors' normalised view; `kdlib/corpus/resources/published_results.csv`, from
# uDistilWhisper's `assets/main_results.png`) beside this run, for every model and test set that
# `evaluate.published_names` maps to a published row and column.
#
# **Averages** are taken over the same test sets on both sides: this run's average of its test sets, and the
# mean of the published WERs on those same sets, recomputed from the published cells (the published `avg_10`
# itself only when this run has all ten). A profile with fewer test sets, such as `paper-public` (five: the
# in-house dialect sets are not released), is therefore compared on its own columns, never against the
# published ten-set average. Each average's row names the sets it covers.

# %%
comparison = derived.published_vs_this_run(cfg, tables["wer", headline_view], scores)
if len(comparison):
    covered = sorted(set(comparison["test_set"]) & set(TEST_SETS), key=TEST_SETS.index)
    print(
        f"published test sets this run has: {len(covered)} of {len(TEST_SETS)} ({', '.join(covered)}); "
        "the published averages below are recomputed over them"
        if len(covered) < len(TEST_SETS)
        else "every published test set is in this run: the published avg_10 is compared as it is"
    )
    report.write_table(comparison.rename(columns=derived.PUBLISHED_LABELS), cfg.reports_path, "published_vs_this_run")
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    parity_plot(comparison, ax, palette.model_colours(models))
    report.show_figure(
        fig,
        cfg.reports_path,
        "published_parity",
        title="Published vs this run",
        caption="Each point is a model on a test set, the paper's published WER against this run's: on the "
        "dashed diagonal they agree.",
    )
    display(report.show_table(comparison.rename(columns=derived.PUBLISHED_LABELS)))
else:
    print(f"the {cfg.profile} profile has no published counterpart: its models and test sets are not the paper's")

# %% [markdown]
# ## Findings
# Written from this run's numbers (headline view): what the intervals support, and what they do not.

# %%
report.show_findings(
    cfg.reports_path,
    "04_evaluate",
    findings.evaluation(
        intervals[intervals["view"] == headline_view],
        paired,
        settings.confidence,
        predictions["dataset"].nunique(),
        long_clips if cfg.data.long_clips != "skip" else None,
    ),
)
