"""Stage 03: distil DW-e-d students from the teacher on the pseudo-labels kept by each threshold λ.

Loss = kl_weight · KL(teacher ‖ student) at temperature T (teacher logits on the pseudo-label as
decoder input, computed on the fly or, with `cache_teacher_logits`, once and kept on disk) + ce_weight · CE on the pseudo-labels
(+ hidden_weight · MSE of the last hidden states). A held-out share of the kept pairs
gives the periodic eval WER (against the references). Runs under `accelerate launch`
(`python -m kdlib.distill PARAMS [--student DW-2-2 --threshold 80]`); every run is
resumable from its last checkpoint and cached by its inputs once finished (the logging and
checkpoint cadence and the list of runs are not inputs: adding a student retrains no other).
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import datasets
import torch
from accelerate import PartialState

from kdlib.cache import atomic_write_json, fingerprint
from kdlib.config import Params, load_params, threshold_label
from kdlib.families import WhisperModel, load_model
from kdlib.filtering import load_filtered
from kdlib.metrics import corpus_scores
from kdlib.models import cpu_only, parameter_count, resolve_device
from kdlib.pseudo_label import latest_labels, teacher_digest
from kdlib.students import make_student
from kdlib.teacher import teacher_source
from kdlib.text import NormalizationConfig
from kdlib.training import Seq2SeqData, TeacherLogitCache, TrainingConfig, train
from kdlib.transcribe import transcribe


@dataclass(frozen=True)
class DistillResult:
    student: str
    threshold: str
    status: str  # "trained" or why not
    model_dir: str | None
    train_pairs: int
    eval_pairs: int
    steps: int
    final_loss: float | None
    eval_wer: float | None
    parameters: int | None


def training_config(params: Params) -> TrainingConfig:
    """The training loop's settings: the distillation params of the same names, plus context."""
    shared = {f.name: getattr(params.distill, f.name) for f in fields(TrainingConfig) if hasattr(params.distill, f.name)}
    generation = params.pseudo_label.generation
    return TrainingConfig(**shared, language=generation.language, task=generation.task, device=params.device)


def split_eval(pairs: datasets.Dataset, fraction: float, seed: int) -> tuple[datasets.Dataset, datasets.Dataset]:
    """A seeded held-out share of the kept pairs (at least one when there are two or more)."""
    n_eval = min(max(round(len(pairs) * fraction), 1 if len(pairs) > 1 else 0), len(pairs) - 1)
    order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(seed)).tolist()
    return pairs.select(sorted(order[n_eval:])), pairs.select(sorted(order[:n_eval]))


def run_dir(params: Params, student: str, threshold: float | None, key: str) -> Path:
    return params.run_path / "students" / f"{student}-lambda{threshold_label(threshold)}-{key}"


def distill_one(params: Params, student: str, threshold: float | None, resume: bool = True) -> DistillResult:
    """Distil one student on the pairs kept by one threshold (or reuse the finished run)."""
    labels_dir = latest_labels(params)
    teacher_path = teacher_source(params)
    recipe = replace(training_config(params), log_every=0, eval_every=0, save_every=0, keep_checkpoints=0)
    key = fingerprint(
        "distill-v2", teacher_digest(teacher_path), str(labels_dir), student, threshold, recipe,
        params.distill.eval_fraction, params.distill.cache_teacher_logits, params.normalization,
    )
    directory = run_dir(params, student, threshold, key)
    result_file = directory / "result.json"
    state = PartialState(cpu=cpu_only(params.device))
    if not resume and state.is_main_process:  # start from scratch: forget the finished result and checkpoints
        result_file.unlink(missing_ok=True)
        shutil.rmtree(directory / "checkpoints", ignore_errors=True)
    state.wait_for_everyone()
    if result_file.exists():
        return DistillResult(**json.loads(result_file.read_text()))
    with state.main_process_first():
        kept = load_filtered(labels_dir, threshold)
    train_pairs, eval_pairs = split_eval(kept, params.distill.eval_fraction, params.distill.seed)
    label = threshold_label(threshold)
    if len(train_pairs) == 0:
        return DistillResult(student, label, f"skipped: λ={label} keeps no pairs", None, 0, 0, 0, None, None, None)
    device = resolve_device(params.device)
    teacher = load_model(teacher_path, device, params.pseudo_label.generation, name="teacher")
    model = make_student(teacher.model, student)
    config = training_config(params)
    data = Seq2SeqData(train_pairs, "pseudo_label", teacher.processor, config.language, config.task)
    if params.distill.cache_teacher_logits:
        with state.main_process_first():
            data.teacher_logits = TeacherLogitCache(directory / "teacher_logits").build(teacher.model, data)
    normalization = NormalizationConfig.from_dict(params.normalization)

    def evaluate(current) -> dict[str, float]:
        if len(eval_pairs) == 0:
            return {}
        loaded = WhisperModel(student, str(directory), current, teacher.processor)
        hypotheses = [t.text for t in transcribe(loaded, eval_pairs, params.evaluate.generation, "eval")]
        return {"wer": corpus_scores(eval_pairs["text"], hypotheses, "normalized", normalization)["wer"]}

    outcome = train(model, teacher.processor, data, config, directory, teacher=teacher.model, evaluate=evaluate, resume=resume, description=f"{student} λ={label}")
    eval_wer = next((row["eval_wer"] for row in reversed(outcome.history) if "eval_wer" in row), None)
    result = DistillResult(
        student, label, "trained", str(outcome.model_dir), len(train_pairs), len(eval_pairs), outcome.steps, outcome.final_loss, eval_wer, parameter_count(model)
    )
    if state.is_main_process:
        atomic_write_json(result_file, asdict(result))
    return result


def distill_all(params: Params) -> list[DistillResult]:
    """Every (student, λ) run that params list, in order."""
    return [distill_one(params, run.student, threshold) for run in params.distill.runs for threshold in run.thresholds]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("params", help="params YAML file")
    parser.add_argument("--student", help="one student (e.g. DW-2-2); default: every run in params")
    parser.add_argument("--threshold", help="with --student: the λ in percent, or 'none'")
    parser.add_argument("--no-resume", action="store_true", help="start from scratch, ignoring checkpoints")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    if args.student:
        threshold = None if args.threshold in (None, "none") else float(args.threshold)
        results = [distill_one(params, args.student, threshold, resume=not args.no_resume)]
    else:
        results = distill_all(params)
    if PartialState().is_main_process:
        print(json.dumps([asdict(r) for r in results], indent=1))


if __name__ == "__main__":
    main()
