"""Model cards: a Hugging Face style `README.md` in the folder of each trained student and teacher.

The card's YAML front matter holds the hub's metadata (language, library, tags, base model, datasets,
metrics and, once stage 04 scored the model, a `model-index` of WER per test set) and, under `kdlib`,
the facts it was rendered from, so that stage 04 re-renders it with the scores added (`add_scores`).
A model's card is not part of the model: `kdlib.storage.cache.model_digest` leaves it out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from kdlib.config import Params, params_to_dict, parse_student, run_name
from kdlib.models.students import layer_indices
from kdlib.storage.cache import atomic_write_text

CARD = "README.md"
TAGS = ("automatic-speech-recognition", "whisper", "arabic", "kdlib")


@dataclass(frozen=True)
class CardFacts:
    """What a card says about one model (plain values: they are stored in the card itself)."""

    name: str  # "DW-16-16 λ=80" or "teacher"
    kind: str  # "student" or "teacher"
    profile: str
    datasets: list[str]  # the sets it learnt from: the distillation pool, or the teacher's training sets
    train_clips: int
    training: dict[str, Any]  # the training loop's params
    teacher: str | None = None  # a student's teacher: hub id, or where it was trained
    base_model: str | None = None  # the teacher's hub id, when it is one
    layers: dict[str, list[int]] = field(default_factory=dict)  # teacher layers a student copies, per side
    pool_clips: int | None = None
    eval_clips: int | None = None
    threshold: str | None = None  # λ, in percent or "none"
    loss: dict[str, float] = field(default_factory=dict)
    architecture: dict[str, Any] = field(default_factory=dict)  # a teacher trained here
    eval_wer: float | None = None  # on the held-out pairs, normalized view (fraction)
    test_wer: dict[str, float] = field(default_factory=dict)  # per test set (fraction), in `view`
    view: str | None = None
    data_key: str | None = None  # a teacher trained here: the content key of its training set
    training_seconds: float | None = None  # ... and how long its training took
    machine: str | None = None  # ... on which machine


def render_card(facts: CardFacts) -> str:
    """The card's text: front matter, then what the model is, what it learnt from, how, and how well."""
    front: dict[str, Any] = {
        "language": "ar",
        "library_name": "transformers",
        "pipeline_tag": "automatic-speech-recognition",
        "tags": [*TAGS, *(["knowledge-distillation"] if facts.kind == "student" else [])],
    }
    if facts.base_model:
        front["base_model"] = facts.base_model
    front.update(datasets=list(facts.datasets), metrics=["wer"])
    if facts.test_wer:
        front["model-index"] = [
            {"name": facts.name, "results": [_result(name, wer, facts.view) for name, wer in facts.test_wer.items()]}
        ]
    front["kdlib"] = asdict(facts)
    lines = ["---", yaml.safe_dump(front, allow_unicode=True, sort_keys=False).rstrip(), "---", ""]
    lines += [f"# {facts.name}", "", *_summary(facts), ""]
    if facts.loss:
        lines += ["## Loss", "", _table(facts.loss), ""]
    if facts.architecture:
        lines += ["## Architecture", "", _table(facts.architecture), ""]
    if facts.training:
        lines += ["## Training", "", _table(facts.training), ""]
    lines += ["## Results", ""]
    if facts.eval_wer is not None:
        lines += [
            f"WER on the {facts.eval_clips} held-out pool pairs (normalized view): {_percent(facts.eval_wer)}.",
            "",
        ]
    if facts.test_wer:
        lines += [f"WER per test set ({facts.view} view):", "", "| test set | WER |", "| --- | --- |"]
        lines += [f"| {name} | {_percent(wer)} |" for name, wer in facts.test_wer.items()]
    else:
        lines += ["WER per test set: not evaluated yet (stage 04 adds it)."]
    return "\n".join(lines) + "\n"


def student_facts(
    params: Params,
    student: str,
    pool: str,
    threshold: str,
    teacher: str,
    teacher_layers: tuple[int, int],
    pairs: tuple[int, int, int],
    eval_wer: float | None,
) -> CardFacts:
    """A distilled student's facts: its teacher (hub id or folder) and its layer counts, its pool, `pairs` =
    (pool clips, training pairs, held-out pairs), the held-out WER."""
    encoder, decoder = parse_student(student)
    local = Path(teacher).is_dir()
    made = {
        "train": f"a Whisper trained by kdlib (cache entry {Path(teacher).parent.name})",
        "random": f"a Whisper with random weights made by kdlib (cache entry {Path(teacher).parent.name})",
        "package": f"{params.teacher.model}, converted by kdlib from registry packages "
        f"(cache entry {Path(teacher).parent.name})",
    }
    described = made.get(params.teacher.source, f"the local model {Path(teacher).name}") if local else teacher
    return CardFacts(
        name=f"{run_name(student, pool, params.data.default_pool)} λ={threshold}",
        kind="student",
        profile=params.profile,
        datasets=[spec.name for spec in params.data.pool(pool)],
        train_clips=pairs[1],
        training=params_to_dict(params.distill.training),
        teacher=described,
        base_model=params.teacher.model if params.teacher.source == "package" else None if local else teacher,
        layers={
            "encoder": layer_indices(teacher_layers[0], encoder),
            "decoder": layer_indices(teacher_layers[1], decoder),
        },
        pool_clips=pairs[0],
        eval_clips=pairs[2],
        threshold=threshold,
        loss=params_to_dict(params.distill.loss),
        eval_wer=eval_wer,
    )


