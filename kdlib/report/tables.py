"""The derived tables of a run, computed from its stages' products: what the notebooks show and write
(`kdlib.report.render.write_table`) and the index page shows, so that neither depends on the other having made
them. Each function reads the products it needs (a missing or stale one is `MissingProduct`/`StaleProduct`,
naming the stage to run) and computes nothing a stage's builder should: only views of its products.

`computed_table(params, name)` is a table by the name it is written under (`corpora`, `headline`, `wer_normalized`,
...), as its notebook writes it, or None where the notebook writes none; `COMPUTED` lists those names.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import datasets
import pandas as pd

from kdlib.config import Params, parse_student, run_name, threshold_label
from kdlib.corpus.preparation import skip_summary
from kdlib.models.students import layer_indices
from kdlib.report.findings import comparison_table
from kdlib.report.palette import variety_order
from kdlib.report.published import compare_with_published
from kdlib.report.render import percent
from kdlib.scoring.metrics import corpus_scores
from kdlib.stages.error_analysis import CATEGORIES
from kdlib.stages.products import (
    labelled_pools,
    read_categories,
    read_corpora,
    read_differences,
    read_efficiency,
    read_history,
    read_pseudo_labels,
    read_scores,
    read_split,
    read_students,
    read_teacher,
    read_training_ids,
)

AVERAGES = ("avg all", "avg MSA", "avg dialects")
PAPER_STUDENTS = ("DW-32-16", "DW-16-16", "DW-8-8")  # of whisper-large-v2 (32 + 32 layers), beside this profile's


def pool_names(params: Params) -> dict[str, str]:
    """Each pool stage 01 labelled → its name in tables: "pool" for the default pool, "pool <name>" for another."""
    return {name: "pool" if name == params.data.default_pool else f"pool {name}" for name in labelled_pools(params)}


def corpora(params: Params) -> pd.DataFrame:
    """Stage 01's sets: each labelled pool (its training sets together), then each test set, with its clips, hours,
    varieties and the clips skipped or flagged."""
    prepared = read_corpora(params)
    sets = []
    for name, shown in pool_names(params).items():
        pool_sets = [corpus for corpus in prepared if corpus.role == "train" and corpus.pool == name]
        pool = datasets.concatenate_datasets([corpus.dataset for corpus in pool_sets])
        sets.append(("train", shown, pool, pd.concat([corpus.skipped for corpus in pool_sets])))
    sets += [("test", corpus.name, corpus.dataset, corpus.skipped) for corpus in prepared if corpus.role == "test"]
    return pd.DataFrame(
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


def skipped_clips(params: Params) -> pd.DataFrame:
    """Clips of stage 01's sets skipped or flagged, counted per dataset and reason."""
    return skip_summary(pd.concat([corpus.skipped for corpus in read_corpora(params)], ignore_index=True))


def pool_labels(params: Params) -> pd.DataFrame:
    """Every labelled pool's clips (no audio) with their pseudo-labels, `pool` named as in `pool_names`."""
    return pd.concat(
        [
            read_pseudo_labels(params, name).remove_columns("audio").to_pandas().assign(pool=shown)
            for name, shown in pool_names(params).items()
        ],
        ignore_index=True,
    )


def teacher_pool_wer(params: Params, labels: pd.DataFrame | None = None) -> pd.DataFrame:
    """The teacher's corpus WER and CER (%) on each pool (pseudo-labels against references, `filter.view`), per
    variety and over the pool (`all`); `labels`: `pool_labels(params)`, when the caller has them already."""
    labels = pool_labels(params) if labels is None else labels
    varieties = variety_order(labels["variety"])
    rows = [
        {
            "pool": pool,
            "variety": variety,
            "clips": len(part),
            **corpus_scores(
                part["text"].tolist(), part["pseudo_label"].tolist(), params.filter.view, params.normalization
            ),
        }
        for pool, in_pool in labels.groupby("pool", sort=False)
        for variety, part in [
            *((v, in_pool[in_pool["variety"] == v]) for v in varieties if (in_pool["variety"] == v).any()),
            ("all", in_pool),
        ]
    ]
    return percent(pd.DataFrame(rows).drop(columns="n"), ["wer", "cer"])


def training_sets(params: Params) -> pd.DataFrame:
    """Stage 02's training set of each pool and λ: the pairs kept for training and the pairs held out."""
    return pd.DataFrame(
        [
            {
                "pool": pool,
                "λ": threshold_label(threshold),
                "training pairs": len(read_training_ids(params, threshold, pool)),
                "held-out pairs": len(read_split(params, pool)["eval"]),
            }
            for pool in labelled_pools(params)
            for threshold in params.filter.thresholds
        ]
    )


def student_layers(params: Params) -> pd.DataFrame:
    """The teacher layers each student keeps: this profile's students of its teacher (stage 01's), then the
    paper's students of whisper-large-v2."""
    from transformers import WhisperConfig  # here: the other tables need no transformers

    teacher = WhisperConfig.from_pretrained(read_teacher(params)["source"])
    shapes = [("this profile's", name, teacher.encoder_layers, teacher.decoder_layers) for name in _students(params)]
    shapes += [("whisper-large-v2", name, 32, 32) for name in PAPER_STUDENTS]
    rows = []
    for kind, name, encoder_layers, decoder_layers in shapes:
        encoder, decoder = parse_student(name)
        rows.append(
            {
                "teacher": kind,
                "student": name,
                "encoder layers": layer_indices(encoder_layers, encoder),
                "decoder layers": layer_indices(decoder_layers, decoder),
            }
        )
    return pd.DataFrame(rows)


