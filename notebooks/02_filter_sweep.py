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
# 10 / 20 / 40 / 80 / none. Before filtering, one seeded share of the pool is held out
# (`distill.eval_fraction`): every student and λ is evaluated on the same held-out pairs in 03.
# Each pool stage 01 labelled is filtered on its own.
# The stage's builder (`kdlib filter PARAMS`) writes the split, one training set per λ (the
# kept ids) and the sweep's counts under `<run_dir>/02_filter_sweep/`; this notebook reads them.

# %% tags=["parameters"]
params_file = "params/tiny.yaml"
params = None  # injected by `kdlib run`: the validated params as a plain mapping

# %%
from kdlib.run import notebook_params

cfg = notebook_params(params_file, params)

# %%
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from kdlib import report
from kdlib.config import threshold_label
from kdlib.products import labelled_pools, read_pseudo_labels, read_split, read_sweep_counts, read_training_ids

sns.set_theme(style="whitegrid")
pools = labelled_pools(cfg)
labels = pd.concat(
    [read_pseudo_labels(cfg, pool).remove_columns("audio").to_pandas().assign(pool=pool) for pool in pools],
    ignore_index=True,
)

# %% [markdown]
# ## How good are the pseudo-labels?

# %%
fig, axes = plt.subplots(1, len(pools), figsize=(7 * len(pools), 3.5), squeeze=False)
for ax, pool in zip(axes[0], pools):
    part = labels[labels["pool"] == pool]
    sns.histplot(
        data=part.assign(wer=part["teacher_wer"].clip(upper=1.5) * 100),
        x="wer",
        hue="variety",
        multiple="stack",
        bins=30,
        ax=ax,
    )
    for threshold in cfg.filter.thresholds:
        if threshold is not None:
            selected = threshold == cfg.filter.selected
            ax.axvline(
                threshold, color="crimson" if selected else "black", linestyle="-" if selected else ":", linewidth=1
            )
    ax.set(
        xlabel=f"teacher WER against the reference (%, {cfg.filter.view}; capped at 150)",
        title=(f"pool {pool}: " if len(pools) > 1 else "")
        + f"the sweep's λ dotted, the paper's λ={threshold_label(cfg.filter.selected)} in red",
    )
fig.suptitle("Pseudo-label WER")
report.save_figure(fig, cfg.reports_path, "teacher_wer_histogram")
plt.show()

# %% [markdown]
# ## What each threshold keeps (over the whole pool)

# %%
counts = read_sweep_counts(cfg)
report.write_table(counts, cfg.reports_path, "filter_sweep_counts", floatfmt=".3f")
counts.pivot(index="threshold", columns=["pool", "variety"], values="kept").reindex(
    [threshold_label(t) for t in cfg.filter.thresholds]
)

# %%
order = [threshold_label(t) for t in cfg.filter.thresholds]
fig, axes = plt.subplots(1, len(pools), figsize=(6 * len(pools), 3.5), squeeze=False)
for ax, pool in zip(axes[0], pools):
    sns.pointplot(
        data=counts[counts["pool"] == pool], x="threshold", y="kept_fraction", hue="variety", order=order, ax=ax
    )
    title = f"Kept fraction vs λ (pool {pool})" if len(pools) > 1 else "Kept fraction vs λ"
    ax.set(xlabel="λ (WER %, 'none' keeps all)", ylabel="share of pairs kept", title=title)
report.save_figure(fig, cfg.reports_path, "kept_fraction_vs_threshold")
plt.show()

# %% [markdown]
# ## The training sets of stage 03
# The held-out pairs are left out of every training set, whatever their WER.

# %%
training_sets = pd.DataFrame(
    [
        {
            "pool": pool,
            "λ": threshold_label(t),
            "training pairs": len(read_training_ids(cfg, t, pool)),
            "held-out pairs": len(read_split(cfg, pool)["eval"]),
        }
        for pool in pools
        for t in cfg.filter.thresholds
    ]
)
report.write_table(training_sets, cfg.reports_path, "training_sets")
training_sets
