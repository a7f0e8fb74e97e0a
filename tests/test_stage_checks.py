"""A stage's inputs are checked once per read of the stage (manifests parsed once per version on disk), and a
stage's manifest records its code: a change to a module the stage's builder imports makes it stale."""

from __future__ import annotations

import functools
import json
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO

from kdlib.config import Params, load_params, threshold_label
from kdlib.pipeline import code, graph
from kdlib.pipeline.graph import STAGES, MissingProduct, Stage, StaleProduct, record, require, staleness
from kdlib.stages.products import read_split, read_sweep_counts, read_training_ids
from kdlib.storage.paths import RunLayout

PSEUDO_LABEL, FILTER, DISTILL = STAGES[0], STAGES[1], STAGES[2]


@pytest.fixture
def params(tmp_path: Path) -> Params:
    """The ci profile, run in a temporary folder (nothing in it is built)."""
    return load_params(REPO / "params" / "ci.yaml", settings=[f"run_dir={tmp_path / 'runs'}"])


def filtered(params: Params) -> None:
    """Manifests of stages 01 and 02 as their builders would leave them (no builder runs) and stage 02's
    products for the default pool."""
    record(params, PSEUDO_LABEL, {"clips": 3})
    layout = RunLayout(params)
    pool = params.data.default_pool
    layout.split(pool).parent.mkdir(parents=True)
    layout.split(pool).write_text(json.dumps({"eval": ["a"]}))
    for threshold in params.filter.thresholds:
        layout.training_set(threshold, pool).write_text(json.dumps({"ids": ["b", "c"]}))
    rows = [
        {"pool": pool, "threshold": threshold_label(t), "variety": "all", "kept": 2} for t in params.filter.thresholds
    ]
    pd.DataFrame(rows).to_csv(layout.sweep_counts, index=False)
    record(params, FILTER, {"pairs": 2})


