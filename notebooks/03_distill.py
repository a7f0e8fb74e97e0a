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
# Training runs on `accelerate` (`accelerate launch -m kdlib.distill PARAMS` on GPUs),
# checkpoints every `save_every` steps and resumes; finished runs are reused.

# %% tags=["parameters"]
params_file = "params/tiny.yaml"
params = None  # injected by `python -m kdlib.run`: the validated params as a plain mapping

# %%
from kdlib.run import notebook_params

cfg = notebook_params(params_file, params)

# %%
import json
from dataclasses import asdict
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from kdlib import report
from kdlib.config import parse_student, threshold_label
from kdlib.distill import distill_all
from kdlib.students import layer_indices

sns.set_theme(style="whitegrid")
pd.DataFrame([{"student": run.student, "thresholds": ", ".join(threshold_label(t) for t in run.thresholds)} for run in cfg.distill.runs])

# %% [markdown]
# ## Which teacher layers each student keeps
# For this profile's students, and for the paper's students of whisper-large-v2 (32 + 32 layers).

# %%
from transformers import WhisperConfig

from kdlib.teacher import teacher_source

teacher_config = WhisperConfig.from_pretrained(teacher_source(cfg))
rows = []
for name, (encoder, decoder) in {run.student: parse_student(run.student) for run in cfg.distill.runs}.items():
    rows.append({"teacher": "this profile's", "student": name, "encoder layers": layer_indices(teacher_config.encoder_layers, encoder), "decoder layers": layer_indices(teacher_config.decoder_layers, decoder)})
for name in ("DW-32-16", "DW-16-16", "DW-8-8"):
    encoder, decoder = parse_student(name)
    rows.append({"teacher": "whisper-large-v2", "student": name, "encoder layers": layer_indices(32, encoder), "decoder layers": layer_indices(32, decoder)})
layers = pd.DataFrame(rows)
report.write_table(layers, cfg.reports_path, "student_layers")
layers

# %% [markdown]
# ## Training

# %%
results = pd.DataFrame([asdict(result) for result in distill_all(cfg)])
shown = report.percent(results.assign(eval_wer=results["eval_wer"].astype(float)), ["eval_wer"]).drop(columns=["model_dir"])
report.write_table(shown, cfg.reports_path, "distillation_runs", floatfmt=".3f")
shown

# %%
histories = []
for result in results.itertuples():
    if pd.notna(result.model_dir):  # a λ that keeps no pair trains no student
        history = pd.DataFrame(json.loads((Path(result.model_dir).parent / "history.json").read_text()))
        histories.append(history.assign(run=f"{result.student} λ={result.threshold}"))
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
    sns.lineplot(data=evaluated.assign(eval_wer=evaluated["eval_wer"] * 100), x="step", y="eval_wer", hue="run", marker="o", ax=ax)
    ax.set(ylabel="held-out WER (%)", title="Periodic evaluation during training")
    report.save_figure(fig, cfg.reports_path, "distillation_eval_wer")
    plt.show()
