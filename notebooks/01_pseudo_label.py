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
# # 01 · Pseudo-labelling the distillation pools
#
# The teacher transcribes every clip of each distillation pool in use (the default pool and any other
# pool a distillation run names) with Arabic forced
# (`language="ar", task="transcribe"`). Each pseudo-label is scored against the reference
# transcript: this WER is what stage 02 filters on. With `return_timestamps` the teacher also predicts
# timestamps; they are kept apart (`pseudo_label_timestamped`) and the WER is that of the plain text. The work is done by the stage's builder
# (`kdlib pseudo-label PARAMS`, or `accelerate launch -m kdlib pseudo-label PARAMS` on several
# GPUs; chunked and resumable), which `kdlib run` calls when the stage is stale; this notebook
# only reads its products: `corpora.json`, `teacher.json` and `pseudo_labels.json` under
# `<run_dir>/01_pseudo_label/`.

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

from kdlib.report import findings, palette
from kdlib.report import render as report
from kdlib.report import tables as derived
from kdlib.stages.products import TIMESTAMPED, labelled_pools, read_teacher

palette.set_theme()
teacher = read_teacher(cfg)
shape = cfg.teacher.architecture
described = {
    "hub": cfg.teacher.model,
    "local": f"the checkpoint {cfg.teacher.model} (its model card says how it was made)",
    "train": "trained here",
    "random": f"random weights (a dry run): d_model {shape.d_model}, {shape.encoder_layers} + {shape.decoder_layers} "
    f"layers, {shape.vocab_size} tokens, {shape.chunk_length_s} s window",
    "package": f"{cfg.teacher.model}, converted offline from registry packages (CTranslate2's format)",
}[cfg.teacher.source]
print(f"profile: {cfg.profile}   teacher: {cfg.teacher.source}, {described}")

# %% [markdown]
# ## The corpora
# A distillation pool is a mixture of training sets (the default pool is "pool", any other "pool <name>");
# the test sets are evaluated in 04. Clips that could not be used are counted here, with the reason.

# %%
pools = labelled_pools(cfg)
pool_names = derived.pool_names(cfg)
overview = derived.corpora(cfg)
report.write_table(overview, cfg.reports_path, "corpora")
report.show_table(overview)

# %%
skip_counts = derived.skipped_clips(cfg)
report.write_table(skip_counts, cfg.reports_path, "skipped_clips")
report.show_table(skip_counts) if len(skip_counts) else print("no clip was skipped or flagged")

# %% [markdown]
# ## The teacher and its pseudo-labels

# %%
labels = derived.pool_labels(cfg)
print(f"teacher: {teacher['kind']} ({teacher['digest']})")
print("pseudo-labels: " + ", ".join(f"{name} {len(part)} clips" for name, part in labels.groupby("pool", sort=False)))

# %%
varieties = palette.variety_order(labels["variety"])
per_variety = derived.teacher_pool_wer(cfg, labels)
report.write_table(per_variety, cfg.reports_path, "teacher_pool_wer")
report.show_table(per_variety, shade=["WER (%)", "CER (%)"], shade_label="pseudo-labels against references (%)")

# %%
fig, ax = plt.subplots(figsize=(7, 3.5))
sns.boxplot(
    data=labels.assign(wer=labels["teacher_wer"].clip(upper=1.5) * 100),
    x="variety",
    y="wer",
    hue="pool" if len(pools) > 1 else "variety",
    order=varieties,
    palette=None if len(pools) > 1 else palette.variety_colours(varieties),
    showmeans=True,
    meanprops={"marker": "D", "markerfacecolor": "white", "markeredgecolor": "black"},
    ax=ax,
)
ax.set(xlabel="", ylabel=f"teacher WER (%, {cfg.filter.view})")
report.show_figure(
    fig,
    cfg.reports_path,
    "teacher_wer_by_variety",
    title="Pseudo-label quality per variety",
    caption=f"The WER of the teacher's pseudo-label of each pool clip against its reference ({cfg.filter.view} "
    "view, capped at 150 %), per variety"
    + (" and pool" if len(pools) > 1 else "")
    + ": boxes span the middle half, white diamonds mark the means.",
)

# %% [markdown]
# A few pseudo-labels next to their references (best, median and worst by WER):

# %%
ranked = labels.sort_values("teacher_wer")
examples = pd.concat([ranked.head(3), ranked.iloc[len(ranked) // 2 : len(ranked) // 2 + 3], ranked.tail(3)])
stamped = [TIMESTAMPED] if TIMESTAMPED in examples else []
report.show_table(examples[["id", "pool", "variety", "text", "pseudo_label", *stamped, "teacher_wer"]])

# %% [markdown]
# ## Findings
# Written from this run's numbers (the tables above).

# %%
default_pool = per_variety[per_variety["pool"] == pool_names[cfg.data.default_pool]]
report.show_findings(
    cfg.reports_path, "01_pseudo_label", findings.pseudo_labels(cfg, overview, skip_counts, default_pool)
)
