"""Strict parsing of params files: unknown keys, types, required keys, cross-field checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from kdlib.config import (
    DistillParams,
    Params,
    ParamsError,
    StudentRun,
    apply_overrides,
    describe_params,
    load_params,
    params_arguments,
    params_from_dict,
    params_to_dict,
    parse_student,
    threshold_label,
)

MINIMAL = {"profile": "test", "run_dir": "runs/test", "reports_dir": "reports/test"}


def write_params(tmp_path: Path, **sections: object) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({**MINIMAL, **sections}, sort_keys=False), encoding="utf-8")
    return path


def test_minimal_file_gets_defaults(tmp_path: Path) -> None:
    path = write_params(tmp_path)
    params = load_params(path)
    assert params.profile == "test"
    assert params.run_path == tmp_path / "runs/test"  # relative to the params file's folder (no repository here)
    assert params.reports_path == tmp_path / "reports/test"
    assert params.distill == DistillParams()
    assert params.source_file == str(path.resolve())


def test_unknown_top_level_key_names_key_file_and_close_match(tmp_path: Path) -> None:
    path = write_params(tmp_path, profil="x")
    with pytest.raises(ParamsError) as caught:
        load_params(path)
    message = str(caught.value)
    assert "'profil'" in message
    assert str(path) in message
    assert "did you mean 'profile'" in message


def test_unknown_nested_key_is_dotted(tmp_path: Path) -> None:
    path = write_params(tmp_path, distill={"training": {"leraning_rate": 0.001}})
    with pytest.raises(ParamsError) as caught:
        load_params(path)
    message = str(caught.value)
    assert "'distill.training.leraning_rate'" in message
    assert str(path) in message
    assert "did you mean 'distill.training.learning_rate'" in message


def test_unknown_key_inside_a_list_item(tmp_path: Path) -> None:
    path = write_params(tmp_path, distill={"runs": [{"student": "DW-8-8", "threshold": [80.0]}]})
    with pytest.raises(ParamsError, match=r"distill\.runs\[0\]\.threshold'.*distill\.runs\[0\]\.thresholds"):
        load_params(path)


@pytest.mark.parametrize(
    ("sections", "expected"),
    [
        (
            {"distill": {"training": {"max_steps": "100"}}},
            r"'distill\.training\.max_steps' must be an integer, got '100'",
        ),
        (
            {"distill": {"training": {"max_steps": True}}},
            r"'distill\.training\.max_steps' must be an integer, got True",
        ),
        (
            {"distill": {"training": {"gradient_checkpointing": 1}}},
            r"'distill\.training\.gradient_checkpointing' must be true or false",
        ),
        ({"distill": {"training": {"learning_rate": "fast"}}}, r"'distill\.training\.learning_rate' must be a number"),
        ({"normalization": {"unify_alef": "no"}}, r"'normalization\.unify_alef' must be true or false"),
        ({"normalization": {"remove_harakat": True}}, r"unknown key 'normalization\.remove_harakat'"),
        ({"error_rules": {"min_repeats": 2.5}}, r"'error_rules\.min_repeats' must be an integer"),
        ({"device": "tpu"}, r"'device' must be one of \['auto', 'cpu', 'cuda'\], got 'tpu'"),
        ({"filter": {"view": "raw"}}, r"'filter\.view' must be one of"),
        ({"data": {"synthetic": {"pitch": [25]}}}, r"'data\.synthetic\.pitch' must have 2 items"),
        ({"filter": {"thresholds": "80"}}, r"'filter\.thresholds' must be a list"),
        ({"distill": ["runs"]}, r"'distill' must be a mapping"),
    ],
)
def test_wrong_types_are_clear_errors(tmp_path: Path, sections: dict, expected: str) -> None:
    path = write_params(tmp_path, **sections)
    with pytest.raises(ParamsError, match=expected):
        load_params(path)


def test_missing_required_key(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("profile: test\nreports_dir: reports/test\n", encoding="utf-8")
    with pytest.raises(ParamsError, match=r"missing required key 'run_dir'"):
        load_params(path)


def test_missing_required_key_of_a_dataset(tmp_path: Path) -> None:
    path = write_params(tmp_path, data={"test": [{"name": "msa"}]})
    with pytest.raises(ParamsError, match=r"missing required key 'data\.test\[0\]\.source'"):
        load_params(path)


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("- profile\n", encoding="utf-8")
    with pytest.raises(ParamsError, match="top level must be a mapping"):
        load_params(path)


def test_invalid_yaml(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("profile: [test\n", encoding="utf-8")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(path)


def test_distill_threshold_must_be_in_the_sweep(tmp_path: Path) -> None:
    path = write_params(
        tmp_path,
        filter={"thresholds": [40.0, 80.0, None], "selected": 80.0},
        distill={"runs": [{"student": "DW-8-8", "thresholds": [80.0, 30.0]}]},
    )
    with pytest.raises(ParamsError, match=r"threshold 30 of DW-8-8 is not in filter\.thresholds") as caught:
        load_params(path)
    assert str(path) in str(caught.value)


def test_selected_threshold_must_be_in_the_sweep(tmp_path: Path) -> None:
    path = write_params(tmp_path, filter={"thresholds": [40.0, None], "selected": 80.0})
    with pytest.raises(ParamsError, match=r"filter\.selected must be one of filter\.thresholds"):
        load_params(path)


def test_bad_student_name_in_runs_names_the_file(tmp_path: Path) -> None:
    path = write_params(tmp_path, distill={"runs": [{"student": "DW-8"}]})
    with pytest.raises(ParamsError, match=r"distill\.runs\[0\]\.student': student 'DW-8'") as caught:
        load_params(path)
    assert str(path) in str(caught.value)


def test_duplicate_dataset_names(tmp_path: Path) -> None:
    spec = {"name": "msa", "source": "synthetic"}
    path = write_params(tmp_path, data={"test": [spec, spec]})
    with pytest.raises(ParamsError, match="data.test: dataset name 'msa' is used twice"):
        load_params(path)
    # a corpus may give both a training and a test set under one name (as the paper's CV and MGB sets do)
    assert load_params(write_params(tmp_path, data={"train": [spec], "test": [spec]})).data.train[0].name == "msa"


def test_shipped_profiles_are_valid() -> None:
    for path in sorted((Path(__file__).resolve().parents[1] / "params").glob("*.yaml")):
        assert load_params(path).profile == path.stem


def test_trained_teacher_needs_teacher_data(tmp_path: Path) -> None:
    path = write_params(tmp_path, teacher={"source": "train"})
    with pytest.raises(ParamsError, match="data.teacher_train is empty"):
        load_params(path)


def test_overrides_are_merged_deeply(tmp_path: Path) -> None:
    path = write_params(tmp_path, distill={"training": {"max_steps": 10, "batch_size": 4}})
    params = load_params(path, overrides={"distill": {"training": {"max_steps": 20}}})
    assert (params.distill.training.max_steps, params.distill.training.batch_size) == (20, 4)


def test_params_round_trip(tmp_path: Path) -> None:
    path = write_params(
        tmp_path,
        device="cpu",
        data={
            "synthetic": {"speed_wpm": [140, 160], "voices": ["ar"]},
            "train": [{"name": "pool", "source": "synthetic", "split": "train"}],
            "test": [{"name": "msa", "source": "local", "path": "data/msa", "variety": "MSA", "max_samples": 8}],
        },
        filter={"thresholds": [10, 80.0, None], "selected": None},
        distill={"runs": [{"student": "DW-16-16", "thresholds": [10.0, None]}], "training": {"learning_rate": 0.0003}},
    )
    params = load_params(path)
    assert params.filter.thresholds == (10.0, 80.0, None)
    assert params.distill.runs == (StudentRun("DW-16-16", (10.0, None)),)
    plain = params_to_dict(params)
    assert params_from_dict(plain, source=str(path)) == params
    # the injected form survives JSON (what papermill and run logs carry) too
    assert params_from_dict(json.loads(json.dumps(plain))) == params


def test_params_from_dict_validates() -> None:
    with pytest.raises(ParamsError, match=r"<injected>: unknown key 'seeed'"):
        params_from_dict({**MINIMAL, "seeed": 1}, source="<injected>")
    assert isinstance(params_from_dict(MINIMAL), Params)


def test_parse_student() -> None:
    assert parse_student("DW-8-8") == (8, 8)
    assert parse_student("DW-32-2") == (32, 2)
    for bad in ("DW-8", "dw-8-8", "DW-8-8-8", "DW-a-8", "Whisper-8-8", "", "DW-0-2"):
        with pytest.raises(ParamsError, match="not of the form"):
            parse_student(bad)


def test_threshold_label() -> None:
    assert threshold_label(80.0) == "80"
    assert threshold_label(12.5) == "12.5"
    assert threshold_label(None) == "none"


@pytest.mark.parametrize(
    ("sections", "key", "allowed"),
    [
        ({"distill": {"training": {"log_every": 0}}}, "distill.training.log_every", "≥ 1"),
        ({"distill": {"training": {"batch_size": 0}}}, "distill.training.batch_size", "≥ 1"),
        ({"distill": {"training": {"max_steps": -1}}}, "distill.training.max_steps", "≥ 1"),
        ({"pseudo_label": {"chunk_size": 0}}, "pseudo_label.chunk_size", "≥ 1"),
        ({"pseudo_label": {"generation": {"batch_size": 0}}}, "pseudo_label.generation.batch_size", "≥ 1"),
        ({"evaluate": {"latency_clips": 0}}, "evaluate.latency_clips", "≥ 1"),
        ({"distill": {"loss": {"temperature": 0}}}, "distill.loss.temperature", "> 0"),
        ({"distill": {"loss": {"kl_weight": -1}}}, "distill.loss.kl_weight", "≥ 0"),
        ({"data": {"max_duration_s": -3}}, "data.max_duration_s", "> 0"),
        ({"distill": {"eval_fraction": 2}}, "distill.eval_fraction", "≥ 0, < 1"),
        ({"filter": {"thresholds": [-5, None], "selected": None}}, "filter.thresholds", "≥ 0"),
        ({"filter": {"thresholds": [float("nan"), None], "selected": None}}, "filter.thresholds", "finite"),
        ({"filter": {"thresholds": [float("inf"), None], "selected": None}}, "filter.thresholds", "finite"),
        ({"error_rules": {"min_repeats": 1}}, "error_rules.min_repeats", "≥ 2"),
    ],
)
def test_out_of_range_numbers_name_key_file_and_range(tmp_path: Path, sections: dict, key: str, allowed: str) -> None:
    path = write_params(tmp_path, **sections)
    with pytest.raises(ParamsError) as caught:
        load_params(path)
    message = str(caught.value)
    assert f"'{key}'" in message and str(path) in message and allowed in message


def test_a_student_deeper_than_the_trained_teacher_is_refused(tmp_path: Path) -> None:
    teacher = {"source": "train", "architecture": {"encoder_layers": 4, "decoder_layers": 4}}
    data = {"teacher_train": [{"name": "t", "source": "synthetic"}]}
    path = write_params(tmp_path, teacher=teacher, data=data, distill={"runs": [{"student": "DW-40-2"}]})
    with pytest.raises(ParamsError, match=r"'distill\.runs\[0\]\.student' DW-40-2 has more layers than the teacher"):
        load_params(path)


@pytest.mark.parametrize("name", ["../../escape", "a/b", ".hidden", "x\x00y", ""])
def test_dataset_names_must_be_safe_file_names(tmp_path: Path, name: str) -> None:
    path = write_params(tmp_path, data={"test": [{"name": name, "source": "synthetic"}]})
    with pytest.raises(ParamsError, match=r"'data\.test\[0\]\.name': dataset .*not usable as a folder name"):
        load_params(path)


def test_params_files_that_cannot_be_read_are_one_clear_error(tmp_path: Path) -> None:
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("profile: caf\xe9\n".encode("latin-1"))
    duplicate = tmp_path / "duplicate.yaml"
    duplicate.write_text("profile: a\nrun_dir: r\nreports_dir: s\nprofile: b\n", encoding="utf-8")
    for path, expected in (
        (latin1, "not UTF-8"),
        (duplicate, "key 'profile' is given twice"),
        (tmp_path, "is a folder"),
        (tmp_path / "missing.yaml", "no such params file"),
    ):
        with pytest.raises(ParamsError, match=expected):
            load_params(path)


def test_every_param_has_a_help_text() -> None:
    described = list(describe_params())
    assert len(described) > 90
    missing = [key for key, _, text in described if not text.strip()]
    assert not missing
    keys = {key for key, _, _ in described}
    assert {"distill.training.max_steps", "teacher.training.max_steps", "error_rules.dialect_share"} <= keys


def test_relative_paths_are_resolved_against_the_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    (tmp_path / "params").mkdir()
    write_params(tmp_path / "params")
    monkeypatch.chdir(tmp_path / "params")
    params = load_params("params.yaml")
    assert params.run_path == tmp_path.resolve() / "runs" / "test"
    assert params.cache_path == tmp_path.resolve() / ".cache" / "kdlib"


def test_the_params_reference_in_docs_is_up_to_date() -> None:
    from kdlib.cli import params_markdown

    committed = (Path(__file__).resolve().parents[1] / "docs" / "params.md").read_text(encoding="utf-8")
    assert committed == params_markdown(), "run `kdlib params --markdown > docs/params.md`"


def test_set_overrides_nested_keys_with_yaml_values(tmp_path: Path) -> None:
    path = write_params(tmp_path, distill={"training": {"learning_rate": 0.01}})
    settings = [
        "distill.training.max_steps=50",
        "filter.thresholds=[10, 80]",
        "evaluate.language_codes.ctc=ara",
        "device=cpu",
    ]
    params = load_params(path, settings=settings)
    assert params.distill.training.max_steps == 50
    assert params.distill.training.learning_rate == 0.01  # the file's sibling keys are kept
    assert params.filter.thresholds == (10.0, 80.0)
    assert params.evaluate.language_codes == {"ctc": "ara"}
    assert params.device == "cpu"
    assert params.overrides == tuple(settings)
    assert params_to_dict(params)["overrides"] == settings  # what the runner injects into the notebooks
    assert load_params(path).overrides == ()


def test_set_applies_in_order_and_may_set_null(tmp_path: Path) -> None:
    path = write_params(tmp_path)
    settings = ["distill.training.max_steps=null", "distill.training.epochs=2", "distill.training.epochs=3"]
    params = load_params(path, settings=settings)
    assert params.distill.training.max_steps is None and params.distill.training.epochs == 3.0


def test_apply_overrides_leaves_the_mapping_it_was_given() -> None:
    raw = {"distill": {"training": {"max_steps": 5}}}
    assert apply_overrides(raw, ["distill.training.max_steps=7"]) == {"distill": {"training": {"max_steps": 7}}}
    assert raw == {"distill": {"training": {"max_steps": 5}}}


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        (
            "distill.training.max_stepz=5",
            "unknown key 'distill.training.max_stepz' (did you mean 'distill.training.max_steps'?)",
        ),
        ("distill.trainig.max_steps=5", "unknown key 'distill.trainig' (did you mean 'distill.training'?)"),
        ("distill.training.max_steps=0", "'distill.training.max_steps' must be ≥ 1, got 0"),
        ("distill.training.max_steps=many", "'distill.training.max_steps' must be an integer, got 'many'"),
        ("filter.view=phonetic", "'filter.view' must be one of"),
        ("filter.thresholds=[10, -1]", "'filter.thresholds' must be ≥ 0, got -1"),
        ("distill.runs.student=DW-1-1", "'distill.runs' is not a section or a mapping; set it whole"),
        ("distill.training.max_steps", "expected KEY=VALUE"),
        ("=5", "expected KEY=VALUE"),
        ("distill..max_steps=5", "expected KEY=VALUE"),
        ("filter.thresholds=[10, 80", "the value is not valid YAML"),
    ],
)
def test_bad_settings_are_one_line_naming_the_setting(tmp_path: Path, setting: str, message: str) -> None:
    with pytest.raises(ParamsError) as caught:
        load_params(write_params(tmp_path), settings=[setting])
    assert str(caught.value).startswith(f"--set {setting}: ")
    assert message in str(caught.value)


def test_settings_are_checked_together_with_the_file(tmp_path: Path) -> None:
    path = write_params(tmp_path, filter={"thresholds": [10, 80], "selected": 80})
    with pytest.raises(ParamsError, match=r"params.yaml with --set: filter.selected must be one of filter.thresholds"):
        load_params(path, settings=["filter.thresholds=[10, 20]"])
    bad_section = write_params(tmp_path, distill=5)
    with pytest.raises(ParamsError, match=r"--set distill.training.max_steps=1: 'distill' in the params file"):
        load_params(bad_section, settings=["distill.training.max_steps=1"])


def test_params_arguments_give_the_same_params_again(tmp_path: Path) -> None:
    path = write_params(tmp_path)
    params = load_params(path, settings=["distill.training.max_steps=50"])
    file, *rest = params_arguments(params)
    assert load_params(file, settings=[arg.removeprefix("--set=") for arg in rest]) == params


def test_trackers_are_known_names_and_may_be_none(tmp_path: Path) -> None:
    assert load_params(write_params(tmp_path)).distill.training.log_with == ("tensorboard",)
    path = write_params(
        tmp_path, teacher={"training": {"log_with": []}}, distill={"training": {"log_with": ["wandb", "mlflow"]}}
    )
    params = load_params(path)
    assert params.teacher.training.log_with == () and params.distill.training.log_with == ("wandb", "mlflow")
    with pytest.raises(
        ParamsError, match=r"'distill.training.log_with\[0\]' must be one of \['tensorboard', .*got 'tensorbord'"
    ):
        load_params(write_params(tmp_path, distill={"training": {"log_with": ["tensorbord"]}}))
    with pytest.raises(ParamsError, match=r"'distill.training.log_with' must be a list, got 'wandb'"):
        load_params(write_params(tmp_path), settings=["distill.training.log_with=wandb"])
