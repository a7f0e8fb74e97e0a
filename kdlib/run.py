"""The runner: build the stale stages of the graph and render every stage's notebook into a report.

    kdlib run params/tiny.yaml [--only 03 ...] [--from 02] [--force] [--plan]

First the plan: for each stage of `kdlib.stages.STAGES`, whether it will be built (and why:
not built yet, a param changed, an input rebuilt) or is up to date. Then, in graph order, each
selected stage is built in this process when stale (or with `--force`), with its progress bars
in this terminal, and its notebook (`notebooks/NN_name.py`, jupytext percent format) is
executed with papermill, with the validated params injected, into `<reports_dir>/NN_name.ipynb`
and rendered to `NN_name.html`. The notebooks only read products. Wall times and statuses are
merged into `run_log.json`, and `index.html` links everything with the headline table and figures.
A stage left out by `--only`/`--from` is not rebuilt: if it is stale, the run stops and says so.
"""

from __future__ import annotations

import html
import json
import os
import platform
import re
import subprocess
import sys
import time
import traceback
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from kdlib.cache import atomic_write_json, atomic_write_text, entry_lock
from kdlib.config import Params, load_params, params_arguments, params_from_dict, params_to_dict
from kdlib.paths import repo_root
from kdlib.stages import STAGES, Stage, build, read_manifest, stage_named, staleness

RUN_LOG = "run_log.json"
HEADLINE = Path("tables") / "headline.csv"


class NotebookError(RuntimeError):
    """A notebook raised: its executed notebook and HTML were still written."""


class StageError(RuntimeError):
    """A stage's builder raised: recorded in the run log, its traceback printed."""


class PlanError(ValueError):
    """The selection cannot run: a stage it needs is stale and was not selected."""


@dataclass(frozen=True)
class Step:
    """One stage in a plan: build it or not, and why."""

    stage: Stage
    build: bool
    reason: str  # why it is built, or "up to date"


def notebook_params(params_file: str, params: Mapping[str, Any] | None = None) -> Params:
    """The validated params of a notebook.

    Under the runner, `params` is the injected mapping; opened in JupyterLab, `params` is None
    and `params_file` (relative to the repository root, found from the working directory) is read.
    Relative paths in params are resolved against the repository, so the working directory may be
    `notebooks/` or the root. In the kernel, tqdm's warning that Jupyter widgets are missing is
    silenced (the notebooks show no progress bars; the stage builders show theirs in the terminal).
    """
    from tqdm import TqdmWarning

    warnings.filterwarnings("ignore", category=TqdmWarning)
    path = Path(params_file)
    if not path.is_absolute():
        path = repo_root(Path.cwd()) / path
    if params is None:
        return load_params(path)
    return params_from_dict({**params, "source_file": str(path)}, source=str(params_file))


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


def format_plan(params: Params, steps: Sequence[Step]) -> str:
    width = max(len(step.stage.name) for step in steps)
    lines = [f"plan for {params.profile} ({len(steps)} stage{'s' * (len(steps) != 1)}):"]
    for step in steps:
        action = "build + render" if step.build else "render"
        lines.append(f"  {step.stage.name:<{width}}  {action:<14}  {step.reason}")
    return "\n".join(lines)


