"""The runner on a fake repository: a two-stage graph with tiny builders and notebooks (each render starts a kernel)."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import matplotlib
import pandas as pd
import pytest
from conftest import REPO
from test_reports import broken_targets

from kdlib import cli, run
from kdlib.config import load_params
from kdlib.pipeline.graph import STAGES, MissingProduct, Stage, require, staleness
from kdlib.report import render as report
from kdlib.stages.products import read_pseudo_labels

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PARAMETERS_CELL = """# %% tags=["parameters"]
params_file = "params/test.yaml"
overrides = []  # injected by `kdlib run`

# %%
from kdlib.run import notebook_params

cfg = notebook_params(params_file, overrides)
"""

FIRST = (
    PARAMETERS_CELL
    + """
# %%
print((cfg.run_path / "01_first" / "made.txt").read_text())
print("notebook device", cfg.device)
"""
)

SECOND = (
    PARAMETERS_CELL
    + """
# %%
import matplotlib.pyplot as plt
import pandas as pd
from kdlib.report.render import save_figure, write_table

frame = pd.read_csv(cfg.run_path / "02_second" / "table.csv")
write_table(frame, cfg.reports_path, "headline")
fig, axis = plt.subplots()
axis.bar(frame["model"], frame["wer"])
save_figure(fig, cfg.reports_path, "wer", title="WER per model", caption="The WER of each model.")
"""
)

BOOM = (
    PARAMETERS_CELL
    + """
# %%
raise ValueError("boom")
"""
)

BUILDERS = """
from pathlib import Path


def _log(params, name):
    with open(params.run_path / "builds.log", "a") as log:
        log.write(name + "\\n")


def build_first(params):
    folder = params.run_path / "01_first"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "made.txt").write_text(f"made on {params.device}")
    _log(params, "01")
    return {"device": params.device}


def build_second(params):
    text = (params.run_path / "01_first" / "made.txt").read_text()
    folder = params.run_path / "02_second"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "table.csv").write_text("model,wer\\nteacher,25.0\\nDW-8-8,31.25\\n")
    _log(params, "02")
    return {"from": text, "thresholds": len(params.filter.thresholds)}
"""

GRAPH = (
    Stage("01_first", "first", "fakestages:build_first", (), ("device",), ("made",), "first"),
    Stage("02_second", "second", "fakestages:build_second", ("01_first",), ("filter",), ("table",), "second"),
)
PARAMS = "profile: test\nrun_dir: runs/test\nreports_dir: reports/test\n"


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository root with a params file, the notebooks and builders above; kernels can import kdlib."""
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'fake'\n", encoding="utf-8")
    (tmp_path / "params").mkdir()
    (tmp_path / "params" / "test.yaml").write_text(PARAMS, encoding="utf-8")
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    for name, text in (("01_first", FIRST), ("02_second", SECOND), ("01_boom", BOOM)):
        (notebooks / f"{name}.py").write_text(text, encoding="utf-8")
    (tmp_path / "fakestages.py").write_text(BUILDERS, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "fakestages", raising=False)  # each test imports its own builders
    kdlib_parent = str(Path(run.__file__).resolve().parents[1])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [kdlib_parent, os.environ.get("PYTHONPATH")])))
    monkeypatch.chdir(tmp_path / "notebooks")  # the runner must not depend on the working directory
    return tmp_path


def builds(repo: Path) -> list[str]:
    path = repo / "runs" / "test" / "builds.log"
    return path.read_text().split() if path.exists() else []


