"""Stage 03: distil DW-e-d students from the teacher on the pseudo-labels kept by each threshold λ,
each from the pool its run names (`distill.runs[].pool`; the default pool when none).

Loss = kl_weight · KL(teacher ‖ student) at temperature T (teacher logits on the pseudo-label as
decoder input, computed on the fly or, with `cache_teacher_logits`, once and kept on disk)
+ ce_weight · CE on the pseudo-labels (+ hidden_weight · MSE of the last hidden states). The
pool's held-out pairs of stage 02 (the same for every student and λ) give the periodic eval
WER against the references. Runs under `accelerate launch` (`kdlib distill PARAMS [--student
DW-2-2 --threshold 80]`); every run is resumable from its last checkpoint and cached by its
inputs once finished (the logging and checkpoint cadence and the list of runs are not inputs:
adding a student retrains no other). The students of `distill.count_only` are built from the teacher and
counted, not trained (a dry run at the paper's shapes counts DW-16-16 and DW-32-16 on a CPU that cannot
train them). Products (`kdlib.storage.paths`): `students.json`, `student_sizes.csv`.

With timestamped pseudo-labels (`pseudo_label.generation.return_timestamps`), a share
`distill.timestamp_probability` of the pairs (drawn per clip id and seed, so a clip gets the same target
at every λ) is trained on the timestamped token sequence, its prompt without `<|notimestamps|>`, and the
rest on the plain text, as distil-whisper does; the KL term follows the same target tokens.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import datasets
import pandas as pd
import torch
from accelerate import PartialState
from transformers import WhisperConfig

from kdlib.config import Params, parse_student, run_name, threshold_label
from kdlib.models.cards import student_facts, write_card
from kdlib.models.families import WhisperModel, load_model
from kdlib.models.runtime import compute_signature, cpu_only, parameter_count, release_memory, resolve_device
from kdlib.models.students import layer_indices, make_student
from kdlib.models.training import Seq2SeqData, TeacherLogitCache, recipe, train
from kdlib.models.transcription import transcribe
from kdlib.scoring.metrics import corpus_scores
from kdlib.stages.products import (
    TIMESTAMPED,
    pseudo_label_key,
    read_pseudo_labels,
    read_split,
    read_teacher,
    read_training_ids,
)
from kdlib.storage.cache import atomic_write_json, atomic_write_text, fingerprint
from kdlib.storage.paths import RunLayout, from_run, in_run


@dataclass(frozen=True)
class DistillResult:
    student: str
    pool: str
    threshold: str
    status: str  # "trained" or why not
    model_dir: str | None
    train_pairs: int
    eval_pairs: int
    steps: int
    final_loss: float | None
    eval_wer: float | None
    parameters: int | None


def rows_of(dataset: datasets.Dataset, ids: list[str]) -> datasets.Dataset:
    """The rows of `dataset` whose id is in `ids`, in the dataset's order."""
    wanted = set(ids)  # an indices mapping kept in memory: nothing is written beside the prepared set's files
    return dataset.select([i for i, clip_id in enumerate(dataset["id"]) if clip_id in wanted], keep_in_memory=True)


def keeps_timestamps(clip_id: str, probability: float, seed: int) -> bool:
    """Whether a pair is trained on its timestamped pseudo-label: a draw fixed by the clip's id and the seed."""
    return int(fingerprint("timestamps", seed, clip_id), 16) / 16**16 < probability


def target_texts(pairs: datasets.Dataset, probability: float, seed: int) -> list[str]:
    """Each pair's training target: the timestamped pseudo-label for the pairs `keeps_timestamps` picks
    (when the pseudo-labels have timestamps), else the plain pseudo-label."""
    if TIMESTAMPED not in pairs.column_names:
        return pairs["pseudo_label"]
    return [
        stamped if keeps_timestamps(clip_id, probability, seed) else plain
        for clip_id, plain, stamped in zip(pairs["id"], pairs["pseudo_label"], pairs[TIMESTAMPED])
    ]


def run_key(
    params: Params,
    teacher_digest: str,
    student: str,
    pool: str,
    threshold: float | None,
    train_ids: list[str],
    eval_ids: list[str],
) -> str:
    """What a finished student depends on: teacher, its pool's pseudo-labels, its pairs and its recipe (not the
    cadence)."""
    return fingerprint(
        "distill-v5",
        compute_signature(params.device),  # what the trained bytes depend on besides (threads, device, platform)
        teacher_digest,
        pseudo_label_key(params, pool),
        student,
        threshold,
        fingerprint(train_ids),
        fingerprint(eval_ids),
        recipe(params.distill.training),
        params.distill.loss,
        params.distill.cache_teacher_logits,
        params.distill.timestamp_probability,
        params.normalization,
        params.evaluate.generation,
    )