def counted(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How often manifests are parsed and staleness is worked out from them, from now on (memos emptied)."""
    calls = {"parsed": 0, "worked out": 0}
    monkeypatch.setattr(graph, "_MANIFESTS", {})
    monkeypatch.setattr(graph, "_STALENESS", {})

    def count(name, function):
        def counting(*args, **kwargs):
            calls[name] += 1
            return function(*args, **kwargs)

        return counting

    monkeypatch.setattr(graph, "_load_manifest", count("parsed", graph._load_manifest))
    monkeypatch.setattr(graph, "_staleness", count("worked out", graph._staleness))
    return calls


def test_readers_of_a_stage_parse_each_manifest_once(params: Params, monkeypatch: pytest.MonkeyPatch) -> None:
    filtered(params)
    calls = counted(monkeypatch)
    assert read_split(params)["eval"] == ["a"]
    assert calls == {"parsed": 2, "worked out": 2}  # stage 02's manifest and stage 01's, each once
    for threshold in params.filter.thresholds:
        assert read_training_ids(params, threshold) == ["b", "c"]
    assert len(read_sweep_counts(params)) == len(params.filter.thresholds)
    read_split(params)
    assert calls == {"parsed": 2, "worked out": 2}  # then each reader costs a stat per manifest
    # another Params object of the same settings reads the same way
    again = load_params(REPO / "params" / "ci.yaml", settings=[f"run_dir={params.run_path}"])
    assert read_split(again)["eval"] == ["a"] and calls == {"parsed": 2, "worked out": 2}

    # stage 01 is rebuilt (the same counts, other params): its manifest is read again, and stage 02 is stale
    other = load_params(
        REPO / "params" / "ci.yaml", settings=[f"run_dir={params.run_path}", "pseudo_label.generation.num_beams=2"]
    )
    record(other, PSEUDO_LABEL, {"clips": 3})
    with pytest.raises(StaleProduct, match=r"stage 02_filter_sweep are stale \(01_pseudo_label was rebuilt since\)"):
        read_split(other)
    assert staleness(params, PSEUDO_LABEL) == "params changed: pseudo_label"
    assert calls["parsed"] == 3  # stage 01's new manifest


def test_a_missing_stage_is_named_as_before(params: Params) -> None:
    with pytest.raises(MissingProduct, match=r"no products of stage 02_filter_sweep in .*: run stage 02 first \("):
        read_split(params)
    record(params, PSEUDO_LABEL, {"clips": 3})
    assert staleness(params, FILTER) == "not built yet"
    assert staleness(params, DISTILL) == "not built yet"
    assert require(params, "01")["counts"] == {"clips": 3}


def test_a_manifest_rewritten_in_place_is_read_again(params: Params, monkeypatch: pytest.MonkeyPatch) -> None:
    record(params, PSEUDO_LABEL, {"clips": 3})
    calls = counted(monkeypatch)
    require(params, "01")
    path = RunLayout(params).manifest(PSEUDO_LABEL.name)
    manifest = json.loads(path.read_text())
    manifest["params"]["device"] = "elsewhere"
    path.write_text(json.dumps(manifest, indent=3))  # another size, another mtime: another version
    assert staleness(params, PSEUDO_LABEL) == "params changed: device" and calls["parsed"] == 2
    record(params, PSEUDO_LABEL, {"clips": 3})
    require(params, "01")["counts"]["clips"] = 99  # the caller's own copy: the manifest read is not changed
    assert require(params, "01")["counts"] == {"clips": 3}


def test_the_code_of_a_stage_is_its_builder_and_what_it_imports() -> None:
    modules = code.dependencies("kdlib.stages.filtering")
    assert {"kdlib.stages.filtering", "kdlib.stages.products", "kdlib.pipeline.graph", "kdlib.config"} <= set(modules)
    assert {"kdlib.stages.distill", "kdlib.run", "kdlib.cli", "kdlib"}.isdisjoint(modules)  # not imported, entry points
    assert not [name for name in modules if name.startswith("kdlib.report")]
    assert all(path.is_file() and path.suffix == ".py" for path in modules.values())
    evaluate = code.dependencies("kdlib.stages.evaluate")
    assert "kdlib.models.families" in evaluate and "kdlib.models.families" not in modules
    digests = code.stage_code(FILTER.builder)
    assert list(digests) == list(modules) and all(len(digest) == 16 for digest in digests.values())
    assert code.changed_modules(digests, {**digests, "kdlib.config": "0" * 16}) == ["kdlib.config"]
    assert code.changed_modules({}, {"a": "1"}) == ["a"]


def test_a_builder_outside_kdlib_counts_itself_and_the_kdlib_modules_it_imports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "outside_builder.py").write_text("from kdlib.storage.paths import RunLayout\n\n\ndef make(p): ...\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    modules = code.dependencies("outside_builder")
    assert modules["outside_builder"] == tmp_path / "outside_builder.py"
    assert {"kdlib.storage.paths", "kdlib.storage", "kdlib.config"} <= set(modules)
    with pytest.raises(ModuleNotFoundError, match="no module 'not_there_at_all'"):
        code.dependencies("not_there_at_all")
    sys.modules.pop("outside_builder", None)


@pytest.fixture
def package_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the kdlib package whose files a test may change: staleness reads the code from it."""
    copy = tmp_path / "copy" / "kdlib"
    shutil.copytree(code.PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(graph, "stage_code", functools.partial(code.stage_code, package=copy))
    monkeypatch.setattr(graph, "_STALENESS", {})
    code.forget()
    yield copy
    code.forget()


def edit(path: Path) -> None:
    path.write_text(path.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    code.forget()  # as a new process would see it


def test_changed_code_makes_its_stage_and_what_reads_it_stale(params: Params, package_copy: Path) -> None:
    filtered(params)
    record(params, DISTILL, {"students": 0})
    assert [staleness(params, stage) for stage in (PSEUDO_LABEL, FILTER, DISTILL)] == [None, None, None]

    edit(package_copy / "stages" / "distill.py")  # stage 03's builder: stages 01 and 02 do not import it
    assert staleness(params, FILTER) is None
    assert staleness(params, DISTILL) == "code changed: kdlib.stages.distill"

    edit(package_copy / "report" / "index.py")  # the reports are not a stage's code
    edit(package_copy / "stages" / "filtering.py")
    assert staleness(params, PSEUDO_LABEL) is None
    assert staleness(params, FILTER) == "code changed: kdlib.stages.filtering"
    assert staleness(params, DISTILL) == "code changed: kdlib.stages.distill"
    record(params, DISTILL, {"students": 0})
    assert staleness(params, DISTILL) == "02_filter_sweep is stale (code changed: kdlib.stages.filtering)"
    with pytest.raises(StaleProduct, match=r"\(code changed: kdlib.stages.filtering\): run stage 02 again"):
        require(params, "02")

    record(params, FILTER, {"pairs": 2})  # rebuilt with the code as it is now: a new digest for what reads it
    assert staleness(params, FILTER) is None
    assert staleness(params, DISTILL) == "02_filter_sweep was rebuilt since"

    edit(package_copy / "config" / "schema.py")  # every stage's code
    assert [staleness(params, stage) for stage in (PSEUDO_LABEL, FILTER)] == ["code changed: kdlib.config.schema"] * 2


def test_a_manifest_without_code_is_stale(params: Params) -> None:
    record(params, PSEUDO_LABEL, {"clips": 3})
    path = RunLayout(params).manifest(PSEUDO_LABEL.name)
    manifest = json.loads(path.read_text())
    del manifest["code"]
    path.write_text(json.dumps(manifest))
    assert staleness(params, PSEUDO_LABEL) == "code changed: its manifest records none (made by an older kdlib)"


def test_the_plan_says_code_changed(params: Params, package_copy: Path) -> None:
    from kdlib.run import format_plan, plan

    filtered(params)
    edit(package_copy / "stages" / "filtering.py")
    steps = plan(params, STAGES[:2], STAGES[:2])
    assert [step.build for step in steps] == [False, True]
    (line,) = [line for line in format_plan(params, steps).splitlines() if "02_filter_sweep" in line]
    assert "build + render" in line and line.endswith("code changed: kdlib.stages.filtering")


def test_a_graph_of_stages_outside_kdlib_is_digested_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "outside_stages.py").write_text("def first(params):\n    return {'made': 1}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    stage = Stage("01_first", "first", "outside_stages:first", (), ("device",), (), "first")
    params = load_params(REPO / "params" / "ci.yaml", settings=[f"run_dir={tmp_path / 'runs'}"])
    record(params, stage, {"made": 1}, (stage,))
    assert staleness(params, stage, (stage,)) is None
    (tmp_path / "outside_stages.py").write_text("def first(params):\n    return {'made': 2}\n")
    code.forget()
    assert staleness(params, stage, (stage,)) == "code changed: outside_stages"
    sys.modules.pop("outside_stages", None)