def test_run_builds_stale_stages_renders_and_records(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reports = repo / "reports" / "test"
    log = run.run_pipeline(repo / "params" / "test.yaml", graph=GRAPH)

    assert builds(repo) == ["01", "02"]
    out = capsys.readouterr().out
    assert "plan for test (2 stages)" in out and re.search(r"01_first   build \+ render +\? +not built yet", out)
    assert "time: no estimate (no earlier run of this profile recorded one)" in out
    for name in ("01_first", "02_second"):
        assert "<html" in (reports / f"{name}.html").read_text()
        assert log["notebooks"][name]["status"] == "ok"
        manifest = json.loads((repo / "runs" / "test" / name / "manifest.json").read_text())
        assert manifest["stage"] == name and manifest["wall_s"] >= 0 and "torch" in manifest["versions"]
    assert "made on auto" in (reports / "01_first.html").read_text()
    assert json.loads((reports / "run_log.json").read_text()) == log
    assert log["params_file"] == "params/test.yaml"  # relative: no machine path in a report
    index = (reports / "index.html").read_text()
    assert "href='01_first.html'" in index and "DW-8-8" in index and ">31.2<" in index  # WER (%): one decimal
    assert "<img src='figures/wer.png'" in index
    assert str(repo) not in index and str(repo) not in (reports / "01_first.html").read_text()
    assert {page.name: broken_targets(page) for page in reports.glob("*.html")} == dict.fromkeys(
        ("01_first.html", "02_second.html", "index.html"), []
    )

    # nothing changed: nothing is rebuilt, both notebooks are rendered again
    run.run_pipeline(repo / "params" / "test.yaml", graph=GRAPH)
    assert builds(repo) == ["01", "02"]
    out = capsys.readouterr().out  # the plan says how long each step took last time
    assert re.search(r"01_first   render          +~\d+ s  up to date", out) and "time: ~" in out

    # a param of stage 02 changed: only 02 is rebuilt
    (repo / "params" / "test.yaml").write_text(PARAMS + "filter: {thresholds: [80], selected: 80}\n")
    run.run_pipeline(repo / "params" / "test.yaml", graph=GRAPH)
    assert builds(repo) == ["01", "02", "02"]
    assert "params changed: filter" in capsys.readouterr().out

    # a param of stage 01 changed: 01 and what depends on it
    (repo / "params" / "test.yaml").write_text(PARAMS + "device: cpu\nfilter: {thresholds: [80], selected: 80}\n")
    run.run_pipeline(repo / "params" / "test.yaml", graph=GRAPH, plan_only=True)
    assert re.search(
        r"02_second  build \+ render +~\d+ s  01_first is stale \(params changed: device\)", capsys.readouterr().out
    )
    assert builds(repo) == ["01", "02", "02"]  # --plan runs nothing
    first = json.loads((reports / "run_log.json").read_text())["notebooks"]["01_first"]
    with pytest.raises(run.PlanError, match="reads 01_first, which is stale .params changed: device"):
        run.run_pipeline(repo / "params" / "test.yaml", ["02"], graph=GRAPH)
    run.run_pipeline(repo / "params" / "test.yaml", ["01"], graph=GRAPH)
    assert builds(repo) == ["01", "02", "02", "01"]
    assert staleness(load_params(repo / "params" / "test.yaml"), GRAPH[1], GRAPH) == "01_first was rebuilt since"
    merged = json.loads((reports / "run_log.json").read_text())["notebooks"]
    assert merged["01_first"]["finished"] >= first["finished"] and "02_second" in merged  # the log merges
    run.run_pipeline(repo / "params" / "test.yaml", start="02", graph=GRAPH)
    assert builds(repo)[-1] == "02" and "made on cpu" in (repo / "runs/test/02_second/manifest.json").read_text()
    run.run_pipeline(repo / "params" / "test.yaml", ["02"], graph=GRAPH, force=True)
    assert builds(repo)[-2:] == ["02", "02"]


def test_failing_notebook_exits_1_renders_and_records(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reports = repo / "reports" / "test"
    graph = (Stage("01_boom", "boom", "fakestages:build_first", (), ("device",), (), "boom"), GRAPH[1])
    with pytest.raises(run.NotebookError, match=r"01_boom failed in cell .*ValueError: boom"):
        run.run_pipeline("../params/test.yaml", graph=graph)
    assert "boom" in (reports / "01_boom.html").read_text()
    entry = json.loads((reports / "run_log.json").read_text())["notebooks"]["01_boom"]
    assert entry["status"] == "failed" and "boom" in entry["error"]
    assert not (reports / "02_second.ipynb").exists()
    assert "class='failed'" in (reports / "index.html").read_text()


def test_settings_reach_the_stages_the_notebooks_and_the_records(repo: Path) -> None:
    reports = repo / "reports" / "test"
    log = run.run_pipeline(repo / "params" / "test.yaml", only=["01"], graph=GRAPH, settings=["device=cpu"])
    assert (repo / "runs" / "test" / "01_first" / "made.txt").read_text() == "made on cpu"
    manifest = json.loads((repo / "runs" / "test" / "01_first" / "manifest.json").read_text())
    assert manifest["params"] == {"device": "cpu"} and manifest["overrides"] == ["device=cpu"]
    assert log["overrides"] == ["device=cpu"]
    executed = json.loads((reports / "01_first.ipynb").read_text())
    assert "notebook device cpu" in json.dumps(executed)
    (injected,) = [cell for cell in executed["cells"] if "injected-parameters" in cell["metadata"].get("tags", [])]
    assert "".join(injected["source"]).splitlines() == [  # the file and the settings, not the whole config
        "# Parameters",
        'params_file = "params/test.yaml"',
        'overrides = ["device=cpu"]',
    ]
    assert "--set device=cpu" in (reports / "index.html").read_text()
    assert staleness(load_params(repo / "params" / "test.yaml"), GRAPH[0], GRAPH) == "params changed: device"


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["run", "../params/bad.yaml"], 2, "'distill.training.leraning_rate'"),
        (["run", "../params/test.yaml", "--only", "07"], 2, "unknown stage '07'"),
        (["run", "../params/test.yaml", "--only", "01", "--from", "03"], 2, "select no stage"),
        (["run", "../params/missing.yaml"], 2, "no such params file"),
        (
            ["distill", "../params/test.yaml", "--threshold", "80"],
            2,
            "--threshold, --pool and --no-resume need --student",
        ),
        (["distill", "../params/test.yaml", "--student", "DW-8", "--threshold", "80"], 2, "not of the form"),
        (["filter", "../params/test.yaml"], 1, "no products of stage 01_pseudo_label in runs/test: run stage 01 first"),
        (["evaluate", "../params/test.yaml"], 1, "run stage 01 first"),
    ],
)
def test_command_line_errors_are_one_line_with_an_exit_code(repo: Path, capsys, argv, code, message) -> None:
    (repo / "params" / "bad.yaml").write_text(PARAMS + "distill:\n  training:\n    leraning_rate: 0.1\n")
    assert cli.main(argv) == code
    error = capsys.readouterr().err.strip()
    assert message in error and "\n" not in error and "Traceback" not in error
    assert not (repo / "reports").exists()


