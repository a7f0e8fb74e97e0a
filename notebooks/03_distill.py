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
# It is trained on the pairs each λ keeps with
# `kl_weight · KL(teacher ‖ student) + ce_weight · CE(pseudo-label)` (+ optional hidden-state MSE).
# The stage's builder (`kdlib distill PARAMS`, or `accelerate launch -m kdlib distill PARAMS` on
# GPUs) trains each student, checkpoints every `save_every` steps and resumes; finished runs are
# reused. This notebook reads its records, `<run_dir>/03_distill/students.json` and `student_sizes.csv`, and each
# run's log.

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
from kdlib.config import parse_student, threshold_label
from kdlib.products import read_history, read_student_sizes, read_students, read_teacher
from kdlib.students import layer_indices

sns.set_theme(style="whitegrid")
pd.DataFrame(
    [
        {"student": run.student, "thresholds": ", ".join(threshold_label(t) for t in run.thresholds)}
        for run in cfg.distill.runs
    ]
)

# %% [markdown]
# ## Which teacher layers each student keeps
# For this profile's students, and for the paper's students of whisper-large-v2 (32 + 32 layers).

# %%
from transformers import WhisperConfig

teacher_config = WhisperConfig.from_pretrained(read_teacher(cfg)["source"])
rows = []
for name, (encoder, decoder) in {run.student: parse_student(run.student) for run in cfg.distill.runs}.items():
    rows.append(
        {
            "teacher": "this profile's",
            "student": name,
            "encoder layers": layer_indices(teacher_config.encoder_layers, encoder),
            "decoder layers": layer_indices(teacher_config.decoder_layers, decoder),
        }
    )
for name in ("DW-32-16", "DW-16-16", "DW-8-8"):
    encoder, decoder = parse_student(name)
    rows.append(
        {
            "teacher": "whisper-large-v2",
            "student": name,
            "encoder layers": layer_indices(32, encoder),
            "decoder layers": layer_indices(32, decoder),
        }
    )
layers = pd.DataFrame(rows)
report.write_table(layers, cfg.reports_path, "student_layers")
layers

# %% [markdown]
# ## Student sizes
# Parameters of every trained student, and of the students of `distill.count_only`, built from the teacher
# and counted but not trained (the dry run at the paper's shapes counts DW-16-16 and DW-32-16 this way).

# %%
sizes = read_student_sizes(cfg)
if len(sizes):
    report.write_table(sizes, cfg.reports_path, "student_sizes")
sizes

# %% [markdown]
# ## Training

# %%
records = read_students(cfg)
results = pd.DataFrame(records)
shown = report.percent(results.assign(eval_wer=results["eval_wer"].astype(float)), ["eval_wer"]).drop(
    columns=["model_dir"]
)
report.write_table(shown, cfg.reports_path, "distillation_runs", floatfmt=".3f")
shown

# %%
histories = []
for record in records:
    if record["model_dir"] is not None:  # a λ that keeps no pair trains no student
        histories.append(read_history(record).assign(run=f"{record['student']} λ={record['threshold']}"))
history = pd.concat(histories, ignore_index=True) if histories else pd.DataFrame(columns=["step", "run"])
terms = [column for column in ("loss", "kl", "ce", "hidden") if column in history]
if terms:
    fig, axes = plt.subplots(1, len(terms), figsize=(4 * len(terms), 3.2), sharex=True, squeeze=False)
    for ax, term in zip(axes[0], terms):
        sns.lineplot(data=history, x="step", y=term, hue="run", ax=ax, legend=term == terms[-1])
        ax.set_title(term)
    axes[0][-1].legend(fontsize=7, loc="upper right")
    report.save_figure(fig, cfg.reports_path, "distillation_losses")
    plt.show()
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
        marker="o",
        ax=ax,
    )
    ax.set(ylabel="held-out WER (%)", title="Periodic evaluation on the pool's held-out pairs (the same for every run)")
    report.save_figure(fig, cfg.reports_path, "distillation_eval_wer")
    plt.show()
