"""Run the pipeline notebooks for one params file and render the reports.

    python -m kdlib.run params/tiny.yaml [--only 03 ...] [--from 02_filter_sweep]

Each `notebooks/NN_name.py` (jupytext percent format) is executed with papermill in the
repository root, with the validated params injected, into `<reports_dir>/NN_name.ipynb`
and rendered to `NN_name.html`; wall times and statuses go to `run_log.json`, and
`index.html` links everything with the headline table and the figures.

Papermill, jupytext, nbconvert and torch are imported where they are used, so that notebooks
importing `notebook_params` start quickly.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import platform
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from kdlib.config import Params, load_params, params_from_dict, params_to_dict
from kdlib.cache import atomic_write_json, atomic_write_text

NOTEBOOKS: tuple[str, ...] = (
    "01_pseudo_label",
    "02_filter_sweep",
    "03_distill",
    "04_evaluate",
    "05_error_analysis",
)
RUN_LOG = "run_log.json"
HEADLINE = Path("tables") / "headline.csv"


class NotebookError(RuntimeError):
    """A notebook raised: its executed notebook and HTML were still written."""


def repo_root(start: Path) -> Path:
    """The nearest directory at or above `start` that holds `pyproject.toml`."""
    start = Path(start).resolve()
    for directory in (start, *start.parents):
        if (directory / "pyproject.toml").is_file():
            return directory
    raise FileNotFoundError(f"no pyproject.toml at or above {start}: not inside the kdlib repository")


def _root_for(params_file: Path) -> Path:
    """The repository root above the params file, else above the working directory."""
    try:
        return repo_root(params_file.parent)
    except FileNotFoundError:
        return repo_root(Path.cwd())


def notebook_params(params_file: str, params: Mapping[str, Any] | None = None) -> Params:
    """The validated params of a notebook, with the working directory set to the repository root.

    Under `python -m kdlib.run`, `params` is the injected mapping; opened interactively,
    `params` is None and `params_file` (relative to the repository root) is read.
    """
    path = Path(params_file)
    if path.is_absolute():
        root = _root_for(path)
    else:
        root = repo_root(Path.cwd())
        path = root / path
    validated = load_params(path) if params is None else params_from_dict(params, source=str(path))
    os.chdir(root)
    return validated


def _resolve(name: str, names: Sequence[str]) -> str:
    """`"03"` or `"03_distill"` → `"03_distill"`."""
    matches = [n for n in names if name in (n, n.split("_", 1)[0])]
    if len(matches) != 1:
        raise ValueError(f"unknown notebook {name!r}: choose from {', '.join(names)}")
    return matches[0]


def select_notebooks(names: Sequence[str], only: Sequence[str] | None = None, start: str | None = None) -> list[str]:
    """The notebooks to run, in pipeline order: from `start` on, restricted to `only` if given."""
    selected = list(names)
    if start is not None:
        selected = selected[selected.index(_resolve(start, names)) :]
    if only:
        wanted = {_resolve(name, names) for name in only}
        selected = [name for name in selected if name in wanted]
    return selected


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


def _execute(source: Path, output: Path, root: Path, parameters: dict[str, Any], kernel_name: str) -> str | None:
    """Execute one percent-format notebook into `output` and render its HTML; the error, if any."""
    import jupytext
    import papermill
    from nbconvert import HTMLExporter

    notebook = jupytext.read(source)
    notebook.metadata["kernelspec"] = {"name": kernel_name, "language": "python", "display_name": kernel_name}
    error = None
    try:
        papermill.execute_notebook(
            notebook, output, parameters=parameters, cwd=root, progress_bar=True, log_output=False
        )
    except papermill.PapermillExecutionError as failure:
        error = f"cell {failure.exec_count}: {failure.ename}: {failure.evalue}"
    body, _ = HTMLExporter().from_filename(str(output))
    atomic_write_text(output.with_suffix(".html"), body)
    return error


def run_notebooks(
    params_path: str | Path,
    only: Sequence[str] | None = None,
    start: str | None = None,
    *,
    notebooks: Sequence[str] = NOTEBOOKS,
    notebooks_dir: str | Path = "notebooks",
    kernel_name: str = "python3",
) -> dict[str, Any]:
    """Execute the selected notebooks in order; the updated run log.

    Everything is validated before anything runs (ParamsError, ValueError, FileNotFoundError).
    A notebook that raises stops the run with NotebookError, after its HTML, the run log and
    the index were written.
    """
    params_path = Path(params_path).resolve()
    root = _root_for(params_path)
    params = load_params(params_path)
    selected = select_notebooks(notebooks, only, start)
    sources = {name: root / notebooks_dir / f"{name}.py" for name in selected}
    missing = [str(path) for path in sources.values() if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"notebook source not found: {', '.join(missing)}")

    reports = root / params.reports_path
    reports.mkdir(parents=True, exist_ok=True)
    log_path = reports / RUN_LOG
    log = _read_log(log_path)
    log.update(profile=params.profile, params_file=str(params_path), machine=machine_info())
    parameters = {"params_file": str(params_path), "params": params_to_dict(params)}
    for position, name in enumerate(selected, 1):
        print(f"[{position}/{len(selected)}] {name}", flush=True)
        started = time.perf_counter()
        error = _execute(sources[name], reports / f"{name}.ipynb", root, parameters, kernel_name)
        wall_s = round(time.perf_counter() - started, 2)
        entry = {"status": "failed" if error else "ok", "wall_s": wall_s, "finished": _now()}
        log["notebooks"][name] = {**entry, "error": error} if error else entry
        log["updated"] = entry["finished"]
        atomic_write_json(log_path, log)
        print(f"    {entry['status']} in {wall_s:.1f} s", flush=True)
        if error:
            write_index(params, root)
            raise NotebookError(f"{name} failed in {error} (see {reports / f'{name}.html'})")
    index = write_index(params, root)
    print(f"report: {index}", flush=True)
    return log


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 70rem; color: #222; }
table.kd { border-collapse: collapse; margin: 1rem 0; }
table.kd th, table.kd td { border-bottom: 1px solid #ddd; padding: .3rem .7rem; text-align: right; }
table.kd th { background: #f4f4f4; }
table.kd td:first-child, table.kd th:first-child { text-align: left; }
.ok { color: #1a7f37; } .failed { color: #cf222e; font-weight: bold; }
.figures img { max-width: 22rem; margin: .5rem; border: 1px solid #ddd; }
"""


