"""Whether what a current stage's products point to is still there: the prepared sets, the teacher and the
pseudo-labels of stage 01 (the shared cache may have been wiped), the student models of stage 03 (a model
folder may have been deleted). `kdlib.pipeline.graph.staleness` calls these through `Stage.check`: a product
that is gone makes its stage stale, so the plan rebuilds it and a reader says which stage to run, instead of
a crash later. Only file system checks: no model or dataset is loaded (the plan stays quick).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kdlib.config import Params
from kdlib.storage.paths import RunLayout, absolute, from_run, relative

WEIGHTS = ("model.safetensors", "model.safetensors.index.json")  # a checkpoint's weights: one file, or shards


def _records(path: Path) -> Any:
    """A product's JSON, or None when it cannot be read (the manifest check names a missing product)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _has_weights(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any((folder / name).is_file() for name in WEIGHTS)


def pseudo_label_products_gone(params: Params) -> str | None:
    """Stage 01: a prepared set, the teacher folder or a pool's pseudo-labels that its products name, gone."""
    layout = RunLayout(params)
    for entry in _records(layout.corpora) or []:
        folder = absolute(params, entry["path"])
        if not (folder / "prepared.json").is_file():
            return f"the prepared set {entry['name']} is gone from the cache ({relative(params, folder)}): rebuilt"
    teacher = _records(layout.teacher) or {}
    if teacher.get("kind", "hub") != "hub":
        folder = absolute(params, teacher["source"])
        if not _has_weights(folder):
            return f"the teacher's weights are gone from {relative(params, folder)}: rebuilt"
    for pool, record in (_records(layout.pseudo_labels) or {}).items():
        if not from_run(params, record["path"]).is_file():
            return f"the pseudo-labels of pool {pool!r} are gone ({relative(params, from_run(params, record['path']))})"
    return None


def student_models_gone(params: Params) -> str | None:
    """Stage 03: the model folder of a trained student, gone (it is trained again, from its last checkpoint)."""
    for record in _records(RunLayout(params).students) or []:
        if record.get("model_dir") is None:
            continue
        folder = from_run(params, record["model_dir"])
        if not _has_weights(folder):
            label = f"{record['student']} λ={record['threshold']}"
            return f"the model folder {relative(params, folder)} of {label} is missing: it is trained again"
    return None