def test_version_and_help_name_every_stage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert capsys.readouterr().out.startswith("kdlib ")
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert all(stage.command in out for stage in STAGES) and "teacher" in out and "params" in out


def test_python_dash_m_kdlib_runs_the_cli(tmp_path: Path) -> None:
    import subprocess

    done = subprocess.run([sys.executable, "-m", "kdlib", "params"], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0 and "distill.training.max_steps" in done.stdout


def test_readers_name_the_stage_to_run(repo: Path) -> None:
    params = load_params(repo / "params" / "test.yaml")
    with pytest.raises(MissingProduct, match=r"run stage 01 first \(kdlib run .*test.yaml --only 01\)"):
        read_pseudo_labels(params)
    with pytest.raises(ValueError, match="unknown stage"):
        require(params, "09")


def test_select_stages() -> None:
    names = [stage.name for stage in STAGES]
    assert [s.name for s in run.select_stages(STAGES)] == names
    assert [s.name for s in run.select_stages(STAGES, only=["03"])] == ["03_distill"]
    assert [s.name for s in run.select_stages(STAGES, only=["evaluate", "01"])] == ["01_pseudo_label", "04_evaluate"]
    assert [s.name for s in run.select_stages(STAGES, start="03_distill")] == names[2:]
    assert [s.name for s in run.select_stages(STAGES, only=["01", "05"], start="02")] == ["05_error_analysis"]
    with pytest.raises(run.PlanError, match="select no stage"):
        run.select_stages(STAGES, only=["01"], start="03")


def test_notebook_params_resolve_paths_against_the_repository(repo: Path) -> None:
    before = Path.cwd()
    params = run.notebook_params("params/test.yaml")
    assert Path.cwd() == before  # no chdir
    assert params.run_path == repo.resolve() / "runs" / "test"
    injected = run.notebook_params("params/test.yaml", ["reports_dir=s"])
    assert injected.reports_path == repo.resolve() / "s"


STYLED = """# %% tags=["parameters"]
share = 0.5

# %%
import pandas as pd
from kdlib.report.render import style_table

style_table(pd.DataFrame({"wer": [0.25, share]}), ["wer"])
"""


def test_a_rerun_renders_the_same_html(repo: Path) -> None:
    source = repo / "notebooks" / "styled.py"
    source.write_text(STYLED, encoding="utf-8")
    pages = []
    for folder in ("first", "second"):  # another output path each time: papermill records both
        output = repo / folder / "styled.ipynb"
        output.parent.mkdir()
        assert run._execute(source, output, repo, {"share": 0.75}, "python3") is None
        pages.append(output.with_suffix(".html").read_text(encoding="utf-8"))
        executed = json.loads(output.read_text(encoding="utf-8"))
        assert [cell["id"] for cell in executed["cells"]] == [f"styled-{i}" for i in range(len(executed["cells"]))]
        assert "papermill" not in json.dumps(executed["metadata"]) and "start_time" not in json.dumps(executed)
    assert "0.75" in pages[0] and pages[0] == pages[1]
    assert str(repo) not in pages[0]


def test_pages_open_in_report_mode_with_the_code_a_click_away(repo: Path) -> None:
    source = repo / "notebooks" / "styled.py"
    source.write_text(STYLED, encoding="utf-8")
    output = repo / "reports" / "styled.ipynb"
    output.parent.mkdir()
    assert run._execute(source, output, repo, {"share": 0.75}, "python3") is None
    page = output.with_suffix(".html").read_text(encoding="utf-8")
    switch = '<input type="checkbox" id="kd-show-code" class="kd-toggle">'
    assert page.count(switch) == 1 and page.index(switch) < page.index("<main>")  # unchecked, a sibling of <main>
    assert ".kd-toggle:not(:checked) ~ main .jp-CodeCell .jp-Cell-inputWrapper" in page  # code hidden until checked
    assert ">style_table<" in page and "0.75" in page  # the (highlighted) code is in the page, its output shown
    assert '<label for="kd-show-code">' in page and '<a href="index.html">' in page


def test_report_helpers(tmp_path: Path) -> None:
    frame = pd.DataFrame({"wer": [0.25, 0.5]}, index=pd.Index(["a", "b"], name="model"))
    csv, md = report.write_table(report.percent(frame, ["wer"]), tmp_path, "t")
    assert pd.read_csv(csv, index_col="model")["WER (%)"].tolist() == [25.0, 50.0]  # the unit in the header
    assert "| a       |      25.0 |" in md.read_text()  # one decimal for %, the index a plain column
    assert report.style_table(frame, ["wer"]).to_html().count("background-color") == 2
    assert report.style_table(frame, ["wer"]).to_html() == report.style_table(frame.copy(), ["wer"]).to_html()

    fig, axis = plt.subplots()
    axis.plot([0, 1])
    png = report.save_figure(fig, tmp_path, "line", title="A line", caption="It rises.")
    assert png == tmp_path / "figures" / "line.png" and png.read_bytes().startswith(b"\x89PNG")
    assert plt.fignum_exists(fig.number) and fig.get_suptitle() == "A line"
    assert report.read_figure(tmp_path, "line") == report.FigureRecord(
        "line", "figures/line.png", "A line", "It rises."
    )
    assert report.read_figure(tmp_path, "absent") is None
    with pytest.raises(ValueError, match="figure line: a title and a caption are required"):
        report.save_figure(fig, tmp_path, "line", title="A line", caption=" ")
    plt.close(fig)

    shown = report.show_findings(tmp_path, "01_x", ["The <b>pool</b> holds 3\n clips.", "None skipped."])
    assert shown.data == "- The &lt;b&gt;pool&lt;/b&gt; holds 3 clips.\n- None skipped.\n"
    assert report.read_findings(tmp_path, "01_x") == ["The <b>pool</b> holds 3 clips.", "None skipped."]
    assert report.read_findings(tmp_path, "02_y") == []

    report.atomic_write_json(tmp_path / "x.json", {"a": [1, None]})
    assert json.loads((tmp_path / "x.json").read_text()) == {"a": [1, None]}
    assert not list(tmp_path.rglob("*.tmp"))


def test_ctrl_c_during_a_build_is_recorded_and_exits_130(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "fakestages.py").write_text(BUILDERS + "\n\ndef interrupted(params):\n    raise KeyboardInterrupt\n")
    sys.modules.pop("fakestages", None)
    graph = (Stage("01_first", "first", "fakestages:interrupted", (), ("device",), (), "first"), GRAPH[1])
    with pytest.raises(KeyboardInterrupt):
        run.run_pipeline(repo / "params" / "test.yaml", graph=graph)
    entry = json.loads((repo / "reports" / "test" / "run_log.json").read_text())["notebooks"]["01_first"]
    assert entry["status"] == "interrupted"
    assert not (repo / "runs" / "test" / "01_first" / "manifest.json").exists()  # nothing half-done marked finished


def test_a_builder_that_raises_is_recorded_with_its_error(repo: Path) -> None:
    (repo / "fakestages.py").write_text(BUILDERS + "\n\ndef broken(params):\n    raise KeyError('no such column')\n")
    sys.modules.pop("fakestages", None)
    graph = (Stage("01_first", "first", "fakestages:broken", (), ("device",), (), "first"), GRAPH[1])
    with pytest.raises(run.StageError, match="01_first failed in build: KeyError"):
        run.run_pipeline(repo / "params" / "test.yaml", graph=graph)
    entry = json.loads((repo / "reports" / "test" / "run_log.json").read_text())["notebooks"]["01_first"]
    assert entry["status"] == "failed" and "no such column" in entry["error"]


def test_the_command_line_turns_ctrl_c_into_one_line_and_130(monkeypatch, capsys) -> None:
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run, "run_pipeline", interrupted)
    assert cli.main(["run", "params/tiny.yaml"]) == 130
    assert capsys.readouterr().err.strip() == "interrupted: finished steps are kept; the same command resumes"


