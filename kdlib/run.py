"""The runner: build the stale stages of the graph and render every stage's notebook into a report.

    kdlib run params/tiny.yaml [--only 03 ...] [--from 02] [--force] [--plan]

First the plan: for each stage of `kdlib.pipeline.graph.STAGES`, whether it will be built (and why:
not built yet, a param changed, an input rebuilt) or is up to date; then the preflight
(`kdlib.pipeline.preflight`): the data sources, teacher, GPUs, launch mode, disk and hours the stages to build
need, every problem one line, exit 2 before any work. Then, in graph order, each
selected stage is built in this process when stale (or with `--force`), with its progress bars
in this terminal, and its notebook (`notebooks/NN_name.py`, jupytext percent format) is
executed with papermill, its params file and `--set` overrides injected, into `<reports_dir>/NN_name.ipynb`
and rendered to `NN_name.html` (code hidden until "show code"). The notebooks only read products.
Wall times, statuses and provenance are merged into `run_log.json`, and `index.html` (`kdlib.report.index`)
tells the study in the paper's order.
A stage left out by `--only`/`--from` is not rebuilt: if it is stale, the run stops and says so.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import signal
import subprocess
import sys
import time
import traceback
import uuid
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from kdlib.config import Params, load_params, params_arguments
from kdlib.config.errors import KdlibError
from kdlib.pipeline import preflight
from kdlib.pipeline.graph import STAGES, Stage, UnreadableManifest, build, read_manifest, stage_named, staleness
from kdlib.pipeline.preflight import PreflightError, launch_processes
from kdlib.pipeline.provenance import RUN_LOG, command_line, provenance, read_log, scrub_paths, update_log
from kdlib.pipeline.runlock import run_lock
from kdlib.storage.cache import atomic_write_text
from kdlib.storage.paths import repo_root
from kdlib.storage.processes import Terminated, die_with_parent


class NotebookError(RuntimeError):
    """A notebook raised: its executed notebook and HTML were still written."""


class StageError(RuntimeError):
    """A stage's builder raised: recorded in the run log, its traceback printed."""


class PlanError(ValueError):
    """The selection cannot run: a stage it needs is stale and was not selected."""


class RenderError(KdlibError, RuntimeError):
    """A stage's notebook or page could not be written (a full disk, a folder not writable): nothing half-written
    is left in its place."""


@dataclass(frozen=True)
class Step:
    """One stage in a plan: build it or not, and why."""

    stage: Stage
    build: bool
    reason: str  # why it is built, or "up to date"


def notebook_params(params_file: str, overrides: Sequence[str] = ()) -> Params:
    """The validated params of a notebook: `params_file` (relative to the repository root, found from the
    working directory, so that it may be `notebooks/` or the root) with the `--set KEY=VALUE` `overrides`
    the runner injects (none when the notebook is opened in JupyterLab): the params the run's stages used.
    Only these two are injected, so a rendered page shows no config dump and no path the params resolve to.
    In the kernel, tqdm's warning that Jupyter widgets are missing is silenced (the notebooks show no
    progress bars; the stage builders show theirs in the terminal).
    """
    from tqdm import TqdmWarning

    warnings.filterwarnings("ignore", category=TqdmWarning)
    path = Path(params_file)
    if not path.is_absolute():
        path = repo_root(Path.cwd()) / path
    return load_params(path, settings=overrides)


def notebooks_root(params: Params, notebooks_dir: str | Path = "notebooks") -> Path:
    """The repository whose notebooks render a run: the params file's, else the one kdlib lives in."""
    if (params.base_path / notebooks_dir).is_dir():
        return params.base_path
    return repo_root(Path(__file__).parent)


def select_stages(graph: Sequence[Stage], only: Sequence[str] | None = None, start: str | None = None) -> list[Stage]:
    """The stages to run, in graph order: from `start` on, restricted to `only` if given."""
    graph = tuple(graph)
    selected = list(graph)
    if start is not None:
        selected = selected[selected.index(stage_named(start, graph)) :]
    if only:
        wanted = {stage_named(name, graph).name for name in only}
        selected = [stage for stage in selected if stage.name in wanted]
    if not selected:
        raise PlanError(f"--only {' '.join(only or [])} and --from {start} select no stage")
    return selected