def teacher_facts(params: Params, train_clips: int) -> CardFacts:
    """The facts of a teacher trained here on `data.teacher_train` (`train_clips` clips)."""
    return CardFacts(
        name="teacher",
        kind="teacher",
        profile=params.profile,
        datasets=[spec.name for spec in params.data.teacher_train],
        train_clips=train_clips,
        training=params_to_dict(params.teacher.training),
        architecture=params_to_dict(params.teacher.architecture),
    )


def random_teacher_facts(params: Params) -> CardFacts:
    """The facts of a teacher with random weights (`teacher.source: random`): its architecture, no training."""
    return CardFacts(
        name="teacher",
        kind="teacher",
        profile=params.profile,
        datasets=[],
        train_clips=0,
        training={},
        architecture=params_to_dict(params.teacher.architecture),
    )


def write_card(folder: str | Path, facts: CardFacts) -> Path:
    """Write `folder/README.md` from `facts`, atomically."""
    path = Path(folder) / CARD
    atomic_write_text(path, render_card(facts))
    return path


def read_facts(folder: str | Path) -> CardFacts | None:
    """The facts of a kdlib card in `folder`; None when there is no card or it is not one of kdlib's."""
    path = Path(folder) / CARD
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8")
    _, front, *_ = text.split("---\n", 2) if text.startswith("---\n") else ("", "", "")
    try:
        facts = (yaml.safe_load(front) or {}).get("kdlib")
        return CardFacts(**facts) if isinstance(facts, Mapping) else None
    except (yaml.YAMLError, TypeError, AttributeError):
        return None


def add_scores(folder: str | Path, test_wer: Mapping[str, float], view: str) -> bool:
    """Re-render the kdlib card in `folder` with the WER per test set; False when there is no such card."""
    facts = read_facts(folder)
    if facts is None:
        return False
    write_card(folder, replace(facts, test_wer={name: float(wer) for name, wer in test_wer.items()}, view=view))
    return True


def _summary(facts: CardFacts) -> list[str]:
    datasets = ", ".join(facts.datasets)
    if facts.kind == "teacher" and not facts.train_clips:
        return [
            f"A Whisper-architecture model with random weights and Whisper's multilingual tokenizer, made by kdlib "
            f"(profile `{facts.profile}`) for a dry run at these shapes. It has learnt nothing: its transcripts "
            "are noise.",
        ]
    if facts.kind == "teacher":
        return [
            f"A Whisper-architecture model trained from scratch by kdlib (profile `{facts.profile}`) on "
            f"{datasets}: {facts.train_clips} clips. It is the teacher its students are distilled from.",
            *(["", f"- **Training set (content key):** `{facts.data_key}`"] if facts.data_key else []),
            *(
                [f"- **Training time:** {facts.training_seconds / 60:.1f} min on {facts.machine}"]
                if facts.training_seconds
                else []
            ),
        ]
    sides = ", ".join(f"{side} layers {indices}" for side, indices in facts.layers.items())
    return [
        f"A student distilled by kdlib (profile `{facts.profile}`), reproducing arXiv 2406.04512.",
        "",
        f"- **Teacher (base model):** {facts.teacher}",
        f"- **Teacher layers copied:** {sides or 'unknown'}; everything else (front end, embeddings, "
        "final layer norms) is copied from the teacher too",
        f"- **Pool:** {datasets}, {facts.pool_clips} clips pseudo-labelled by the teacher",
        f"- **λ:** {facts.threshold} (pairs whose pseudo-label WER is at most λ % are kept): "
        f"{facts.train_clips} training pairs, {facts.eval_clips} held out",
    ]


def _result(dataset: str, wer: float, view: str | None) -> dict[str, Any]:
    return {
        "task": {"type": "automatic-speech-recognition", "name": "Automatic Speech Recognition"},
        "dataset": {"name": dataset, "type": dataset},
        "metrics": [{"type": "wer", "value": round(100 * wer, 2), "name": f"WER ({view})"}],
    }


def _table(values: Mapping[str, Any]) -> str:
    rows = [f"| {key} | {_plain(value)} |" for key, value in values.items()]
    return "\n".join(["| param | value |", "| --- | --- |", *rows])


def _plain(value: Any) -> str:
    return ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def _percent(fraction: float) -> str:
    return f"{100 * fraction:.2f} %"
