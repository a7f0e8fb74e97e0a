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
# # 05 · Error analysis
#
# Every erroneous prediction of 04 is sorted into one category by documented rules
# (`kdlib.stages.error_analysis`; its builder, `kdlib error-analysis PARAMS`, writes
# `<run_dir>/05_error_analysis/categories.parquet`, which this notebook reads), applied in this precedence: **empty** (no output), **hallucination**
# (much longer than the reference, a repeated n-gram loop, or insertions dominating),
# **incomplete** (stops early, or deletions dominating), **dialectal** (substitutions where
# the hypothesis uses another variety's form of the reference's word, from the dialect↔MSA
# lexicon shipped with the corpus), **substitution** (the rest).

# %% tags=["parameters"]
params_file = "params/tiny.yaml"
# `kdlib run` injects its --set KEY=VALUE settings as `overrides`
overrides = []

# %%
from kdlib.run import notebook_params

cfg = notebook_params(params_file, overrides)

# %%
import html

import matplotlib.pyplot as plt
import seaborn as sns
from IPython.display import HTML, display

from kdlib.report import findings, palette
from kdlib.report import render as report
from kdlib.report import tables as derived
from kdlib.scoring.alignment import aligned_html
from kdlib.stages.error_analysis import CATEGORIES, category_shares
from kdlib.stages.products import read_categories

palette.set_theme()
predictions = read_categories(cfg)
errors = list(CATEGORIES[1:])
colours = palette.category_colours(errors)
cfg.error_rules

# %% [markdown]
# ## Category shares per model (over erroneous predictions)

# %%
by_model = category_shares(predictions, ["model"])
report.write_table(by_model, cfg.reports_path, "error_categories_by_model")
wide = by_model.pivot(index="model", columns="category", values="share").reindex(columns=errors) * 100
wide = wide.reindex(list(dict.fromkeys(predictions["model"])))
fig, ax = plt.subplots(figsize=(8, 0.45 * len(wide) + 1.5))
wide.plot(kind="barh", stacked=True, ax=ax, color=[colours[category] for category in errors], width=0.8)
ax.set(xlabel="share of erroneous predictions (%)", ylabel="")
ax.invert_yaxis()
ax.legend(bbox_to_anchor=(1.01, 1), loc="upper left")
report.show_figure(
    fig,
    cfg.reports_path,
    "error_categories_by_model",
    title="Error categories per model",
    caption="The share of each error category among a model's erroneous predictions (predictions with at least "
    "one word error).",
)

# %% [markdown]
# ## Per variety: where do dialects hurt?

# %%
by_variety = category_shares(predictions, ["model", "variety"])
report.write_table(by_variety, cfg.reports_path, "error_categories_by_variety")
grid = sns.catplot(
    data=by_variety.assign(share=by_variety["share"] * 100),
    x="variety",
    y="share",
    hue="category",
    col="model",
    col_wrap=3,
    kind="bar",
    height=2.6,
    aspect=1.3,
    order=palette.variety_order(by_variety["variety"]),
    hue_order=errors,
    palette=colours,
)
grid.set_axis_labels("", "share (%)")
grid.set_titles("{col_name}")
report.show_figure(
    grid.figure,
    cfg.reports_path,
    "error_categories_by_variety",
    title="Error categories per variety",
    caption="For each model, the share of each error category among its erroneous predictions on each variety, "
    "in the same colours as per model.",
)

# %% [markdown]
# ## Counts

# %%
counts = (
    predictions.groupby(["model", "category"])
    .size()
    .unstack(fill_value=0)
    .reindex(columns=list(CATEGORIES), fill_value=0)
)
report.show_table(counts)

# %% [markdown]
# ## Examples of each category
# Aligned word by word and read right to left: the reference over the hypothesis; S substitution,
# D deletion, I insertion (`***` where a side has no word). The first three of each category; the first
# of each is also on the index page.

# %%
examples = derived.error_examples(cfg, predictions)
report.write_table(examples, cfg.reports_path, "error_examples")
for category in errors:
    chosen = examples[examples["category"] == category]
    display(HTML(f"<h4>{category}: {int((predictions['category'] == category).sum())} predictions</h4>"))
    for row in chosen.itertuples():
        display(HTML(f"<p><code>{html.escape(f'{row.model} · {row.dataset} · {row.id}')}</code></p>"))
        display(HTML(aligned_html(row.reference, row.hypothesis)))

# %% [markdown]
# ## Findings
# Written from this run's numbers (the tables above).

# %%
report.show_findings(cfg.reports_path, "05_error_analysis", findings.errors(predictions, by_model))