def _students(params: Params) -> list[str]:
    return list(dict.fromkeys(run.student for run in params.distill.runs))


def distillation_runs(params: Params) -> pd.DataFrame:
    """Stage 03's record of every student and λ, its held-out WER in %, without the model folders."""
    results = pd.DataFrame(read_students(params))
    shown = percent(results.assign(eval_wer=results["eval_wer"].astype(float)), ["eval_wer"])
    return shown.drop(columns=["model_dir"])


def distillation_history(params: Params) -> pd.DataFrame:
    """The logged training records of every trained student, `run` naming it (`DW-1-1@small λ=80`)."""
    histories = []
    for record in read_students(params):
        if record["model_dir"] is not None:  # a λ that keeps no pair trains no student
            name = run_name(record["student"], record["pool"], params.data.default_pool)
            histories.append(read_history(record).assign(run=f"{name} λ={record['threshold']}"))
    return pd.concat(histories, ignore_index=True) if histories else pd.DataFrame(columns=["step", "run"])


def main_tables(params: Params, scores: pd.DataFrame | None = None) -> dict[tuple[str, str], pd.DataFrame]:
    """The paper's main table (models × test sets and averages, in %) of each metric (wer, cer) and view of
    `evaluate.views`; `scores`: stage 04's, when the caller has them already."""
    from kdlib.stages.evaluate import main_table  # here: the other tables need no torch

    scores = read_scores(params) if scores is None else scores
    return {
        (metric, view): main_table(scores, metric, view) * 100
        for metric in ("wer", "cer")
        for view in params.evaluate.views
    }


def headline(params: Params, wer: pd.DataFrame | None = None, speed: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per model: its WER averages (%) in the headline view, its size, latency and speed-up (`wer`: its main
    table in that view, `speed`: stage 04's efficiency, when the caller has them)."""
    wer = main_tables(params)["wer", params.evaluate.headline_view] if wer is None else wer
    speed = read_efficiency(params) if speed is None else speed
    averages = wer[list(AVERAGES)].add_prefix("WER ").add_suffix(" (%)")
    return averages.join(speed.set_index("model")[["parameters_M", "latency_ms", "speedup"]])


# the published comparison's columns as tables show them
PUBLISHED_LABELS = {
    "published": "published WER (%)",
    "this_run": "this run WER (%)",
    "difference": "difference (points)",
}


def published_vs_this_run(
    params: Params, wer: pd.DataFrame | None = None, scores: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The paper's published WER beside this run's (headline view), for what `evaluate.published_names` maps;
    each average over the same test sets on both sides (`wer`, `scores`: the caller's, when it has them)."""
    from kdlib.stages.evaluate import average_groups  # here: the other tables need no torch

    scores = read_scores(params) if scores is None else scores
    wer = main_tables(params, scores)["wer", params.evaluate.headline_view] if wer is None else wer
    averages = average_groups(scores[scores["view"] == params.evaluate.headline_view])
    return compare_with_published(wer, params.evaluate.published_names, averages)


def error_examples(params: Params, predictions: pd.DataFrame | None = None, per_category: int = 3) -> pd.DataFrame:
    """The first `per_category` erroneous predictions of each error category, in the categories' order
    (`predictions`: stage 05's, when the caller has them)."""
    predictions = read_categories(params) if predictions is None else predictions
    errors = list(CATEGORIES[1:])
    examples = predictions[predictions["category"].isin(errors)].groupby("category", sort=False).head(per_category)
    examples = examples.sort_values("category", key=lambda column: column.map(errors.index), kind="stable")
    return examples[["category", "model", "dataset", "id", "reference", "hypothesis"]].reset_index(drop=True)


def paired_differences(params: Params) -> pd.DataFrame:
    """Every student against the teacher and its unfiltered twin in the headline view, one table
    (`kdlib.report.findings.comparison_table`)."""
    differences = read_differences(params)
    paired = differences[differences["view"] == params.evaluate.headline_view].drop(columns="view")
    return comparison_table(paired)


def _nonempty(frame: pd.DataFrame) -> pd.DataFrame | None:
    return frame if len(frame) else None


# each table the notebooks write that can be computed from products, as written (None: the notebook writes none)
COMPUTED: dict[str, Callable[[Params], pd.DataFrame | None]] = {
    "corpora": corpora,
    "skipped_clips": skipped_clips,
    "teacher_pool_wer": teacher_pool_wer,
    "training_sets": training_sets,
    "distillation_runs": distillation_runs,
    "efficiency": read_efficiency,
    "headline": lambda params: headline(params).reset_index(),
    "paired_differences": paired_differences,
    "published_vs_this_run": lambda params: _nonempty(published_vs_this_run(params).rename(columns=PUBLISHED_LABELS)),
    "error_examples": error_examples,
}
_MAIN = re.compile(r"(wer|cer)_(\w+)")


def computes(params: Params, name: str) -> bool:
    """Whether `computed_table` makes the table `name` (one of `COMPUTED`, or `wer_`/`cer_` and a view)."""
    main = _MAIN.fullmatch(name)
    return name in COMPUTED or bool(main and main.group(2) in params.evaluate.views)


def computed_table(params: Params, name: str) -> pd.DataFrame | None:
    """The table `name` as its notebook writes it, computed from the products (None where the notebook writes
    none: no published counterpart); KeyError for a table kdlib does not compute (`computes`)."""
    if not computes(params, name):
        raise KeyError(
            f"no table {name!r} is computed from products: choose from {sorted(COMPUTED)} or wer_/cer_<view>"
        )
    if name in COMPUTED:
        return COMPUTED[name](params)
    metric, view = _MAIN.fullmatch(name).groups()
    return main_tables(params)[metric, view]
