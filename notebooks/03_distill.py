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
# # 03 · Distilling DW-e-d students
#
# A DW-e-d student keeps e encoder and d decoder layers of the teacher, maximally spaced
# (first and last kept), and everything else (front end, embeddings, layer norms) as is.
# It is trained on the pairs each λ keeps of its pool (the default pool, or the one its run names:
# `DW-16-16@500K` is DW-16-16 distilled from pool 500K) with
# `kl_weight · KL(teacher ‖ student) + ce_weight · CE(pseudo-label)` (+ optional hidden-state MSE).
# The stage's builder (`kdlib distill PARAMS`, or `accelerate launch -m kdlib distill PARAMS` on
# GPUs) trains each student, checkpoints every `save_every` steps and resumes; finished runs are
# reused. This notebook reads its records, `<run_dir>/03_distill/students.json` and `student_sizes.csv`, and each
# run's log.

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
from kdlib.stages.products import read_student_sizes

palette.set_theme()
report.show_table(
    pd.DataFrame(
        [
            {
                "student": run.student,
                "pool": run.pool or cfg.data.default_pool,
                "thresholds": ", ".join(threshold_label(t) for t in run.thresholds),
            }
            for run in cfg.distill.runs
        ]
    )
)

# %% [markdown]
# ## Which teacher layers each student keeps
# For this profile's students, and for the paper's students of whisper-large-v2 (32 + 32 layers).

# %%
layers = derived.student_layers(cfg)
report.write_table(layers, cfg.reports_path, "student_layers")
report.show_table(layers)

# %% [markdown]
# ## Student sizes
# Parameters of every trained student, and of the students of `distill.count_only`, built from the teacher
# and counted but not trained (the dry run at the paper's shapes counts DW-16-16 and DW-32-16 this way).

# %%
sizes = read_student_sizes(cfg)
if len(sizes):
    report.write_table(sizes, cfg.reports_path, "student_sizes")
report.show_table(sizes)

# %% [markdown]
# ## Training

# %%
shown = derived.distillation_runs(cfg)
report.write_table(shown, cfg.reports_path, "distillation_runs")
report.show_table(shown)

# %%
history = derived.distillation_history(cfg)
colours = palette.model_colours(list(dict.fromkeys(history["run"])))  # the same colours as in 04
terms = [column for column in ("loss", "kl", "ce", "hidden") if column in history]
if terms:
    fig, axes = plt.subplots(1, len(terms), figsize=(3.6 * len(terms), 3.2), sharex=True, squeeze=False)
    for ax, term in zip(axes[0], terms):
        sns.lineplot(data=history, x="step", y=term, hue="run", palette=colours, ax=ax, legend=term == terms[-1])
        ax.set(title=term, ylabel="")
    sns.move_legend(axes[0][-1], "upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    report.show_figure(
        fig,
        cfg.reports_path,
        "distillation_losses",
        title="Distillation losses",
        caption="Each loss term of every student run against the training step: kl is the divergence from the "
        "teacher, ce the cross-entropy on the pseudo-label, loss their weighted sum.",
    )
else:
    print("no student was trained: every listed λ keeps no pair (see the table above)")

# %%
if "eval_wer" in history:
    evaluated = history.dropna(subset=["eval_wer"])
    fig, ax = plt.subplots(figsize=(6, 3.2))
    sns.lineplot(
        data=evaluated.assign(eval_wer=evaluated["eval_wer"] * 100),
        x="step",
        y="eval_wer",
        hue="run",
        palette=colours,
        marker="o",
        ax=ax,
    )
    ax.set(ylabel="held-out WER (%)")
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    report.show_figure(
        fig,
        cfg.reports_path,
        "distillation_eval_wer",
        title="Held-out WER during training",
        caption="Each run's WER on its pool's held-out pairs, the same pairs for every run on a pool, at each periodic "
        "evaluation.",
    )

# %% [markdown]
# ## Findings
# Written from this run's numbers (the table and curves above).

# %%
report.show_findings(cfg.reports_path, "03_distill", findings.distillation(shown, history))
