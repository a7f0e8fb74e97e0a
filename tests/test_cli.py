"""The command line's `--set KEY=VALUE` overrides: applied, shown, and refused in one line with exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kdlib import cli
from kdlib.pipeline.graph import STAGES

PARAMS = "profile: test\nrun_dir: runs/test\nreports_dir: reports/test\n"


@pytest.fixture
def params_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "test.yaml"
    path.write_text(PARAMS, encoding="utf-8")
    return path


def test_params_shows_the_overridden_values(params_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["params", str(params_file), "--set", "distill.training.max_steps=50", "--set=filter.thresholds=[10,80]"]
    argv += ["--set", "filter.selected=10"]
    assert cli.main(argv) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["distill"]["training"]["max_steps"] == 50
    assert shown["filter"]["thresholds"] == [10.0, 80.0]
    assert shown["overrides"] == ["distill.training.max_steps=50", "filter.thresholds=[10,80]", "filter.selected=10"]


@pytest.mark.parametrize("command", ["run", "teacher", "params", *(stage.command for stage in STAGES)])
@pytest.mark.parametrize(
    ("setting", "message"),
    [
        (
            "distill.training.max_stepz=5",
            "--set distill.training.max_stepz=5: unknown key 'distill.training.max_stepz'",
        ),
        ("evaluate.latency_clips=0", "--set evaluate.latency_clips=0: 'evaluate.latency_clips' must be ≥ 1, got 0"),
        ("max_steps", "--set max_steps: expected KEY=VALUE"),
    ],
)
def test_every_command_refuses_a_bad_setting_in_one_line(
    params_file: Path, capsys: pytest.CaptureFixture[str], command: str, setting: str, message: str
) -> None:
    assert cli.main([command, str(params_file), "--set", setting]) == cli.EXIT_USAGE
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"error: {message}")
    assert "\n" not in error
    assert not (params_file.parent / "runs").exists() and not (params_file.parent / "reports").exists()


def test_set_needs_a_params_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["params", "--set", "device=cpu"]) == cli.EXIT_USAGE
    assert "--set needs a params file" in capsys.readouterr().err


def test_a_missing_stage_names_the_command_with_its_settings(params_file: Path, capsys) -> None:
    assert cli.main(["filter", str(params_file), "--set", "device=cpu"]) == cli.EXIT_FAILED
    assert "--set=device=cpu --only 01" in capsys.readouterr().err
