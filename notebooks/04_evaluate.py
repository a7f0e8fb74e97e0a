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
# WER and CER, corpus-level per test set, in two views: **orthographic** (as written) and
# **normalized + no diacritics**. Averages are unweighted means over test sets (all, MSA,
# dialects), as in the paper's tables. Efficiency is measured side by side on this machine.
#
# Models: the teacher, every student × λ, and the baselines named in `evaluate.baselines`
# (Whisper checkpoints, SeamlessM4T and CTC models such as MMS; each run the way its family
# is meant to be, see `kdlib.families`). The tiny profile has no baselines: none ships offline.
# The stage's builder (`kdlib evaluate PARAMS`) transcribes and times; this notebook reads its
# products under `<run_dir>/04_evaluate/`.

# %% tags=["parameters"]
params_file = "params/tiny.yaml"
params = None  # injected by `kdlib run`: the validated params as a plain mapping

# %%
from kdlib.run import notebook_params

cfg = notebook_params(params_file, params)

# %%
import matplotlib.pyplot as plt
import seaborn as sns

from kdlib import report
from kdlib.config import threshold_label
from kdlib.evaluate import main_table, threshold_table
from kdlib.products import read_efficiency, read_predictions, read_scores

sns.set_theme(style="whitegrid")
predictions = read_predictions(cfg)
scores = read_scores(cfg)
report.write_table(report.percent(scores, ["wer", "cer"]), cfg.reports_path, "scores_long")
print(f"{predictions['model'].nunique()} models × {predictions['dataset'].nunique()} test sets, {len(predictions)} predictions")

# %% [markdown]
# ## The main table: WER (%), normalized + no diacritics

# %%
tables = {}
for metric in ("wer", "cer"):
    for view in ("normalized", "orthographic"):
        tables[metric, view] = main_table(scores, metric, view) * 100
        report.write_table(tables[metric, view], cfg.reports_path, f"{metric}_{view}")
report.style_table(tables["wer", "normalized"], list(tables["wer", "normalized"].columns))

# %% [markdown]
# ### CER (%), normalized + no diacritics

# %%
report.style_table(tables["cer", "normalized"], list(tables["cer", "normalized"].columns))

# %% [markdown]
# ### WER (%), orthographic: diacritics, hamza forms and punctuation count

# %%
report.style_table(tables["wer", "orthographic"], list(tables["wer", "orthographic"].columns))

# %% [markdown]
# ## Efficiency, measured here

# %%
speed = read_efficiency(cfg)
report.write_table(speed, cfg.reports_path, "efficiency", floatfmt=".3f")
speed

# %% [markdown]
# ## Headline

# %%
averages = tables["wer", "normalized"][["avg all", "avg MSA", "avg dialects"]].add_prefix("WER ")
headline = averages.join(speed.set_index("model")[["parameters_M", "latency_ms", "speedup"]])
report.write_table(headline.reset_index(), cfg.reports_path, "headline")
headline

# %% [markdown]
# ## Student WER vs λ (the paper's threshold plot; dashed lines: the teacher)

# %%
curve = threshold_table(scores)
report.write_table(report.percent(curve, ["avg all", "avg MSA", "avg dialects"]), cfg.reports_path, "threshold_wer")
order = [threshold_label(t) for t in cfg.filter.thresholds if threshold_label(t) in set(curve["threshold"])]
long = report.percent(curve, ["avg all", "avg MSA", "avg dialects"]).melt(id_vars=["student", "threshold"], var_name="average", value_name="WER")
if len(long):
    grid = sns.catplot(data=long, x="threshold", y="WER", hue="average", col="student", kind="point", order=order, height=3.2, aspect=1.3)
    grid.set_axis_labels("λ (pseudo-label WER threshold, %)", "student WER (%)")
    teacher = tables["wer", "normalized"].loc["teacher", ["avg all", "avg MSA", "avg dialects"]]
    for ax in grid.axes.flat:  # dashed: the teacher's averages, in the same colours
        for colour, value in zip(sns.color_palette(), teacher):
            ax.axhline(value, linestyle="--", linewidth=1, color=colour)
    report.save_figure(grid.figure, cfg.reports_path, "threshold_wer")
    plt.show()
else:
    print("no distilled student to plot against λ")

# %% [markdown]
# ## Per variety

# %%
normalized = report.percent(scores[scores["view"] == "normalized"], ["wer"])
fig, ax = plt.subplots(figsize=(8, 3.8))
sns.barplot(data=normalized, x="dataset", y="wer", hue="model", ax=ax)
ax.set(ylabel="WER (%)", title="WER per test set (normalized)")
ax.legend(fontsize=7, ncols=2)
report.save_figure(fig, cfg.reports_path, "wer_per_test_set")
plt.show()
