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
# # 02 · The WER-threshold filter and its sweep
#
# A pair (audio, pseudo-label) is dropped when the pseudo-label's WER against the reference
# exceeds λ; a WER of exactly λ is kept. The paper keeps λ = 80 % and sweeps
# 10 / 20 / 40 / 80 / none. This notebook writes one training set per λ for stage 03.

# %% tags=["parameters"]
params_file = "params/tiny.yaml"
params = None  # injected by `python -m kdlib.run`: the validated params as a plain mapping

# %%
from kdlib.run import notebook_params

cfg = notebook_params(params_file, params)

# %%
import json

import datasets
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from kdlib import report
from kdlib.config import threshold_label
from kdlib.filtering import sweep_counts, write_filtered_sets
from kdlib.pseudo_label import latest_labels

sns.set_theme(style="whitegrid")
labels_dir = latest_labels(cfg)
labels = datasets.load_from_disk(str(labels_dir)).remove_columns("audio").to_pandas()

# %% [markdown]
# ## How good are the pseudo-labels?

# %%
fig, ax = plt.subplots(figsize=(7, 3.5))
sns.histplot(data=labels.assign(wer=labels["teacher_wer"].clip(upper=1.5) * 100), x="wer", hue="variety", multiple="stack", bins=30, ax=ax)
for threshold in cfg.filter.thresholds:
    if threshold is not None:
        selected = threshold == cfg.filter.selected
        ax.axvline(threshold, color="crimson" if selected else "black", linestyle="-" if selected else ":", linewidth=1)
ax.set(xlabel=f"teacher WER against the reference (%, {cfg.filter.view}; capped at 150)", title=f"Pseudo-label WER: the sweep's λ dotted, the paper's λ={threshold_label(cfg.filter.selected)} in red")
report.save_figure(fig, cfg.reports_path, "teacher_wer_histogram")
plt.show()

# %% [markdown]
# ## What each threshold keeps

# %%
counts = sweep_counts(labels, cfg.filter.thresholds)
report.write_table(counts, cfg.reports_path, "filter_sweep_counts", floatfmt=".3f")
counts.pivot(index="threshold", columns="variety", values="kept").reindex([threshold_label(t) for t in cfg.filter.thresholds])

# %%
order = [threshold_label(t) for t in cfg.filter.thresholds]
fig, ax = plt.subplots(figsize=(6, 3.5))
sns.pointplot(data=counts, x="threshold", y="kept_fraction", hue="variety", order=order, ax=ax)
ax.set(xlabel="λ (WER %, 'none' keeps all)", ylabel="share of pairs kept", title="Kept fraction vs λ")
report.save_figure(fig, cfg.reports_path, "kept_fraction_vs_threshold")
plt.show()

# %%
paths = write_filtered_sets(labels_dir, cfg.filter.thresholds)
pd.DataFrame([{"λ": label, "training set (kept ids)": str(path), "pairs": json.loads(path.read_text())["kept"]} for label, path in paths.items()])

# %% [markdown]
# ## Student WER vs λ (the paper's threshold plot)
# Drawn from the evaluation of stage 04 when it exists; a first run shows it in 04.

# %%
threshold_csv = cfg.reports_path / "tables" / "threshold_wer.csv"
if threshold_csv.exists():
    curve = pd.read_csv(threshold_csv, dtype={"threshold": str})
    fig, ax = plt.subplots(figsize=(6, 3.5))
    sns.pointplot(data=curve.melt(id_vars=["student", "threshold"], var_name="average", value_name="WER"), x="threshold", y="WER", hue="average", order=[o for o in order if o in set(curve["threshold"])], ax=ax)
    ax.set(xlabel="λ", ylabel="student WER (%)")
    plt.show()
else:
    print("no evaluation yet: run 03_distill and 04_evaluate")
