"""Shared fixtures: the `ci` profile, redirected into a per-session temporary directory."""

from __future__ import annotations

import contextlib
import inspect
import re
from pathlib import Path

import pytest
import yaml

from kdlib.config import Params, load_params

REPO = Path(__file__).resolve().parents[1]

# what makes a test a pipeline test (`make test-fast` leaves them out): the ci profile's teacher or its whole run
# (these fixtures, used directly or through another), a stage built, a model trained, or another process started
# (a kernel, `accelerate launch`, `python -m kdlib`), by the test or by a fixture it uses
PIPELINE_FIXTURES = {"ci_teacher", "ci_report"}
HEAVY = re.compile(
    r"\b(subprocess|Popen|two_cpu_processes|run_pipeline)\b|\bmain\(\[\s*\"run\""
    r"|\b(_execute|build|distill_one|distil|train|train_teacher|find_teacher|random_teacher|retrain)\("
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "pipeline: builds a stage or the ci run, trains, or starts a process (marked by tests/conftest.py)"
    )


def _launchers(module) -> set[str]:
    """The module's own helper functions that start something heavy (`HEAVY`), e.g. a process."""
    found = set()
    for name, value in vars(module).items():
        if inspect.isfunction(value) and value.__module__ == module.__name__ and not name.startswith("test_"):
            with contextlib.suppress(OSError, TypeError):
                if HEAVY.search(inspect.getsource(value)):
                    found.add(name)
    return found


def _sources(item: pytest.Item) -> list[str]:
    """The source of a test function and of every fixture it uses (directly or through another)."""
    functions = [getattr(item, "function", None)]
    fixtures = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
    functions += [definitions[-1].func for definitions in fixtures.values() if definitions]
    sources = []
    for function in functions:
        try:
            sources.append(inspect.getsource(function))
        except (OSError, TypeError):  # a built-in fixture
            continue
    return sources


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the pipeline tests `pipeline`, so that `pytest -m "not slow and not pipeline"` runs the unit tests."""
    launchers: dict[str, re.Pattern | None] = {}
    for item in items:
        module = getattr(item, "module", None)
        if module is not None and module.__name__ not in launchers:
            names = _launchers(module)
            launchers[module.__name__] = (
                re.compile(rf"\b({'|'.join(map(re.escape, sorted(names)))})\(") if names else None
            )
        calls = launchers.get(getattr(module, "__name__", ""))
        fixtures = set(getattr(item, "fixturenames", ()))
        sources = _sources(item)
        if PIPELINE_FIXTURES & fixtures or any(HEAVY.search(text) or calls and calls.search(text) for text in sources):
            item.add_marker(pytest.mark.pipeline)


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