def machine_info() -> dict[str, Any]:
    """Where a run happens: platform, Python, CPU count and the torch accelerator."""
    import torch

    device = f"cuda ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "cpu"
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "device": device,
    }


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def _read_log(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {"notebooks": {}}


def _update_log(path: Path, changes: Mapping[str, Any], entry: tuple[str, dict] | None = None) -> dict[str, Any]:
    """Merge `changes` (and one stage's entry) into the run log as it is on disk now (one writer at a time)."""
    with entry_lock(path):
        log = _read_log(path)
        log.update(changes)
        if entry is not None:
            log["notebooks"][entry[0]] = entry[1]
        atomic_write_json(path, log)
    return log


def _execute(source: Path, output: Path, root: Path, parameters: dict[str, Any], kernel_name: str) -> str | None:
    """Execute one percent-format notebook into `output` and render its HTML; the error, if any."""
    import jupytext
    import papermill

    notebook = jupytext.read(source)
    notebook.metadata["kernelspec"] = {"name": kernel_name, "language": "python", "display_name": kernel_name}
    error = None
    try:
        papermill.execute_notebook(
            notebook, output, parameters=parameters, cwd=root, progress_bar=False, log_output=False
        )
    except papermill.PapermillExecutionError as failure:
        error = f"cell {failure.exec_count}: {failure.ename}: {failure.evalue}"
    export_html(output)
    return error


def export_html(executed: Path) -> Path:
    """Make an executed notebook the same on every run of the same results (`stable_notebook`),
    rewrite it, and render it to HTML beside it."""
    import nbformat
    from nbconvert import HTMLExporter

    notebook = stable_notebook(
        nbformat.read(executed, as_version=4), re.sub(r"[^A-Za-z0-9_-]", "-", executed.stem)[:48]
    )
    atomic_write_text(executed, nbformat.writes(notebook))
    body, _ = HTMLExporter().from_notebook_node(notebook, resources={"metadata": {"name": executed.stem}})
    path = executed.with_suffix(".html")
    atomic_write_text(path, body)
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

    Everything is validated before anything runs (ParamsError, PlanError, FileNotFoundError).
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
    if plan_only:
        return {}

    reports = params.reports_path
    reports.mkdir(parents=True, exist_ok=True)
    log_path = reports / RUN_LOG
    params_file = os.path.relpath(params_path, root)
    log = _update_log(
        log_path,
        {
            "profile": params.profile,
            "params_file": params_file,
            "overrides": list(params.overrides),
            "machine": machine_info(),
        },
    )
    plain = {key: value for key, value in params_to_dict(params).items() if key != "source_file"}
    parameters = {"params_file": params_file, "params": plain}
    for position, step in enumerate(steps, 1):
        name = step.stage.name
        print(f"[{position}/{len(steps)}] {name}", flush=True)
        started = time.perf_counter()
        if step.build and (step.reason == "forced" or staleness(params, step.stage, tuple(graph)) is not None):
            try:
                manifest = build_stage(params, step.stage, tuple(graph))
            except KeyboardInterrupt:  # recorded; what the stage finished (chunks, checkpoints) is kept
                _record_failure(params, log_path, name, started, "interrupted", "interrupted (Ctrl-C)")
                raise
            except Exception as failure:  # recorded, then raised as one line after its traceback
                traceback.print_exc()
                error = f"build: {type(failure).__name__}: {' '.join(str(failure).split())}"
                _record_failure(params, log_path, name, started, "failed", error)
                raise StageError(f"{name} failed in {error}") from failure
            print(f"    built in {manifest['wall_s']:.1f} s: {_summary(manifest['counts'])}", flush=True)
        error = _execute(sources[name], reports / f"{name}.ipynb", root, parameters, kernel_name)
        wall_s = round(time.perf_counter() - started, 2)
        entry = {"status": "failed" if error else "ok", "wall_s": wall_s, "finished": _now()}
        entry = {**entry, "error": error} if error else entry
        log = _update_log(log_path, {"updated": entry["finished"]}, (name, entry))
        print(f"    {entry['status']} in {wall_s:.1f} s", flush=True)
        if error:
            write_index(params)
            raise NotebookError(f"{name} failed in {error} (see {os.path.relpath(reports / f'{name}.html')})")
    index = write_index(params)
    print(f"report: {os.path.relpath(index)}", flush=True)
    return log


def launch_command(params: Params, stage: Stage, gpus: int | None = None) -> list[str] | None:
    """`accelerate launch … -m kdlib <stage> PARAMS [--set …]` when the stage is a heavy one and params
    (`launch.num_processes`, `launch.config_file`) or the visible GPUs (`gpus`, default: torch's count) ask for
    more than one process; None when it runs in the runner's own process."""
    import torch  # here: the runner's other paths need no torch

    settings = params.launch
    processes = settings.num_processes or (torch.cuda.device_count() if gpus is None else gpus)
    if not stage.launched or (settings.config_file is None and processes <= 1):
        return None
    command = [sys.executable, "-m", "accelerate.commands.launch"]
    if settings.config_file is not None:
        command += ["--config_file", str(params.base_path / settings.config_file)]
        command += ["--num_processes", str(settings.num_processes)] if settings.num_processes else []
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
    finished = subprocess.run(command, check=False)
    if finished.returncode != 0:
        raise RuntimeError(f"accelerate launch of stage {stage.name} exited with status {finished.returncode}")
    return read_manifest(params, stage)


def _record_failure(params: Params, log_path: Path, name: str, started: float, status: str, error: str) -> None:
    entry = {"status": status, "wall_s": round(time.perf_counter() - started, 2), "finished": _now(), "error": error}
    _update_log(log_path, {"updated": entry["finished"]}, (name, entry))
    write_index(params)


def _summary(counts: Mapping[str, Any]) -> str:
    """A stage's counts on one line, long lists shortened."""
    parts = []
    for key, value in counts.items():
        shown = json.dumps(value, ensure_ascii=False)
        parts.append(f"{key}={shown if len(shown) <= 60 else shown[:57] + '...'}")
    return ", ".join(parts)


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 70rem; color: #222; }
table.kd { border-collapse: collapse; margin: 1rem 0; }
table.kd th, table.kd td { border-bottom: 1px solid #ddd; padding: .3rem .7rem; text-align: right; }
table.kd th { background: #f4f4f4; }
table.kd td:first-child, table.kd th:first-child { text-align: left; }
.ok { color: #1a7f37; } .failed, .interrupted { color: #cf222e; font-weight: bold; }
.figures img { max-width: 22rem; margin: .5rem; border: 1px solid #ddd; }
"""


def write_index(params: Params) -> Path:
    """Write `<reports_dir>/index.html`: the run's notebooks, headline table and figures (no times of day:
    a rerun changes only re-measured numbers; they are in the run log)."""
    import pandas as pd

    reports = params.reports_path
    log = _read_log(reports / RUN_LOG)
    machine = log.get("machine") or machine_info()
    esc = html.escape

    rows = "".join(
        f"<tr><td><a href='{esc(name)}.html'>{esc(name)}</a></td>"
        f"<td class='{esc(entry['status'])}'>{esc(entry['status'])}</td>"
        f"<td>{entry['wall_s']:.1f}</td>"
        f"<td>{esc(entry.get('error') or '')}</td></tr>"
        for name, entry in sorted(log["notebooks"].items())
    )
    headline = reports / HEADLINE
    table = (
        pd.read_csv(headline).to_html(index=False, classes="kd", border=0, na_rep="—", float_format="{:.2f}".format)
        if headline.is_file()
        else "<p>Not produced yet (<code>tables/headline.csv</code>).</p>"
    )
    figures = sorted((reports / "figures").glob("*.png"))
    images = "".join(
        f"<a href='figures/{esc(path.name)}'><img src='figures/{esc(path.name)}' alt='{esc(path.stem)}'></a>"
        for path in figures
    )
    machine_line = ", ".join(f"{key}: {value}" for key, value in machine.items())
    params_file = log.get("params_file") or "?"
    overrides = "".join(f" <code>--set {esc(setting)}</code>" for setting in log.get("overrides") or ())
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>kdlib report: {esc(params.profile)}</title><style>{_CSS}</style></head>
<body>
<h1>To Distill or Not to Distill? On the Robustness of Robust Knowledge Distillation</h1>
<p><b>Profile:</b> {esc(params.profile)} &nbsp; <b>Params:</b> <code>{esc(str(params_file))}</code>{overrides}
&nbsp; (times of day: <a href='{RUN_LOG}'>{RUN_LOG}</a>)</p>
<p><b>Machine:</b> {esc(machine_line)}</p>
<h2>Notebooks</h2>
<table class="kd">
<thead><tr><th>notebook</th><th>status</th><th>wall (s)</th><th>error</th></tr></thead>
<tbody>{rows}</tbody></table>
<h2>Headline</h2>
{table}
<h2>Figures</h2>
<div class="figures">{images or "<p>None yet.</p>"}</div>
</body></html>
"""
    path = reports / "index.html"
    atomic_write_text(path, page)
    return path
