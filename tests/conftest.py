"""Shared fixtures: the `ci` profile, redirected into a per-session temporary directory; and a check that the
suite leaves no process behind (`no_process_left_behind`)."""

from __future__ import annotations

import contextlib
import inspect
import os
import re
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from kdlib.config import Params, load_params

REPO = Path(__file__).resolve().parents[1]

# what makes a test a pipeline test (`make test-fast` leaves them out): the ci profile's teacher or its whole run
# (these fixtures, used directly or through another), a stage built, a model trained, or another process started
# (a kernel, `accelerate launch`, `python -m kdlib`), by the test or by a fixture it uses
PIPELINE_FIXTURES = {"ci_teacher", "ci_report"}
WATCHERS = {"no_process_left_behind"}  # autouse, on every test: it watches processes, it starts none
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
    functions += [
        definitions[-1].func for name, definitions in fixtures.items() if definitions and name not in WATCHERS
    ]
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


# ------------------------------------------------------------------------------- processes left behind

PROCESS_MARK = "KDLIB_TEST_PROCESS_MARK"


def _proc_table() -> dict[int, tuple[int, str]]:
    """Every process of this machine: pid → (parent pid, state letter), from /proc."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            table[int(entry.name)] = (int(fields[1]), fields[0])
    return table


def descendants(pid: int) -> list[int]:
    """The living processes below `pid` (children, their children, …)."""
    table = _proc_table()
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, (ppid, state) in table.items() if ppid == parent and state not in "ZX"]
        found += children
        frontier += children
    return found


def running(pids: list[int]) -> list[int]:
    """Those of `pids` that still run (not gone, not a zombie)."""
    table = _proc_table()
    return [pid for pid in pids if pid in table and table[pid][1] not in "ZX"]


def marked(mark: str) -> list[int]:
    """The running processes (but this one) whose environment carries `mark`."""
    needle = f"{PROCESS_MARK}={mark}".encode()
    found = []
    for pid in running(list(_proc_table())):
        if pid == os.getpid():
            continue
        try:
            environment = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if needle in environment:
            found.append(pid)
    return found


def wait_until(condition: Callable[[], object], timeout: float, step: float = 0.1) -> object:
    """Poll `condition` until it is truthy or `timeout` seconds passed; its last value."""
    deadline = time.monotonic() + timeout
    while not (value := condition()) and time.monotonic() < deadline:
        time.sleep(step)
    return value


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def outliving(mark: str) -> list[int]:
    """The marked processes but this process' own multiprocessing helpers (the resource tracker a spawned pool
    starts lives as long as the process that started it, and ends with it)."""
    own = {pid for pid in descendants(os.getpid()) if "multiprocessing.resource_tracker" in command_line(pid)}
    return [pid for pid in marked(mark) if pid not in own]


@pytest.fixture(scope="session", autouse=True)
def no_process_left_behind():
    """Fail the session if a process its tests started (a subprocess, its loader workers, a kernel, an `accelerate
    launch`) outlives it, and kill it.

    A mark is set in this process' environment, so every process started from here (and its children, also once
    orphaned, reparented to init) carries it in `/proc/PID/environ`. Children forked from this very process
    without an exec keep this process' first environment and go unseen; those are ended with it."""
    if not Path("/proc/self/environ").exists():
        yield
        return
    mark = uuid.uuid4().hex
    os.environ[PROCESS_MARK] = mark
    try:
        yield
    finally:
        del os.environ[PROCESS_MARK]
    wait_until(lambda: not outliving(mark), 10)
    left = outliving(mark)
    described = [f"{pid}: {command_line(pid)}" for pid in left]
    kill_all(left)
    assert not described, f"processes left behind by the suite's tests: {described}"


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
