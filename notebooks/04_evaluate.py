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
from kdlib.report.published import compare_with_published, parity_plot
from kdlib.stages.evaluate import long_clip_counts, main_table, threshold_table
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
test_skips if len(test_skips) else print("no test clip was skipped or flagged")

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
tables = {}
for metric in ("wer", "cer"):
    for view in cfg.evaluate.views:
        tables[metric, view] = main_table(scores, metric, view) * 100
        report.write_table(tables[metric, view], cfg.reports_path, f"{metric}_{view}")
print(f"view: {headline_view}")
report.style_table(tables["wer", headline_view], list(tables["wer", headline_view].columns))

# %% [markdown]
# ### CER (%) in the headline view

# %%
report.style_table(tables["cer", headline_view], list(tables["cer", headline_view].columns))

# %% [markdown]
# ### WER (%) in the other views (orthographic: diacritics, hamza forms and punctuation count)

# %%
for view in cfg.evaluate.views:
    if view != headline_view:
        print(f"view: {view}")
        display(report.style_table(tables["wer", view], list(tables["wer", view].columns)))

# %% [markdown]
# ## Efficiency, measured here

# %%
speed = read_efficiency(cfg)
report.write_table(speed, cfg.reports_path, "efficiency", floatfmt=".3f")
report.stable_style(speed).format(
    {"parameters_M": "{:.2f}", "latency_ms": "{:.1f}", "rtf": "{:.3f}", "speedup": "{:.2f}"}
)

# %% [markdown]
# ## Headline

# %%
averages = tables["wer", headline_view][["avg all", "avg MSA", "avg dialects"]].add_prefix("WER ")
headline = averages.join(speed.set_index("model")[["parameters_M", "latency_ms", "speedup"]])
report.write_table(headline.reset_index(), cfg.reports_path, "headline")
report.style_table(headline, list(averages.columns)).format(
    {**{column: "{:.2f}" for column in averages.columns}, "parameters_M": "{:.2f}", "latency_ms": "{:.1f}"}
).format("{:.2f}×", subset=["speedup"])

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
report.write_table(report.percent(intervals, ["estimate", "low", "high"]), cfg.reports_path, "wer_intervals")
report.write_table(
    report.percent(differences, ["difference", "low", "high"]), cfg.reports_path, "wer_difference_intervals"
)
shown = intervals[intervals["view"] == headline_view].assign(
    WER=lambda frame: [
        f"{100 * e:.2f} [{100 * lo:.2f}, {100 * hi:.2f}]"
        for e, lo, hi in zip(frame["estimate"], frame["low"], frame["high"])
    ]
)
print(f"{settings.confidence:.0%} intervals, {settings.resamples} resamples, seed {settings.seed}")
shown.pivot(index="model", columns="average", values="WER").reindex(
    index=headline.index, columns=list(dict.fromkeys(shown["average"]))
)

# %% [markdown]
# Then every student against the teacher and against its no-filter twin (the same student and pool, λ = none):
# the difference is the student's WER minus the other's, in percentage points (negative: the student
# is better), with its interval; only an interval that excludes 0 supports a claim.

# %%
paired = differences[differences["view"] == headline_view].drop(columns="view")
if len(paired):
    display(
        report.stable_style(report.percent(paired, ["difference", "low", "high"]))
        .map(lambda value: "font-weight: bold" if value is True else "", subset=["excludes_zero"])
        .hide(axis="index")
    )
else:
    print("no student to compare")

# %% [markdown]
# ## Student WER vs λ (the paper's threshold plot; dashed lines: the teacher)

# %%
curve = threshold_table(scores, headline_view)
report.write_table(report.percent(curve, ["avg all", "avg MSA", "avg dialects"]), cfg.reports_path, "threshold_wer")
order = [threshold_label(t) for t in cfg.filter.thresholds if threshold_label(t) in set(curve["threshold"])]
long = report.percent(curve, ["avg all", "avg MSA", "avg dialects"]).melt(
    id_vars=["student", "threshold"], var_name="average", value_name="WER"
)
if len(long):
    averages = ["avg all", "avg MSA", "avg dialects"]
    colours = palette.average_colours(averages)
    grid = sns.catplot(
        data=long,
        x="threshold",
        y="WER",
        hue="average",
        col="student",
        kind="point",
        order=order,
        hue_order=averages,
        palette=colours,
        height=3.2,
        aspect=1.3,
    )
    grid.set_axis_labels("λ (pseudo-label WER threshold, %)", "student WER (%)")
    teacher = tables["wer", headline_view].loc["teacher", averages]
    for ax in grid.axes.flat:  # dashed: the teacher's averages, in the same colours
        for average, value in teacher.items():
            ax.axhline(value, linestyle="--", linewidth=1, color=colours[average])
    report.show_figure(
        grid.figure,
        cfg.reports_path,
        "threshold_wer",
        title="Student WER vs λ",
        caption=f"Each student's WER averages ({headline_view} view) against the λ its training pairs were "
        "filtered with; dashed lines are the teacher's averages, in the same colours.",
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

# %%
comparison = compare_with_published(tables["wer", headline_view], cfg.evaluate.published_names)
if len(comparison):
    report.write_table(comparison, cfg.reports_path, "published_vs_this_run")
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
    display(comparison)
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
