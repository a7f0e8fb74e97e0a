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
params = None  # injected by `kdlib run`: the validated params as a plain mapping

# %%
from kdlib.run import notebook_params

cfg = notebook_params(params_file, params)

# %%
import datasets
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from kdlib import data, report
from kdlib.metrics import corpus_scores
from kdlib.products import read_corpora, read_pseudo_labels, read_teacher

sns.set_theme(style="whitegrid")
teacher = read_teacher(cfg)
shape = cfg.teacher.architecture
described = {
    "hub": cfg.teacher.model,
    "train": "trained here",
    "random": f"random weights (a dry run): d_model {shape.d_model}, {shape.encoder_layers} + {shape.decoder_layers} "
    f"layers, {shape.vocab_size} tokens, {shape.chunk_length_s} s window",
}[cfg.teacher.source]
print(f"profile: {cfg.profile}   teacher: {cfg.teacher.source}, {described}")

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
per_variety = pd.DataFrame(
    [
        {
            "variety": variety,
            "clips": len(part),
            **corpus_scores(part["text"].tolist(), part["pseudo_label"].tolist(), cfg.filter.view, cfg.normalization),
        }
        for variety, part in [*labels.groupby("variety"), ("all", labels)]
    ]
).drop(columns="n")
per_variety = report.percent(per_variety, ["wer", "cer"])
report.write_table(per_variety, cfg.reports_path, "teacher_pool_wer")
report.style_table(per_variety, ["wer", "cer"])

# %%
fig, ax = plt.subplots(figsize=(7, 3.5))
sns.boxplot(data=labels.assign(wer=labels["teacher_wer"].clip(upper=1.5) * 100), x="variety", y="wer", ax=ax)
ax.set(ylabel=f"teacher WER (%, {cfg.filter.view}, capped at 150)", title="Pseudo-label quality per variety")
report.save_figure(fig, cfg.reports_path, "teacher_wer_by_variety")
plt.show()

# %% [markdown]
# A few pseudo-labels next to their references (best, median and worst by WER):

# %%
ranked = labels.sort_values("teacher_wer")
examples = pd.concat([ranked.head(3), ranked.iloc[len(ranked) // 2 : len(ranked) // 2 + 3], ranked.tail(3)])
examples[["id", "variety", "text", "pseudo_label", "teacher_wer"]]
