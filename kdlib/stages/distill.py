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

Targets (`distill.targets`): the pseudo-label's text tokenised again (`text`), or the token ids the teacher
generated (`ids`, the authors'), made into labels as the authors' code does (`kdlib.models.targets`: one end token,
timestamps stripped unless kept, <|notimestamps|> inserted). With `distill.condition_on_prev_probability` a share
of the pairs gets the previous pair's text (the previous of the pairs λ's WER filter keeps, in pool order, within
the authors' preprocessing batches) as a <|startofprev|> prompt that is left out of the loss.
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
from kdlib.models.runtime import (
    compute_signature,
    cpu_only,
    parameter_count,
    prompt_ids,
    release_memory,
    resolve_device,
    target_ids,
)
from kdlib.models.students import layer_indices, make_student
from kdlib.models.targets import Specials, keeps_timestamps, teacher_label, with_prompts
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
    read_wer_kept_ids,
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


def target_texts(pairs: datasets.Dataset, probability: float, seed: int) -> list[str]:
    """Each pair's training target: the timestamped pseudo-label for the pairs `keeps_timestamps` picks
    (when the pseudo-labels have timestamps), else the plain pseudo-label."""
    if TIMESTAMPED not in pairs.column_names:
        return pairs["pseudo_label"]
    return [
        stamped if keeps_timestamps(clip_id, probability, seed) else plain
        for clip_id, plain, stamped in zip(pairs["id"], pairs["pseudo_label"], pairs[TIMESTAMPED])
    ]


def training_targets(
    params: Params, sources: datasets.Dataset, train_ids: list[str], processor, limit: int
) -> list[list[int]]:
    """The decoder sequence of each pair of `train_ids` (in that order): from the teacher's ids or the text
    (`distill.targets`), with previous-text prompts drawn among `sources`, the pairs the WER filter keeps in pool
    order (a prompted sequence stays shorter than `limit` tokens)."""
    distill = params.distill
    seed, stamps = distill.training.seed, distill.timestamp_probability
    specials = Specials.of(processor.tokenizer)
    if distill.targets == "ids":
        labels = [
            teacher_label(ids, keeps_timestamps(clip_id, stamps, seed), specials)
            for clip_id, ids in zip(sources["id"], sources["teacher_token_ids"])
        ]
    else:
        generation = params.pseudo_label.generation
        prompt = prompt_ids(processor, generation.language, generation.task)
        labels = [target_ids(processor, text, prompt) for text in target_texts(sources, stamps, seed)]
    sequences = with_prompts(
        labels,
        sources["id"],
        distill.condition_on_prev_probability,
        seed,
        limit,
        specials,
        distill.prompt_batch_size,
        distill.prompt_shards,
    )
    by_id = dict(zip(sources["id"], sequences))
    return [by_id[clip_id] for clip_id in train_ids]


def protocol_settings(params: Params, prompt_sources: list[str]) -> dict:
    """The target and prompt settings a student depends on, when they are not kdlib's defaults (text targets, no
    prompts): the key of a run that uses neither stays what it was before they existed."""
    distill, settings = params.distill, {}
    if distill.targets != "text":
        settings["targets"] = distill.targets
    if distill.condition_on_prev_probability > 0:
        settings.update(
            condition_on_prev_probability=distill.condition_on_prev_probability,
            prompt_batch_size=distill.prompt_batch_size,
            prompt_shards=distill.prompt_shards,
            max_label_tokens=params.filter.max_label_tokens,
            prompt_sources=fingerprint(prompt_sources),
        )
    return settings


def run_key(
    params: Params,
    teacher_digest: str,
    student: str,
    pool: str,
    threshold: float | None,
    train_ids: list[str],
    eval_ids: list[str],
    protocol: dict | None = None,
) -> str:
    """What a finished student depends on: teacher, its pool's pseudo-labels, its pairs and its recipe (not the
    cadence), and its `protocol_settings` when it has any."""
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
        *([protocol] if protocol else []),
    )


def distill_one(
    params: Params,
    student: str,
    threshold: float | None,
    pool: str | None = None,
    resume: bool = True,
    counter: str = "",
) -> DistillResult:
    """Distil one student on the pairs one threshold keeps of a pool (None: the default), or reuse the finished run.
    `counter` ("student 2/6") opens what the terminal shows of it."""
    pool = pool or params.data.default_pool
    name = run_name(student, pool, params.data.default_pool)
    title = f"{counter} {name} λ={threshold_label(threshold)}".strip()
    teacher_record = read_teacher(params)
    train_ids, eval_ids = read_training_ids(params, threshold, pool), read_split(params, pool)["eval"]
    prompt_sources = read_wer_kept_ids(params, threshold, pool)
    protocol = protocol_settings(params, prompt_sources)
    key = run_key(params, teacher_record["digest"], student, pool, threshold, train_ids, eval_ids, protocol)
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
            if state.is_main_process:
                print(f"{title}: trained before, reused", file=sys.stderr, flush=True)
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
        if state.is_main_process:
            print(f"{title}: {skipped}", file=sys.stderr, flush=True)
        return DistillResult(student, pool, label, skipped, None, 0, 0, 0, None, None, None)
    labels = read_pseudo_labels(params, pool)
    train_pairs, eval_pairs = rows_of(labels, train_ids), rows_of(labels, eval_ids)
    device = resolve_device(params.device)
    teacher = load_model(teacher_record["source"], device, params.pseudo_label.generation, name="teacher")
    model = make_student(teacher.model, student)
    generation = params.pseudo_label.generation
    if protocol:  # the teacher's ids, or previous-text prompts: sequences built here
        sources = rows_of(labels, prompt_sources) if params.distill.condition_on_prev_probability > 0 else train_pairs
        limit = params.filter.max_label_tokens or teacher.model.config.max_target_positions
        targets = training_targets(params, sources, train_pairs["id"], teacher.processor, limit)
        data = Seq2SeqData(train_pairs, None, teacher.processor, generation.language, generation.task, targets)
    else:  # the texts themselves: no column added to the pairs (that would write a copy of them)
        texts = target_texts(train_pairs, params.distill.timestamp_probability, params.distill.training.seed)
        data = Seq2SeqData(train_pairs, texts, teacher.processor, generation.language, generation.task)
    if params.distill.cache_teacher_logits:
        with state.main_process_first():
            data.teacher_logits = TeacherLogitCache(directory / "teacher_logits").build(teacher.model, data)

    def evaluate(current) -> dict[str, float]:
        if len(eval_pairs) == 0:
            return {}
        loaded = WhisperModel(student, str(directory), current, teacher.processor)
        transcripts = transcribe(
            loaded, eval_pairs, params.evaluate.generation, f"{title}: held-out pairs", leave=False
        )
        hypotheses = [t.text for t in transcripts]
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
        description=title,
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
    runs = [(run, threshold) for run in params.distill.runs for threshold in run.thresholds]
    for number, (run, threshold) in enumerate(runs, 1):
        results.append(distill_one(params, run.student, threshold, run.pool, counter=f"student {number}/{len(runs)}"))
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
