"""`make lab`: the lab extra, the JupyterLab setting that opens `.py` notebooks as notebooks, root handling."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_the_shipped_lab_settings_open_python_files_with_jupytext() -> None:
    overrides = json.loads((REPO / "jupyter" / "overrides.json").read_text(encoding="utf-8"))
    assert overrides["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"]["python"] == "Jupytext Notebook"


def test_the_lab_extra_has_widgets_and_jupytext() -> None:
    extras = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    names = {requirement.split("=")[0].split(">")[0].split("<")[0] for requirement in extras["lab"]}
    assert {"jupyterlab", "ipywidgets", "jupytext"} <= names


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_make_lab_installs_the_settings_and_allows_root_only_as_root(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    dry = subprocess.run(["make", "-n", "lab", f"VENV={venv}"], cwd=REPO, capture_output=True, text=True, check=True)
    lines = dry.stdout.splitlines()
    assert f"cp jupyter/overrides.json {venv}/share/jupyter/lab/settings/overrides.json" in lines
    launch = next(line for line in lines if "jupyter lab" in line)
    assert ("--allow-root" in launch) == (os.geteuid() == 0)
    assert not venv.exists()  # a dry run
