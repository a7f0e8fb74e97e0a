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
# 10 / 20 / 40 / 80 / none. With `filter.max_label_tokens` (the authors': 225) a pair whose training
# label is longer is dropped too, at every λ (column `dropped_too_long`). Before filtering, one seeded share of the pool is held out
# (`distill.eval_fraction`): every student and λ is evaluated on the same held-out pairs in 03.
# Each pool stage 01 labelled is filtered on its own.
# The stage's builder (`kdlib filter PARAMS`) writes the split, one training set per λ (the
# kept ids) and the sweep's counts under `<run_dir>/02_filter_sweep/`; this notebook reads them.

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

from kdlib.config import threshold_label
from kdlib.report import findings, palette
from kdlib.report import render as report
from kdlib.report import tables as derived
from kdlib.stages.products import labelled_pools, read_pseudo_labels, read_sweep_counts

palette.set_theme()
pools = labelled_pools(cfg)
labels = pd.concat(
    [read_pseudo_labels(cfg, pool).remove_columns("audio").to_pandas().assign(pool=pool) for pool in pools],
    ignore_index=True,
)
varieties = palette.variety_order(labels["variety"])
selected = threshold_label(cfg.filter.selected)
default = cfg.data.default_pool
shown = labels[labels["pool"] == default]  # the figures show the default pool; the tables every pool
of_pool = f" of the default pool ({default})" if len(pools) > 1 else ""

# %% [markdown]
# ## How good are the pseudo-labels?

# %%
fig, ax = plt.subplots(figsize=(7, 3.5))
sns.histplot(
    data=shown.assign(wer=shown["teacher_wer"].clip(upper=1.5) * 100),
    x="wer",
    hue="variety",
    hue_order=varieties,
    palette=palette.variety_colours(varieties),
    multiple="stack",
    bins=30,
    ax=ax,
)
for threshold in cfg.filter.thresholds:
    if threshold is not None:
        chosen = threshold == cfg.filter.selected
        ax.axvline(
            threshold,
            color=palette.REFERENCE,
            linestyle="-" if chosen else ":",
            linewidth=1.5 if chosen else 1,
            label=f"λ = {selected} (the paper's)" if chosen else "the sweep's other λ",
        )
handles, names = ax.get_legend_handles_labels()  # the λ lines
bars = ax.get_legend()  # seaborn's legend of the varieties
ax.legend(
    [*bars.legend_handles, *dict(zip(names, handles)).values()],
    [*(text.get_text() for text in bars.get_texts()), *dict(zip(names, handles))],
    loc="upper left",
    bbox_to_anchor=(1.01, 1),
)
ax.set(xlabel=f"teacher WER against the reference (%, {cfg.filter.view}; capped at 150)", ylabel="pool pairs")
report.show_figure(
    fig,
    cfg.reports_path,
    "teacher_wer_histogram",
    title="Pseudo-label WER and the sweep's thresholds",
    caption=f"Pool pairs{of_pool} by the WER of their pseudo-label ({cfg.filter.view} view, capped at 150 %), "
    f"stacked by variety; dotted lines mark the sweep's λ, the solid line the paper's λ = {selected}.",
)

# %% [markdown]
# ## What each threshold keeps (over the whole pool)

# %%
counts = read_sweep_counts(cfg)
report.write_table(counts, cfg.reports_path, "filter_sweep_counts")
order = [threshold_label(t) for t in cfg.filter.thresholds]
kept = counts.pivot(index="threshold", columns=["pool", "variety"], values="kept").reindex(index=order)
kept.columns = [variety if len(pools) == 1 else f"{pool} · {variety}" for pool, variety in kept.columns]
report.show_table(kept.rename_axis("λ"))

# %%
in_default = counts[counts["pool"] == default]
groups = palette.variety_order(in_default["variety"])
fig, ax = plt.subplots(figsize=(6, 3.5))
sns.pointplot(
    data=in_default.assign(kept=in_default["kept_fraction"] * 100),
    x="threshold",
    y="kept",
    hue="variety",
    order=order,
    hue_order=groups,
    palette=palette.variety_colours(groups),
    ax=ax,
)
ax.set(xlabel="λ (WER %, 'none' keeps all)", ylabel="pairs kept (%)")
sns.move_legend(ax, "upper left", bbox_to_anchor=(1.01, 1))
report.show_figure(
    fig,
    cfg.reports_path,
    "kept_fraction_vs_threshold",
    title="Kept fraction vs λ",
    caption=f"The share of pool pairs{of_pool} each λ keeps, per variety and over the whole pool (all, in grey).",
)

# %% [markdown]
# ## The training sets of stage 03
# The held-out pairs are left out of every training set, whatever their WER.

# %%
training_sets = derived.training_sets(cfg)
report.write_table(training_sets, cfg.reports_path, "training_sets")
report.show_table(training_sets)

# %% [markdown]
# ## Findings
# Written from this run's numbers (the tables above).

# %%
report.show_findings(
    cfg.reports_path,
    "02_filter_sweep",
    findings.filter_sweep(
        in_default, training_sets[training_sets["pool"] == default], selected, cfg.filter.max_label_tokens
    ),
)
