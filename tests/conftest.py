"""Shared fixtures: the `ci` profile, redirected into a per-session temporary directory."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kdlib.config import Params, load_params

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def ci_yaml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """params/ci.yaml with its run, report and cache directories under a session temp dir."""
    root = tmp_path_factory.mktemp("ci")
    raw = yaml.safe_load((REPO / "params" / "ci.yaml").read_text())
    raw.update(run_dir=str(root / "runs"), reports_dir=str(root / "reports"), cache_dir=str(root / "cache"))
    path = root / "ci.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    return path


@pytest.fixture(scope="session")
def ci_params(ci_yaml: Path) -> Params:
    return load_params(ci_yaml)


@pytest.fixture(scope="session")
def ci_teacher(ci_params: Params) -> str:
    """The ci profile's teacher, trained once per session (seconds)."""
    from kdlib.models.teacher import find_teacher

    return find_teacher(ci_params)


@pytest.fixture(scope="session")
def ci_report(ci_yaml: Path, ci_teacher: str) -> Path:
    """Every stage of the ci profile built and rendered by `kdlib run`, once per session: its reports folder."""
    from kdlib.cli import main

    assert main(["run", str(ci_yaml)]) == 0
    return load_params(ci_yaml).reports_path


def with_overrides(base: Path, target: Path, **overrides) -> Path:
    """A copy of a params YAML with top-level keys replaced (e.g. another run_dir)."""
    raw = yaml.safe_load(base.read_text())
    raw.update(overrides)
    target.write_text(yaml.safe_dump(raw, allow_unicode=True))
    return target


def two_cpu_processes(*kdlib_arguments: str) -> list[str]:
    """`accelerate launch` of `kdlib ARGUMENTS` on 2 CPU processes (gloo), as arguments after `python`."""
    launch = ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1"]
    return [*launch, "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "kdlib", *kdlib_arguments]
