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
# (`kdlib.error_analysis`; its builder, `kdlib error-analysis PARAMS`, writes
# `<run_dir>/05_error_analysis/categories.parquet`, which this notebook reads), applied in this precedence: **empty** (no output), **hallucination**
# (much longer than the reference, a repeated n-gram loop, or insertions dominating),
# **incomplete** (stops early, or deletions dominating), **dialectal** (substitutions where
# the hypothesis uses another variety's form of the reference's word, from the dialect↔MSA
# lexicon shipped with the corpus), **substitution** (the rest).

# %% tags=["parameters"]
params_file = "params/tiny.yaml"
params = None  # injected by `kdlib run`: the validated params as a plain mapping

# %%
from kdlib.run import notebook_params

cfg = notebook_params(params_file, params)

# %%
import matplotlib.pyplot as plt
import seaborn as sns

from kdlib import report
from kdlib.error_analysis import CATEGORIES, aligned_example, category_shares
from kdlib.products import read_categories

sns.set_theme(style="whitegrid")
predictions = read_categories(cfg)
cfg.error_rules

# %% [markdown]
# ## Category shares per model (over erroneous predictions)

# %%
by_model = category_shares(predictions, ["model"])
report.write_table(by_model, cfg.reports_path, "error_categories_by_model", floatfmt=".3f")
wide = by_model.pivot(index="model", columns="category", values="share").reindex(columns=list(CATEGORIES[1:])) * 100
wide = wide.reindex(list(dict.fromkeys(predictions["model"])))
fig, ax = plt.subplots(figsize=(8, 0.45 * len(wide) + 1.5))
wide.plot(kind="barh", stacked=True, ax=ax, colormap="Set2", width=0.8)
ax.set(xlabel="share of erroneous predictions (%)", ylabel="", title="Error categories per model")
ax.invert_yaxis()
ax.legend(bbox_to_anchor=(1.01, 1), loc="upper left")
report.save_figure(fig, cfg.reports_path, "error_categories_by_model")
plt.show()

# %% [markdown]
# ## Per variety: where do dialects hurt?

# %%
by_variety = category_shares(predictions, ["model", "variety"])
report.write_table(by_variety, cfg.reports_path, "error_categories_by_variety", floatfmt=".3f")
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
    hue_order=list(CATEGORIES[1:]),
)
grid.set_axis_labels("", "share (%)")
report.save_figure(grid.figure, cfg.reports_path, "error_categories_by_variety")
plt.show()

# %% [markdown]
# ## Counts

# %%
counts = (
    predictions.groupby(["model", "category"])
    .size()
    .unstack(fill_value=0)
    .reindex(columns=list(CATEGORIES), fill_value=0)
)
counts

# %% [markdown]
# ## Examples of each category (aligned; S substitution, D deletion, I insertion)

# %%
for category in CATEGORIES[1:]:
    chosen = predictions[predictions["category"] == category].head(3)
    print(f"=== {category}: {int((predictions['category'] == category).sum())} predictions")
    for row in chosen.itertuples():
        print(f"[{row.model} · {row.dataset} · {row.id}]")
        print(aligned_example(row.reference, row.hypothesis), end="\n\n")
