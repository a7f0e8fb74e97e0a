"""The one set of "is this file whole" checks (`kdlib.storage.whole`): safetensors, Parquet, `datasets` folders,
checkpoints, and the discarding of what is not whole."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

from kdlib.storage import whole


def weights(path: Path) -> Path:
    save_file({"w": torch.arange(64, dtype=torch.float32)}, str(path))
    return path


def test_safetensors_are_whole_only_at_the_length_their_header_says(tmp_path: Path) -> None:
    path = weights(tmp_path / "model.safetensors")
    assert whole.safetensors_problem(path) is None
    data = path.read_bytes()
    path.write_bytes(data[:-10])
    assert whole.safetensors_problem(path) == f"{len(data) - 10} bytes where its header says {len(data)}"
    path.write_bytes(data[:40])  # the header itself cut short
    assert whole.safetensors_problem(path).startswith(("JSONDecodeError", "UnicodeDecodeError"))
    assert whole.safetensors_problem(tmp_path / "absent.safetensors").startswith("FileNotFoundError")


def test_parquet_and_dataset_folders(tmp_path: Path) -> None:
    path = tmp_path / "chunk.parquet"
    pd.DataFrame({"id": ["a", "b"]}).to_parquet(path)
    assert whole.parquet_problem(path) is None
    path.write_bytes(path.read_bytes()[:50])
    assert whole.parquet_problem(path)
    datasets.Dataset.from_dict({"x": [1]}).save_to_disk(str(tmp_path / "set"))
    assert whole.loads_from_disk(tmp_path / "set") and whole.dataset_problem(tmp_path / "set") is None
    (tmp_path / "set" / "state.json").unlink()
    assert not whole.loads_from_disk(tmp_path / "set")


def test_checkpoint_folders(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    for name in whole.HUB_CHECKPOINT:
        (folder / name).write_text("{}")
    assert whole.checkpoint_problem(folder) == "no safetensors file" and not whole.whole_checkpoint(folder)
    weights(folder / "model.safetensors")
    assert whole.checkpoint_problem(folder) is None and whole.whole_checkpoint(folder)
    (folder / "tokenizer.json").write_text('{"cut')
    assert whole.checkpoint_problem(folder).startswith("tokenizer.json: JSONDecodeError")
    (folder / "tokenizer.json").unlink()
    assert whole.checkpoint_problem(folder) == "no tokenizer.json"
    training = tmp_path / "step-0000002"
    training.mkdir()
    (training / "state.json").write_text(json.dumps({"step": 2}))
    weights(training / "model.safetensors")
    (training / "rng.safetensors").write_bytes(b"\x08")  # a write cut short
    assert whole.checkpoint_problem(training, ("state.json", "model.safetensors")).startswith("rng.safetensors: ")


def test_what_is_not_whole_is_named_and_removed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "model").mkdir()
    path = weights(tmp_path / "model" / "model.safetensors")
    assert whole.discard_unless_whole(path, whole.safetensors_problem, "the cached teacher", "making it again")
    assert not whole.discard_unless_whole(tmp_path / "absent", whole.safetensors_problem, "x", "y")
    path.write_bytes(path.read_bytes()[:-1])
    assert not whole.discard_unless_whole(
        path, whole.safetensors_problem, "the cached teacher", "making it again", tmp_path / "model"
    )
    assert f"the cached teacher {path} is unreadable (" in capsys.readouterr().err
    assert not (tmp_path / "model").exists()
    chunk = tmp_path / "chunk.parquet"
    chunk.write_bytes(b"PAR1")
    assert not whole.discard_unless_whole(chunk, whole.parquet_problem, "pseudo-label chunk", "labelling it again")
    assert not chunk.exists() and "): labelling it again" in capsys.readouterr().err