def test_heavy_stages_are_launched_with_accelerate_when_params_or_gpus_ask() -> None:
    params = load_params(REPO / "params" / "ci.yaml", settings=["distill.training.max_steps=7"])
    pseudo_label, filtering = STAGES[0], STAGES[1]
    assert run.launch_command(params, pseudo_label, gpus=1) is None  # one GPU: in the runner's process
    command = run.launch_command(params, pseudo_label, gpus=4)  # every visible GPU by default
    assert command[1:3] == ["-m", "accelerate.commands.launch"] and "--num_processes" in command
    assert command[command.index("--num_processes") + 1] == "4"
    assert command[command.index("kdlib") + 1 :] == [
        "pseudo-label",
        params.source_file,
        "--set=distill.training.max_steps=7",
    ]
    assert run.launch_command(params, filtering, gpus=4) is None  # a light stage never is
    two = load_params(REPO / "params" / "ci.yaml", settings=["launch.num_processes=2"])
    assert "2" in run.launch_command(two, pseudo_label, gpus=0)
    configured = load_params(REPO / "params" / "ci.yaml", settings=["launch.config_file=cluster.yaml"])
    command = run.launch_command(configured, STAGES[2], gpus=0)
    assert command[command.index("--config_file") + 1] == str(configured.base_path / "cluster.yaml")
    assert "--multi_gpu" not in command  # the config file says how