def distill_one(
    params: Params, student: str, threshold: float | None, pool: str | None = None, resume: bool = True
) -> DistillResult:
    """Distil one student on the pairs one threshold keeps of a pool (None: the default), or reuse the finished run."""
    pool = pool or params.data.default_pool
    name = run_name(student, pool, params.data.default_pool)
    teacher_record = read_teacher(params)
    train_ids, eval_ids = read_training_ids(params, threshold, pool), read_split(params, pool)["eval"]
    key = run_key(params, teacher_record["digest"], student, pool, threshold, train_ids, eval_ids)
    directory = RunLayout(params).student_work(name, threshold, key)
    result_file = directory / "result.json"
    state = PartialState(cpu=cpu_only(params.device))
    if not resume and state.is_main_process:  # start from scratch: forget the finished result and checkpoints
        result_file.unlink(missing_ok=True)
        shutil.rmtree(directory / "checkpoints", ignore_errors=True)
    state.wait_for_everyone()
    if result_file.exists():
        finished = DistillResult(**json.loads(result_file.read_text()))
        if finished.model_dir is None or (from_run(params, finished.model_dir) / "model.safetensors").is_file():
            return finished
        if state.is_main_process:  # its model folder was deleted: trained again (from its last checkpoint, if any)
            print(
                f"the model of {name} λ={finished.threshold} is missing from {directory.name}: training it again",
                file=sys.stderr,
                flush=True,
            )
            result_file.unlink(missing_ok=True)
    label = threshold_label(threshold)
    if not train_ids:
        skipped = f"skipped: λ={label} keeps no pairs"
        return DistillResult(student, pool, label, skipped, None, 0, 0, 0, None, None, None)
    labels = read_pseudo_labels(params, pool)
    train_pairs, eval_pairs = rows_of(labels, train_ids), rows_of(labels, eval_ids)
    targets = target_texts(train_pairs, params.distill.timestamp_probability, params.distill.training.seed)
    device = resolve_device(params.device)
    teacher = load_model(teacher_record["source"], device, params.pseudo_label.generation, name="teacher")
    model = make_student(teacher.model, student)
    generation = params.pseudo_label.generation
    data = Seq2SeqData(train_pairs, targets, teacher.processor, generation.language, generation.task)
    if params.distill.cache_teacher_logits:
        with state.main_process_first():
            data.teacher_logits = TeacherLogitCache(directory / "teacher_logits").build(teacher.model, data)

    def evaluate(current) -> dict[str, float]:
        if len(eval_pairs) == 0:
            return {}
        loaded = WhisperModel(student, str(directory), current, teacher.processor)
        hypotheses = [t.text for t in transcribe(loaded, eval_pairs, params.evaluate.generation, "eval")]
        return {"wer": corpus_scores(eval_pairs["text"], hypotheses, "normalized", params.normalization)["wer"]}

    outcome = train(
        model,
        teacher.processor,
        data,
        params.distill.training,
        directory,
        loss=params.distill.loss,
        teacher=teacher.model,
        evaluate=evaluate,
        device=params.device,
        resume=resume,
        description=f"{name} λ={label}",
        workers=params.data.loader_workers,
    )
    eval_wer = next((row["eval_wer"] for row in reversed(outcome.history) if "eval_wer" in row), None)
    result = DistillResult(
        student,
        pool,
        label,
        "trained",
        in_run(params, outcome.model_dir),
        len(train_pairs),
        len(eval_pairs),
        outcome.steps,
        outcome.final_loss,
        eval_wer,
        parameter_count(model),
    )
    if state.is_main_process:
        facts = student_facts(
            params,
            student,
            pool,
            label,
            teacher_record["source"],
            (teacher.model.config.encoder_layers, teacher.model.config.decoder_layers),
            (len(labels), len(train_pairs), len(eval_pairs)),
            eval_wer,
        )
        write_card(outcome.model_dir, facts)
        atomic_write_json(result_file, asdict(result))
    return result


def student_sizes(params: Params, results: list[DistillResult]) -> pd.DataFrame:
    """Parameters and copied teacher layers of every trained student and of each one of `distill.count_only`,
    which is built from the teacher (on the CPU, in float32) only to be counted."""
    rows = {}
    for result in results:
        if result.parameters is not None:
            rows.setdefault(result.student, {"parameters": result.parameters, "trained": True})
    counted = [name for name in dict.fromkeys(params.distill.count_only) if name not in rows]
    columns = ["student", "parameters", "trained", "encoder layers", "decoder layers"]
    if not rows and not counted:
        return pd.DataFrame(columns=columns)
    source = read_teacher(params)["source"]
    if counted:
        teacher = load_model(source, torch.device("cpu"), params.pseudo_label.generation, name="teacher").model
        for name in counted:
            rows[name] = {"parameters": parameter_count(make_student(teacher, name)), "trained": False}
            release_memory()
        config = teacher.config
        del teacher
        release_memory()
    else:
        config = WhisperConfig.from_pretrained(source)
    layers = (config.encoder_layers, config.decoder_layers)
    table = []
    for name, row in rows.items():
        encoder, decoder = parse_student(name)
        table.append(
            {
                "student": name,
                "parameters": row["parameters"],
                "trained": row["trained"],
                "encoder layers": layer_indices(layers[0], encoder),
                "decoder layers": layer_indices(layers[1], decoder),
            }
        )
    return pd.DataFrame(table, columns=columns)


def build(params: Params) -> dict | None:
    """Stage 03: every (student, pool, λ) run that params list, in order; their records and the students' sizes
    (main process)."""
    results = []
    for run in params.distill.runs:
        for threshold in run.thresholds:
            results.append(distill_one(params, run.student, threshold, run.pool))
            release_memory()  # the trained student, its gradients and optimiser states, before the next one
    if not PartialState(cpu=cpu_only(params.device)).is_main_process:
        return None
    layout = RunLayout(params)
    sizes = student_sizes(params, results)
    atomic_write_json(layout.students, [asdict(result) for result in results])
    atomic_write_text(layout.student_sizes, sizes.to_csv(index=False))
    default = params.data.default_pool
    return {
        "runs": len(results),
        "trained": sum(r.status == "trained" for r in results),
        "students": [f"{run_name(r.student, r.pool, default)}-lambda{r.threshold}:{r.status}" for r in results],
        "models": [Path(r.model_dir).parent.name for r in results if r.model_dir],
        "parameters": dict(zip(sizes["student"], sizes["parameters"].astype(int).tolist())),
    }