def plan(params: Params, selected: Sequence[Stage], graph: Sequence[Stage] = STAGES, force: bool = False) -> list[Step]:
    """What a run will do: every selected stage that is stale (or forced), or whose input will be, is built.

    A stale stage outside the selection that a selected stage reads is a PlanError."""
    graph = tuple(graph)
    names = {stage.name for stage in selected}
    rebuilt: set[str] = set()
    reasons = {stage.name: staleness(params, stage, graph) for stage in graph}
    steps = []
    for stage in graph:
        reason = reasons[stage.name]
        if stage.name not in names:
            if reason is not None:
                rebuilt.add(stage.name)
            continue
        upstream = [name for name in stage.inputs if name in rebuilt]
        stale_outside = [name for name in upstream if name not in names]
        if stale_outside:
            raise PlanError(
                f"stage {stage.name} reads {stale_outside[0]}, which is stale "
                f"({reasons[stale_outside[0]]}): run it too (drop --only/--from)"
            )
        if force:
            reason = "forced"
        elif upstream and reason is None:
            reason = f"{upstream[0]} will be rebuilt"
        if reason is not None:
            rebuilt.add(stage.name)
        steps.append(Step(stage, reason is not None, reason or "up to date"))
    return steps


def estimates(params: Params, steps: Sequence[Step]) -> dict[str, float | None]:
    """Each step's expected seconds, from the last run: its stage's build time (the manifest's `wall_s`, kept
    even when the stage is stale) when it will be built, plus its notebook's render time (the run log's
    `render_s`); None when the last run did not record what the step will do."""
    log = read_log(params.reports_path / RUN_LOG)["notebooks"]
    expected: dict[str, float | None] = {}
    for step in steps:
        render = log.get(step.stage.name, {}).get("render_s")
        try:
            build = (read_manifest(params, step.stage) or {}).get("wall_s") if step.build else 0.0
        except UnreadableManifest:  # rebuilt (the plan says why): its time is not known
            build = None
        expected[step.stage.name] = None if render is None or build is None else build + render
    return expected


