"""The notebook runner, on a fake repository with two tiny notebooks (each run starts a kernel)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import matplotlib
import pandas as pd
import pytest

from kdlib import report, run

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PARAMETERS_CELL = '''# %% tags=["parameters"]
params_file = "params/test.yaml"
params = None  # injected by `python -m kdlib.run`: the validated params as a plain mapping

# %%
from kdlib.run import notebook_params

cfg = notebook_params(params_file, params)
'''

FIRST = PARAMETERS_CELL + '''
# %%
cfg.run_path.mkdir(parents=True, exist_ok=True)
(cfg.run_path / "first.txt").write_text(cfg.profile)
'''

SECOND = PARAMETERS_CELL + '''
# %%
import pandas as pd
from kdlib.report import write_table

frame = pd.DataFrame({"model": ["teacher", "DW-8-8"], "wer": [25.0, 31.25]})
write_table(frame, cfg.reports_path, "headline")
(cfg.run_path / "second.txt").write_text("done")

# %%
import matplotlib.pyplot as plt
from kdlib.report import save_figure

fig, axis = plt.subplots()
axis.bar(frame["model"], frame["wer"])
save_figure(fig, cfg.reports_path, "wer")
'''

BOOM = PARAMETERS_CELL + '''
# %%
raise ValueError("boom")
'''

NAMES = ("01_first", "02_second")


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository root with a params file and the notebooks above; kernels can import kdlib."""
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'fake'\n", encoding="utf-8")
    (tmp_path / "params").mkdir()
    (tmp_path / "params" / "test.yaml").write_text(
        "profile: test\nrun_dir: runs/test\nreports_dir: reports/test\n", encoding="utf-8"
    )
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    for name, text in (("01_first", FIRST), ("02_second", SECOND), ("01_boom", BOOM)):
        (notebooks / f"{name}.py").write_text(text, encoding="utf-8")
    kdlib_parent = str(Path(run.__file__).resolve().parents[1])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [kdlib_parent, os.environ.get("PYTHONPATH")])))
    monkeypatch.chdir(tmp_path / "notebooks")  # the runner must not depend on the working directory
    return tmp_path


def test_run_notebooks_writes_reports_log_and_index(repo: Path) -> None:
    reports = repo / "reports" / "test"
    log = run.run_notebooks(repo / "params" / "test.yaml", notebooks=NAMES)

    assert (repo / "runs" / "test" / "first.txt").read_text() == "test"
    assert (repo / "runs" / "test" / "second.txt").read_text() == "done"
    for name in NAMES:
        assert (reports / f"{name}.ipynb").is_file()
        assert "<html" in (reports / f"{name}.html").read_text()
        assert log["notebooks"][name]["status"] == "ok"
    executed = json.loads((reports / "01_first.ipynb").read_text())
    assert any("injected-parameters" in cell["metadata"].get("tags", []) for cell in executed["cells"])
    assert json.loads((reports / "run_log.json").read_text()) == log
    assert log["profile"] == "test"
    assert (reports / "tables" / "headline.md").read_text().startswith("| model")

    index = (reports / "index.html").read_text()
    assert "href='01_first.html'" in index and "href='02_second.html'" in index
    assert "DW-8-8" in index and "31.25" in index and "class=\"dataframe kd\"" in index
    assert "<img src='figures/wer.png'" in index

    # --only re-runs one notebook and keeps the other's log entry
    first = log["notebooks"]["01_first"]
    assert run.main([str(repo / "params" / "test.yaml"), "--only", "02"], notebooks=NAMES) == 0
    merged = json.loads((reports / "run_log.json").read_text())["notebooks"]
    assert merged["01_first"] == first
    assert merged["02_second"]["finished"] >= first["finished"]


def test_failing_notebook_exits_1_renders_and_records(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reports = repo / "reports" / "test"
    assert run.main(["../params/test.yaml"], notebooks=("01_boom", "02_second")) == 1

    error = capsys.readouterr().err
    assert "01_boom failed in cell" in error and "ValueError: boom" in error
    assert "boom" in (reports / "01_boom.html").read_text()
    entry = json.loads((reports / "run_log.json").read_text())["notebooks"]["01_boom"]
    assert entry["status"] == "failed" and "boom" in entry["error"]
    assert not (reports / "02_second.ipynb").exists()
    assert "class='failed'" in (reports / "index.html").read_text()


def test_invalid_params_exit_2_and_run_nothing(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    params = repo / "params" / "bad.yaml"
    params.write_text("profile: test\nrun_dir: runs/test\nreports_dir: reports/test\ndistill:\n  leraning_rate: 0.1\n")
    assert run.main([str(params)], notebooks=NAMES) == 2
    error = capsys.readouterr().err.strip()
    assert "distill.leraning_rate" in error and str(params) in error and "\n" not in error
    assert not (repo / "reports").exists()


def test_unknown_notebook_exits_2(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run.main([str(repo / "params" / "test.yaml"), "--only", "07"], notebooks=NAMES) == 2
    assert "unknown notebook '07'" in capsys.readouterr().err
    assert not (repo / "reports").exists()


def test_select_notebooks() -> None:
    names = run.NOTEBOOKS
    assert run.select_notebooks(names) == list(names)
    assert run.select_notebooks(names, only=["03"]) == ["03_distill"]
    assert run.select_notebooks(names, only=["04_evaluate", "01"]) == ["01_pseudo_label", "04_evaluate"]
    assert run.select_notebooks(names, start="03_distill") == ["03_distill", "04_evaluate", "05_error_analysis"]
    assert run.select_notebooks(names, only=["01", "05"], start="02") == ["05_error_analysis"]
    with pytest.raises(ValueError, match="unknown notebook"):
        run.select_notebooks(names, start="distill")


def test_notebook_params_from_notebooks_dir_moves_to_repo_root(repo: Path) -> None:
    params = run.notebook_params("params/test.yaml")
    assert Path.cwd() == repo.resolve()
    assert params.profile == "test" and params.source_file == str(repo.resolve() / "params" / "test.yaml")
    assert run.repo_root(repo / "notebooks") == repo.resolve()


def test_report_helpers(tmp_path: Path) -> None:
    frame = pd.DataFrame({"wer": [0.25, 0.5]}, index=pd.Index(["a", "b"], name="model"))
    csv, md = report.write_table(report.percent(frame, ["wer"]), tmp_path, "t")
    assert pd.read_csv(csv, index_col="model")["wer"].tolist() == [25.0, 50.0]
    assert "| a       | 25.00 |" in md.read_text()
    assert report.style_table(frame, ["wer"]).to_html().count("background-color") == 2

    fig, axis = plt.subplots()
    axis.plot([0, 1])
    png = report.save_figure(fig, tmp_path, "line")
    assert png == tmp_path / "figures" / "line.png" and png.read_bytes().startswith(b"\x89PNG")
    assert plt.fignum_exists(fig.number)
    plt.close(fig)

    report.atomic_write_json(tmp_path / "x.json", {"a": [1, None]})
    assert json.loads((tmp_path / "x.json").read_text()) == {"a": [1, None]}
    assert not list(tmp_path.rglob("*.tmp"))
