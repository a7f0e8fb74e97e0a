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
# transcript: this WER is what stage 02 filters on. The run is chunked, resumable and
# shards over processes (`accelerate launch -m kdlib.pseudo_label PARAMS`); this notebook
# reuses whatever is already on disk.

# %% tags=["parameters"]
params_file = "params/tiny.yaml"
params = None  # injected by `python -m kdlib.run`: the validated params as a plain mapping

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
from kdlib.pseudo_label import pseudo_label
from kdlib.teacher import teacher_source
from kdlib.text import NormalizationConfig

sns.set_theme(style="whitegrid")
print(f"profile: {cfg.profile}   run dir: {cfg.run_path}   teacher: {cfg.teacher.source} {cfg.teacher.model if cfg.teacher.source == 'hub' else ''}")

# %% [markdown]
# ## The corpora
# The distillation pool is a mixture of training sets; the test sets are evaluated in 04.
# Clips that could not be used are counted here, with the reason.

# %%
pool = data.load_mixture(cfg.data.train, cfg, "train")
tests = data.load_test_sets(cfg)
sets = [("train", "pool", pool), *(("test", name, corpus) for name, corpus in tests.items())]
overview = pd.DataFrame(
    [
        {
            "role": role,
            "set": name,
            "clips": len(corpus.dataset),
            "hours": sum(corpus.dataset["duration_s"]) / 3600,
            "varieties": ", ".join(sorted(set(corpus.dataset["variety"]))),
            "skipped or flagged": len(corpus.skipped),
        }
        for role, name, corpus in sets
    ]
)
report.write_table(overview, cfg.reports_path, "corpora", floatfmt=".3f")
overview

# %%
skipped = pd.concat([pool.skipped, *(corpus.skipped for corpus in tests.values())], ignore_index=True)
skip_counts = data.skip_summary(skipped)
report.write_table(skip_counts, cfg.reports_path, "skipped_clips")
skip_counts if len(skip_counts) else print("no clip was skipped or flagged")

# %% [markdown]
# ## The teacher and its pseudo-labels

# %%
source = teacher_source(cfg)
labels_dir = pseudo_label(cfg)
labels = datasets.load_from_disk(str(labels_dir)).remove_columns("audio").to_pandas()
print(f"teacher: {source}\npseudo-labels: {labels_dir} ({len(labels)} clips)")

# %%
config = NormalizationConfig.from_dict(cfg.normalization)
per_variety = pd.DataFrame(
    [
        {"variety": variety, "clips": len(part), **corpus_scores(part["text"].tolist(), part["pseudo_label"].tolist(), cfg.filter.view, config)}
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
