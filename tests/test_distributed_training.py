"""Stage 03 under `accelerate launch` on 2 CPU processes (gloo): it completes the configured steps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import two_cpu_processes, with_overrides
from safetensors.torch import load_file
from transformers import WhisperForConditionalGeneration

from kdlib.config import load_params
from kdlib.pipeline.graph import build, stage_named


@pytest.mark.slow
def test_two_process_distillation_runs_the_expected_optimiser_steps(
    ci_yaml: Path, ci_teacher: str, tmp_path: Path
) -> None:
    params_file = with_overrides(ci_yaml, tmp_path / "ddp.yaml", run_dir=str(tmp_path / "runs"))
    params = load_params(params_file)
    build(params, stage_named("01"))
    build(params, stage_named("02"))
    command = [
        sys.executable,
        *two_cpu_processes("distill", str(params_file), "--student", "DW-1-1", "--threshold", "none"),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    finished = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    result = json.loads(finished.stdout.strip().splitlines()[-1])
    assert result["status"] == "trained" and result["steps"] == params.distill.training.max_steps
    run = params.run_path / Path(result["model_dir"]).parent
    checkpoints = sorted((run / "checkpoints").glob("step-*"))
    state = json.loads((checkpoints[-1] / "state.json").read_text())
    assert state["step"] == params.distill.training.max_steps
    assert (
        state["scheduler"]["last_epoch"] == params.distill.training.max_steps
    )  # one scheduler step per optimiser step
    optimiser = load_file(str(checkpoints[-1] / "optimizer.safetensors"))
    assert {int(v.item()) for k, v in optimiser.items() if k.endswith(".step")} == {params.distill.training.max_steps}
    student = WhisperForConditionalGeneration.from_pretrained(run / "model", use_safetensors=True)
    assert (student.config.encoder_layers, student.config.decoder_layers) == (1, 1)
