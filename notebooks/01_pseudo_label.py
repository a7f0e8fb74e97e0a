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
# # 01 · Pseudo-labelling the distillation pool
#
# The teacher transcribes every clip of the distillation pool with Arabic forced
# (`language="ar", task="transcribe"`). Each pseudo-label is scored against the reference
# transcript: this WER is what stage 02 filters on. The work is done by the stage's builder
# (`kdlib pseudo-label PARAMS`, or `accelerate launch -m kdlib pseudo-label PARAMS` on several
# GPUs; chunked and resumable), which `kdlib run` calls when the stage is stale; this notebook
# only reads its products: `corpora.json`, `teacher.json` and `pseudo_labels.json` under
# `<run_dir>/01_pseudo_label/`.

# %% tags=["parameters"]
params_file = "params/tiny.yaml"
overrides = []  # injected by `kdlib run`: its --set KEY=VALUE settings

# %%
from kdlib.run import notebook_params

cfg = notebook_params(params_file, overrides)

# %%
import datasets
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from kdlib import data, findings, palette, report
from kdlib.metrics import corpus_scores
from kdlib.products import read_corpora, read_pseudo_labels, read_teacher

palette.set_theme()
teacher = read_teacher(cfg)
print(
    f"profile: {cfg.profile}   teacher: {cfg.teacher.source} {cfg.teacher.model if cfg.teacher.source == 'hub' else ''}"
)

# %% [markdown]
# ## The corpora
# The distillation pool is a mixture of training sets; the test sets are evaluated in 04.
# Clips that could not be used are counted here, with the reason.

# %%
corpora = read_corpora(cfg)
pool_sets = [corpus for corpus in corpora if corpus.role == "train"]
pool = datasets.concatenate_datasets([corpus.dataset for corpus in pool_sets])
sets = [("train", "pool", pool, pd.concat([c.skipped for c in pool_sets]))]
sets += [("test", corpus.name, corpus.dataset, corpus.skipped) for corpus in corpora if corpus.role == "test"]
overview = pd.DataFrame(
    [
        {
            "role": role,
            "set": name,
            "clips": len(dataset),
            "hours": sum(dataset["duration_s"]) / 3600,
            "varieties": ", ".join(sorted(set(dataset["variety"]))),
            "skipped or flagged": len(skipped),
        }
        for role, name, dataset, skipped in sets
    ]
)
report.write_table(overview, cfg.reports_path, "corpora", floatfmt=".3f")
overview

# %%
skipped = pd.concat([corpus.skipped for corpus in corpora], ignore_index=True)
skip_counts = data.skip_summary(skipped)
report.write_table(skip_counts, cfg.reports_path, "skipped_clips")
skip_counts if len(skip_counts) else print("no clip was skipped or flagged")

# %% [markdown]
# ## The teacher and its pseudo-labels

# %%
labels = read_pseudo_labels(cfg).remove_columns("audio").to_pandas()
print(f"teacher: {teacher['kind']} ({teacher['digest']})\npseudo-labels: {len(labels)} clips")

# %%
varieties = palette.variety_order(labels["variety"])
per_variety = pd.DataFrame(
    [
        {
            "variety": variety,
            "clips": len(part),
            **corpus_scores(part["text"].tolist(), part["pseudo_label"].tolist(), cfg.filter.view, cfg.normalization),
        }
        for variety, part in [*((v, labels[labels["variety"] == v]) for v in varieties), ("all", labels)]
    ]
).drop(columns="n")
per_variety = report.percent(per_variety, ["wer", "cer"])
report.write_table(per_variety, cfg.reports_path, "teacher_pool_wer")
report.style_table(per_variety, ["wer", "cer"])

# %%
fig, ax = plt.subplots(figsize=(7, 3.5))
sns.boxplot(
    data=labels.assign(wer=labels["teacher_wer"].clip(upper=1.5) * 100),
    x="variety",
    y="wer",
    hue="variety",
    order=varieties,
    palette=palette.variety_colours(varieties),
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
    "view, capped at 150 %), per variety: boxes span the middle half, white diamonds mark the means.",
)

# %% [markdown]
# A few pseudo-labels next to their references (best, median and worst by WER):

# %%
ranked = labels.sort_values("teacher_wer")
examples = pd.concat([ranked.head(3), ranked.iloc[len(ranked) // 2 : len(ranked) // 2 + 3], ranked.tail(3)])
examples[["id", "variety", "text", "pseudo_label", "teacher_wer"]]

# %% [markdown]
# ## Findings
# Written from this run's numbers (the tables above).

# %%
report.show_findings(
    cfg.reports_path, "01_pseudo_label", findings.pseudo_labels(cfg, overview, skip_counts, per_variety)
)