def write_index(params: Params, root: Path | None = None) -> Path:
    """Write `<reports_dir>/index.html`: the run's notebooks, headline table and figures."""
    import pandas as pd

    if root is None:
        root = _root_for(Path(params.source_file).resolve()) if params.source_file else repo_root(Path.cwd())
    reports = root / params.reports_path
    log = _read_log(reports / RUN_LOG)
    machine = log.get("machine") or machine_info()
    esc = html.escape

    rows = "".join(
        f"<tr><td><a href='{esc(name)}.html'>{esc(name)}</a></td>"
        f"<td class='{esc(entry['status'])}'>{esc(entry['status'])}</td>"
        f"<td>{entry['wall_s']:.1f}</td><td>{esc(entry['finished'])}</td>"
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
    params_file = log.get("params_file", params.source_file)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>kdlib report: {esc(params.profile)}</title><style>{_CSS}</style></head>
<body>
<h1>To Distill or Not to Distill? On the Robustness of Robust Knowledge Distillation</h1>
<p><b>Profile:</b> {esc(params.profile)} &nbsp; <b>Params:</b> <code>{esc(str(params_file))}</code>
&nbsp; <b>Generated:</b> {esc(_now())}</p>
<p><b>Machine:</b> {esc(machine_line)}</p>
<h2>Notebooks</h2>
<table class="kd">
<thead><tr><th>notebook</th><th>status</th><th>wall (s)</th><th>finished</th><th>error</th></tr></thead>
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


def main(argv: Sequence[str] | None = None, notebooks: Sequence[str] = NOTEBOOKS) -> int:
    """Command line entry point; 0 on success, 1 if a notebook failed, 2 for bad arguments."""
    parser = argparse.ArgumentParser(prog="python -m kdlib.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("params", type=Path, help="params YAML file, e.g. params/tiny.yaml")
    parser.add_argument("--only", nargs="+", action="extend", metavar="NAME", help="run only these (e.g. 03)")
    parser.add_argument("--from", dest="start", metavar="NAME", help="run from this notebook on")
    parser.add_argument("--notebooks-dir", default="notebooks", help="relative to the repository root")
    parser.add_argument("--kernel", default="python3", help="Jupyter kernel name")
    args = parser.parse_args(argv)
    try:
        run_notebooks(
            args.params,
            args.only,
            args.start,
            notebooks=notebooks,
            notebooks_dir=args.notebooks_dir,
            kernel_name=args.kernel,
        )
    except NotebookError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError) as error:  # ParamsError is a ValueError
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
