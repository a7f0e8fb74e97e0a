"""The pool as a dimension of a distillation run: each pool in use is labelled and filtered on its own, a
student is distilled from the pool its run names, and its name shows the pool when it is not the default."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import with_overrides

from kdlib.cli import main
from kdlib.config import ParamsError, load_params, pools_in_use, run_name
from kdlib.corpus.preparation import prepare
from kdlib.pipeline.graph import STAGES, build, stage_named, staleness
from kdlib.stages import evaluate
from kdlib.stages.products import (
    labelled_pools,
    read_pseudo_labels,
    read_split,
    read_students,
    read_sweep_counts,
    read_training_ids,
)


def write(tmp_path: Path, name: str, **sections) -> Path:
    return with_overrides(Path(__file__).parents[1] / "params" / "ci.yaml", tmp_path / name, **sections)


def ci_section(key: str) -> dict:
    return yaml.safe_load((Path(__file__).parents[1] / "params" / "ci.yaml").read_text())[key]


def test_a_student_is_named_with_its_pool_unless_it_is_the_default() -> None:
    assert run_name("DW-16-16", None, "100K") == run_name("DW-16-16", "100K", "100K") == "DW-16-16"
    assert run_name("DW-16-16", "500K", "100K") == "DW-16-16@500K"


def test_only_the_default_pool_and_the_pools_runs_name_are_in_use(tmp_path: Path) -> None:
    data = {
        **ci_section("data"),
        "pools": {"small": ci_section("data")["pools"]["small"], "unused": [{"name": "x", "source": "synthetic"}]},
    }
    runs = [
        {"student": "DW-1-1", "pool": "small"},
        {"student": "DW-1-1"},
        {"student": "DW-1-1", "pool": "small", "thresholds": [None]},  # the same (student, pool, λ) twice is refused
    ]
    params = load_params(write(tmp_path, "pools.yaml", data=data, distill={"runs": runs}))
    assert pools_in_use(params) == ["default", "small"]
    assert params.data.pool(None) == params.data.pool("default") == params.data.train


@pytest.mark.parametrize(
    ("data", "runs", "message"),
    [
        ({}, [{"student": "DW-1-1", "pool": "big"}], r"'distill.runs\[0\].pool': no pool 'big'"),
        (
            {"pools": {"default": [{"name": "x", "source": "synthetic"}]}},
            [],
            "'data.pools.default' has the name of the default pool",
        ),
        ({"pools": {"small": []}}, [], "'data.pools.small' lists no set"),
        ({"pools": {"a/b": [{"name": "x", "source": "synthetic"}]}}, [], "'data.pools.a/b': pool 'a/b'"),
        ({"default_pool": ".hidden"}, [], "'data.default_pool': pool '.hidden'"),
        ({"pools": {"small": [{"name": "x", "source": "synthetic"}] * 2}}, [], "data.pools.small: dataset name 'x'"),
    ],
)
def test_bad_pools_are_refused_naming_the_key(tmp_path: Path, data: dict, runs: list, message: str) -> None:
    sections = {"data": {**ci_section("data"), "pools": {}, **data}, "distill": {"runs": runs}}
    with pytest.raises(ParamsError, match=message):
        load_params(write(tmp_path, "bad.yaml", **sections))


def test_an_unknown_pool_on_the_command_line_exits_2(tmp_path: Path, capsys) -> None:
    params_file = write(tmp_path, "ci.yaml", run_dir=str(tmp_path / "runs"))
    assert main(["distill", str(params_file), "--student", "DW-1-1", "--pool", "big"]) == 2
    assert "--pool big: no pool 'big'" in capsys.readouterr().err


@pytest.fixture(scope="module")
def filtered(ci_params, ci_teacher):
    """The ci profile (a default pool and pool `small`) through stages 01 and 02."""
    for stage in STAGES[:2]:
        if staleness(ci_params, stage) is not None:
            build(ci_params, stage)
    return ci_params


def test_each_pool_in_use_is_labelled_and_filtered_on_its_own(filtered) -> None:
    params = filtered
    assert labelled_pools(params) == ["default", "small"]
    default, small = (
        read_pseudo_labels(params, pool).remove_columns("audio").to_pandas() for pool in ("default", "small")
    )
    spec = params.data.pools["small"][0]
    assert len(small) == len(prepare(spec, params, "train").dataset) > 0  # max_samples 16, less what was skipped
    assert spec.max_samples == 16 and len(small) <= 16 and small["id"].str.startswith("synth-pool-small/").all()
    assert default["id"].str.startswith("synth-pool/").all() and len(default) > len(small)
    for pool, labels in (("default", default), ("small", small)):
        held = read_split(params, pool)["eval"]
        kept = read_training_ids(params, 80.0, pool)
        assert held and set(held) <= set(labels["id"]) and set(kept) <= set(labels["id"]) - set(held)
    counts = read_sweep_counts(params)
    totals = counts[counts["variety"] == "all"].groupby("pool")["total"].first()
    assert totals.to_dict() == {"default": len(default), "small": len(small)}


def test_naming_another_pool_makes_stage_01_stale_and_adding_a_lambda_does_not(filtered, tmp_path: Path) -> None:
    raw = yaml.safe_load(Path(filtered.source_file).read_text())
    runs = raw["distill"]["runs"]
    more = {**raw["distill"], "runs": [*runs[:-1], {**runs[-1], "thresholds": [40, 80]}]}
    assert staleness(load_params(write(tmp_path, "more.yaml", **{**raw, "distill": more})), STAGES[0]) is None
    raw["data"]["pools"]["tiny"] = raw["data"]["pools"]["small"]
    other = {**raw["distill"], "runs": [*runs, {"student": "DW-1-1", "pool": "tiny"}]}
    reason = staleness(load_params(write(tmp_path, "other.yaml", **{**raw, "distill": other})), STAGES[0])
    assert reason == "params changed: data, distill.runs[].pool"
    below = {**raw["filter"], "keep": "below"}
    assert staleness(load_params(write(tmp_path, "below.yaml", **{**raw, "filter": below})), STAGES[1]) == (
        "params changed: filter.keep"
    )


def test_a_student_of_another_pool_is_its_own_row(filtered) -> None:
    build(filtered, stage_named("03"))
    small = [record for record in read_students(filtered) if record["pool"] == "small"]
    assert [(r["student"], r["threshold"], r["status"]) for r in small] == [("DW-1-1", "none", "trained")]
    assert small[0]["train_pairs"] == len(read_training_ids(filtered, None, "small"))
    entries = {entry.name: entry for entry in evaluate.model_entries(filtered)}
    assert entries["DW-1-1@small λ=none"].source == small[0]["model_dir"]
    assert entries["DW-1-1@small λ=none"].student == "DW-1-1@small"


def test_a_student_is_compared_with_the_no_filter_twin_of_its_own_pool() -> None:
    names = ["teacher", "DW-1-1 λ=80", "DW-1-1 λ=none", "DW-1-1@small λ=80", "DW-1-1@small λ=none"]
    students = [None, *(name.split(" ")[0] for name in names[1:])]  # as `model_entries` names them
    models = pd.DataFrame({"model": names, "kind": ["teacher", *["student"] * 4], "student": students})
    assert evaluate.comparison_pairs(models) == [
        ("DW-1-1 λ=80", "teacher"),
        ("DW-1-1 λ=80", "DW-1-1 λ=none"),
        ("DW-1-1 λ=none", "teacher"),
        ("DW-1-1@small λ=80", "teacher"),
        ("DW-1-1@small λ=80", "DW-1-1@small λ=none"),  # not DW-1-1 λ=none: that twin saw another pool
        ("DW-1-1@small λ=none", "teacher"),
    ]