def duration(seconds: float) -> str:
    """`seconds` in words: "45 s", "3 min 20 s", "2 h 05 min"."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def format_plan(params: Params, steps: Sequence[Step]) -> str:
    """The plan, one line per stage: what is done, why, and how long it took last time."""
    width = max(len(step.stage.name) for step in steps)
    expected = estimates(params, steps)
    lines = [f"plan for {params.profile} ({len(steps)} stage{'s' * (len(steps) != 1)}):"]
    for step in steps:
        action = "build + render" if step.build else "render"
        seconds = expected[step.stage.name]
        time_shown = f"~{duration(seconds)}" if seconds is not None else "?"
        lines.append(f"  {step.stage.name:<{width}}  {action:<14}  {time_shown:>12}  {step.reason}")
    known = [seconds for seconds in expected.values() if seconds is not None]
    if not known:
        lines.append("  time: no estimate (no earlier run of this profile recorded one)")
    else:
        unknown = len(expected) - len(known)
        more = f" + {unknown} stage{'s' * (unknown != 1)} never timed" if unknown else ""
        lines.append(f"  time: ~{duration(sum(known))}{more} (the last run's times, on the machine that made them)")
    return "\n".join(lines)


def _write_index(params: Params) -> Path:
    from kdlib.report.index import write_index  # here: the page reads tables with pandas; planning needs none

    return write_index(params)


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


@cache
def kernel_manager_class() -> type:
    """nbclient's kernel manager, made quiet at the source of its two messages on every notebook:

    - the kernel's sockets are IPC files on POSIX (no network port: nothing to encrypt, so ipykernel has no
      "running over TCP without encryption" to say); elsewhere TCP with CurveZMQ keys where the kernel takes them;
    - a kernel is shut down without the SIGINT jupyter_client sends first, which ipykernel reports as
      "KeyboardInterrupt caught in kernel" when it lands in a message handler (a notebook that finished
      leaves its kernel idle; one still busy is terminated after `shutdown_wait_time` as before).
    """
    import zmq
    from jupyter_client import AsyncKernelManager

    class QuietKernelManager(AsyncKernelManager):
        def __init__(self, **options: Any) -> None:
            if os.name == "posix":
                options.setdefault("transport", "ipc")
            elif zmq.has("curve"):
                options.setdefault("transport_encryption", "auto")
            super().__init__(**options)

        async def _async_interrupt_kernel(self) -> None:
            if not self.shutting_down:
                await super()._async_interrupt_kernel()

    return QuietKernelManager


def _execute(source: Path, output: Path, root: Path, parameters: dict[str, Any], kernel_name: str) -> str | None:
    """Execute one percent-format notebook into `output` and render its HTML; the error, if any.

    The notebook is executed into a temporary sibling, which replaces `output` once it is whole and rendered:
    a failure to write (a full disk) leaves the previous notebook, never half of one."""
    import jupytext
    import papermill

    notebook = jupytext.read(source)
    notebook.metadata["kernelspec"] = {"name": kernel_name, "language": "python", "display_name": kernel_name}
    error = None
    temporary = output.with_name(f".{output.stem}.{uuid.uuid4().hex[:8]}.ipynb")  # papermill wants .ipynb
    try:
        try:
            papermill.execute_notebook(
                notebook,
                temporary,
                parameters=parameters,
                cwd=root,
                progress_bar=False,
                log_output=False,
                kernel_manager_class=kernel_manager_class(),
            )
        except papermill.PapermillExecutionError as failure:
            error = f"cell {failure.exec_count}: {failure.ename}: {failure.evalue}"
        export_html(temporary, output)
        os.replace(temporary, output)
    finally:
        temporary.unlink(missing_ok=True)
    return error


# Report mode: a page opens with its code cells hidden (outputs, Markdown and findings shown); the "show code"
# switch at the top shows them in place. Pure CSS (a checkbox before <main>): no script, and a screenshot or
# a printout shows the report as a reader sees it.
_READER_CSS = """<style>
.kd-toggle { position: absolute; opacity: 0; }
.kd-nav { font: 14px system-ui, sans-serif; padding: .5rem 1rem; border-bottom: 1px solid #ddd; background: #fafafa; }
.kd-nav label { cursor: pointer; color: #0550ae; text-decoration: underline; }
.kd-toggle:checked ~ .kd-nav .kd-show, .kd-toggle:not(:checked) ~ .kd-nav .kd-hide { display: none; }
.kd-toggle:not(:checked) ~ main .jp-CodeCell .jp-Cell-inputWrapper,
.kd-toggle:not(:checked) ~ main .jp-CodeCell.jp-mod-noOutputs,
.kd-toggle:not(:checked) ~ main .jp-OutputPrompt { display: none; }
</style>
"""
_READER_NAV = (
    '<input type="checkbox" id="kd-show-code" class="kd-toggle">\n<nav class="kd-nav"><a href="index.html">'
    '&larr; index</a> &middot; <label for="kd-show-code"><span class="kd-show">show code</span>'
    '<span class="kd-hide">hide code</span></label></nav>\n'
)


def reader_page(page: str) -> str:
    """An nbconvert HTML page in report mode (code hidden behind a switch) with a link back to the index."""
    page = page.replace("</head>", _READER_CSS + "</head>", 1)
    return re.sub(r"(<body[^>]*>\n?)", lambda match: match.group(1) + _READER_NAV, page, count=1)


def export_html(executed: Path, target: Path | None = None) -> Path:
    """Make an executed notebook the same on every run of the same results (`stable_notebook`),
    rewrite it, and render it to HTML beside it, in report mode (`reader_page`). `target`: the notebook's
    final path, when `executed` is a temporary one (its name and its page's place)."""
    import nbformat
    from nbconvert import HTMLExporter

    target = executed if target is None else target
    notebook = stable_notebook(nbformat.read(executed, as_version=4), re.sub(r"[^A-Za-z0-9_-]", "-", target.stem)[:48])
    atomic_write_text(executed, nbformat.writes(notebook))
    body, _ = HTMLExporter().from_notebook_node(notebook, resources={"metadata": {"name": target.stem}})
    path = target.with_suffix(".html")
    atomic_write_text(path, reader_page(body))
    return path


def stable_notebook(notebook: Any, name: str) -> Any:
    """`notebook` without what changes from run to run but its results: cell ids (random) become
    `<name>-<index>`, papermill's and Jupyter's records of times, durations and paths are dropped."""
    notebook.metadata.pop("papermill", None)
    for index, cell in enumerate(notebook.cells):
        cell.id = f"{name}-{index}"
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
    return notebook


def run_pipeline(
    params_path: str | Path,
    only: Sequence[str] | None = None,
    start: str | None = None,
    *,
    force: bool = False,
    plan_only: bool = False,
    graph: Sequence[Stage] = STAGES,
    notebooks_dir: str | Path = "notebooks",
    kernel_name: str = "python3",
    settings: Sequence[str] = (),
) -> dict[str, Any]:
    """Plan, then build and render the selected stages in order; the run log.

    `settings` are `--set KEY=VALUE` overrides of the params file (`kdlib.config.apply_overrides`):
    the stages, the notebooks and the run log all get the overridden params.

    Everything is validated before anything runs (ParamsError, PlanError, FileNotFoundError), and the
    preflight (`kdlib.pipeline.preflight`) checks what the stages to build need: its problems are printed
    on stderr, one per line, and raised as PreflightError (exit 2) before anything is prepared; `plan_only`
    prints the plan and the preflight and stops there.
    A notebook that raises stops the run with NotebookError, after its HTML, the run log and
    the index were written.
    """
    params_path = Path(params_path).resolve()
    params = load_params(params_path, settings=settings)
    root = notebooks_root(params, notebooks_dir)
    selected = select_stages(graph, only, start)
    sources = {stage.name: root / notebooks_dir / f"{stage.name}.py" for stage in selected}
    missing = [str(path.relative_to(root)) for path in sources.values() if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"notebook source not found: {', '.join(missing)}")
    steps = plan(params, selected, graph, force)
    print(format_plan(params, steps), flush=True)
    checked = preflight.check(params, [step.stage for step in steps if step.build])
    print(checked.format(), flush=True)
    if checked.problems:
        for finding in checked.problems:
            print(f"error: {finding.line}", file=sys.stderr, flush=True)
        count = len(checked.problems)
        raise PreflightError(
            f"the preflight found {count} problem{'s' * (count != 1)} (one per line above): nothing was prepared"
        )
    if plan_only:
        return {}

    reports = params.reports_path
    log_path = reports / RUN_LOG
    params_file = os.path.relpath(params_path, root)
    command = command_line(params_file, only, start, force, settings)
    with run_lock(params, command):  # one run of a run folder at a time (RunBusy, one line, for a second one)
        reports.mkdir(parents=True, exist_ok=True)
        log = update_log(
            log_path,
            {"profile": params.profile, "overrides": list(params.overrides), **provenance(params_path, root, command)},
        )
        parameters = {"params_file": params_file, "overrides": list(params.overrides)}
        for position, step in enumerate(steps, 1):
            name = step.stage.name
            print(f"[{position}/{len(steps)}] {name}", flush=True)
            started = time.perf_counter()
            # a run killed outright leaves "running" beside its command, not the previous run's status
            update_log(log_path, {"updated": _now()}, (name, {"status": "running", "wall_s": 0.0, "started": _now()}))
            try:
                if step.build and (step.reason == "forced" or staleness(params, step.stage, tuple(graph)) is not None):
                    try:
                        manifest = build_stage(params, step.stage, tuple(graph))
                    except (
                        Exception
                    ) as failure:  # recorded, then raised as one line (after its traceback if unforeseen)
                        if not isinstance(failure, KdlibError):
                            traceback.print_exc()
                        error = f"build: {type(failure).__name__}: {' '.join(str(failure).split())}"
                        _record_failure(params, log_path, name, started, "failed", scrub_paths(error, params, root))
                        raise StageError(f"{name} failed in {error}") from failure
                    print(f"    built in {manifest['wall_s']:.1f} s: {_summary(manifest['counts'])}", flush=True)
                rendering = time.perf_counter()
                try:
                    error = _execute(sources[name], reports / f"{name}.ipynb", root, parameters, kernel_name)
                except OSError as failure:  # a full disk, an unwritable folder: named, recorded as well as it can be
                    again = command_line(params_file, [step.stage.number], None, False, settings)
                    message = (
                        f"{name}: writing {os.path.relpath(reports / f'{name}.ipynb')} failed: "
                        f"{failure.strerror or failure}: free some space (or make the folder writable) and run "
                        f"`{again}` again"
                    )
                    with contextlib.suppress(OSError):
                        _record_failure(params, log_path, name, started, "failed", scrub_paths(message, params, root))
                    raise RenderError(message) from failure
            except KeyboardInterrupt as interruption:  # recorded; what the stage finished (chunks, checkpoints) is kept
                what = "terminated (SIGTERM)" if isinstance(interruption, Terminated) else "interrupted (Ctrl-C)"
                _record_failure(params, log_path, name, started, "interrupted", what)
                raise
            wall_s = round(time.perf_counter() - started, 2)
            render_s = round(time.perf_counter() - rendering, 2)
            entry = {"status": "failed" if error else "ok", "wall_s": wall_s, "render_s": render_s, "finished": _now()}
            entry = {**entry, "error": scrub_paths(error, params, root)} if error else entry
            log = update_log(log_path, {"updated": entry["finished"]}, (name, entry))
            print(f"    {entry['status']} in {wall_s:.1f} s", flush=True)
            if error:
                _write_index(params)
                raise NotebookError(f"{name} failed in {error} (see {os.path.relpath(reports / f'{name}.html')})")
        index = _write_index(params)
    print(f"report: {os.path.relpath(index)}", flush=True)
    return log


def launch_command(params: Params, stage: Stage, gpus: int | None = None) -> list[str] | None:
    """`accelerate launch … -m kdlib <stage> PARAMS [--set …]` when the stage is a heavy one and params
    (`launch.num_processes`, `launch.config_file`) or the visible GPUs (`gpus`, default: torch's count) ask for
    more than one process; None when it runs in the runner's own process."""
    import torch  # here: the runner's other paths need no torch

    settings = params.launch
    processes = launch_processes(params, torch.cuda.device_count() if gpus is None else gpus)
    if not stage.launched or processes is None:
        return None
    command = [sys.executable, "-m", "accelerate.commands.launch"]
    if settings.config_file is not None:
        command += ["--config_file", str(params.base_path / settings.config_file)]
        command += ["--num_processes", str(processes)] if processes else []
    else:  # one machine, every process on its GPU (or on the CPU, gloo); precision is kdlib's choice
        command += ["--multi_gpu", "--num_processes", str(processes), "--num_machines", "1"]
        command += ["--mixed_precision", "no", "--dynamo_backend", "no"]
    return [*command, "-m", "kdlib", stage.command, *params_arguments(params)]


def build_stage(params: Params, stage: Stage, graph: tuple[Stage, ...] = STAGES) -> dict:
    """Build a stage here, or under `accelerate launch` (`launch_command`); its manifest."""
    command = launch_command(params, stage)
    if command is None:
        return build(params, stage, graph)
    print(f"    {' '.join(command[2:])}", flush=True)
    # the launch ends with the runner, even a runner killed outright (SIGTERM: accelerate stops its processes)
    launched = subprocess.Popen(command, preexec_fn=functools.partial(die_with_parent, os.getpid(), signal.SIGTERM))
    try:
        returncode = launched.wait()
    except BaseException:  # Ctrl-C, SIGTERM: passed on, then waited for
        launched.send_signal(signal.SIGTERM)
        try:
            launched.wait(timeout=60)
        except subprocess.TimeoutExpired:
            launched.kill()
            launched.wait()
        raise
    if returncode != 0:
        raise RuntimeError(f"accelerate launch of stage {stage.name} exited with status {returncode}")
    return read_manifest(params, stage)


def _record_failure(params: Params, log_path: Path, name: str, started: float, status: str, error: str) -> None:
    entry = {"status": status, "wall_s": round(time.perf_counter() - started, 2), "finished": _now(), "error": error}
    update_log(log_path, {"updated": entry["finished"]}, (name, entry))
    _write_index(params)


def _summary(counts: Mapping[str, Any]) -> str:
    """A stage's counts on one line, long lists shortened."""
    parts = []
    for key, value in counts.items():
        shown = json.dumps(value, ensure_ascii=False)
        parts.append(f"{key}={shown if len(shown) <= 60 else shown[:57] + '...'}")
    return ", ".join(parts)
