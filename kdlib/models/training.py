"""The sequence-to-sequence training loop shared by the teacher (CE only) and the students (KL + CE).

Both are configured by one `TrainingParams` section (and the students by a `LossParams`).

Runs on `accelerate` (DDP on many GPUs or nodes, bf16 on a GPU, gradient accumulation).
The data order is a pure function of (seed, epoch, rank), so a checkpoint needs only the
step counter to know where the data stands; checkpoints hold the model (safetensors), the
optimiser and scheduler states (safetensors + JSON) and the RNG states, nothing pickled,
and `resume=True` continues exactly where the last complete checkpoint stopped (bit-exact in
float32 and bf16; with fp16 the loss scaler restarts, and each rank resumes from rank 0's RNG).
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import datasets
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.state import AcceleratorState, PartialState
from safetensors.torch import load_file, load_model, save_file, save_model
from transformers import WhisperForConditionalGeneration, WhisperProcessor, get_scheduler

from kdlib.config import LossParams, TrainingParams
from kdlib.corpus.audio import decode
from kdlib.corpus.loader import MappedRows, WaitClock, planned_loader
from kdlib.models.runtime import cpu_only, prompt_ids, target_ids
from kdlib.models.targets import prompt_mask_end
from kdlib.storage.cache import atomic_directory, atomic_write_json, replacing_file
from kdlib.storage.progress import progress
from kdlib.storage.whole import checkpoint_problem

IGNORE = -100


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is left as it was."""


CE_ONLY = LossParams(kl_weight=0.0, ce_weight=1.0, hidden_weight=0.0, temperature=1.0)  # the teacher's loss


@dataclass
class TrainingResult:
    model_dir: Path
    steps: int
    final_loss: float
    history: list[dict] = field(default_factory=list)


def kl_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, mask: torch.Tensor, temperature: float
) -> torch.Tensor:
    """KL(teacher ‖ student) of the token distributions at temperature T, times T², over unmasked tokens.

    With `F.kl_div`'s semantics, those of the authors' `nn.KLDivLoss` (`xlogy(p, p) − p · log q`): a token the
    teacher gives probability 0 (a −inf logit, e.g. a suppressed token) adds 0, where `p · (log p − log q)` alone
    gives 0 · −inf = NaN. Elsewhere the terms are `p · (log p − log q)` with `p = exp(log p)`, as before that
    case was handled, so that finite logits give bit for bit the loss and gradients they gave then."""
    student_log = F.log_softmax(student_logits.float() / temperature, dim=-1)
    teacher_log = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    teacher_prob = teacher_log.exp()
    terms = torch.where(teacher_prob > 0, teacher_prob * (teacher_log - student_log), 0.0)
    per_token = terms.sum(-1)
    return (per_token * mask).sum() / mask.sum().clamp(min=1) * temperature**2


def ce_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Token cross-entropy against the labels (IGNORE positions left out)."""
    return F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=IGNORE)


def hidden_loss(student_out, teacher_out) -> torch.Tensor:
    """MSE between the last encoder and last decoder hidden states of student and teacher."""
    return F.mse_loss(
        student_out.encoder_last_hidden_state.float(), teacher_out.encoder_last_hidden_state.float()
    ) + F.mse_loss(student_out.decoder_hidden_states[-1].float(), teacher_out.decoder_hidden_states[-1].float())


def epoch_order(size: int, seed: int, epoch: int) -> list[int]:
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(size, generator=generator).tolist()


def micro_batch(size: int, batch_size: int, world: int, rank: int, seed: int, micro: int) -> list[int]:
    """Rows of this rank's `micro`-th batch: a pure function of its arguments (drop-last epochs)."""
    if size == 0:
        raise ValueError("cannot train on an empty set")
    global_batch = batch_size * world
    per_epoch = max(size // global_batch, 1)
    epoch, position = divmod(micro, per_epoch)
    order = epoch_order(size, seed, epoch)
    if size < global_batch:  # fewer rows than one global batch: cycle, so that every rank has rows
        return [order[i % size] for i in range(global_batch)][rank::world]
    rows = order[position * global_batch : (position + 1) * global_batch]
    return rows[rank::world]


class Seq2SeqData:
    """Audio and target transcripts of a training set, turned into model inputs on demand.

    Each row's decoder sequence is its `target_column` text tokenised after Whisper's prompt, or given whole in
    `targets` (the teacher's ids as the authors build labels, `kdlib.models.targets`). A sequence that starts with
    a previous-text prompt (<|startofprev|> … <|startoftranscript|>) has the prompt left out of the loss."""

    def __init__(
        self,
        dataset: datasets.Dataset,
        target_column: str | Sequence[str] | None,
        processor: WhisperProcessor,
        language: str,
        task: str,
        targets: Sequence[Sequence[int]] | None = None,
    ):
        """`target_column`: the column of the target transcripts, or the transcripts themselves (one per row: no
        column is added to the dataset, which would write a copy of a selection's rows beside its files)."""
        self.dataset = dataset
        self.source = MappedRows(dataset)
        self.processor = processor
        if targets is None:
            prompt = prompt_ids(processor, language, task)
            texts = dataset[target_column] if isinstance(target_column, str) else list(target_column or ())
            if len(texts) != len(dataset):
                raise ValueError(f"{len(texts)} target transcripts for {len(dataset)} rows")
            self.targets = [target_ids(processor, text, prompt) for text in texts]
        else:
            if len(targets) != len(dataset):
                raise ValueError(f"{len(targets)} target sequences for {len(dataset)} rows")
            self.targets = [list(sequence) for sequence in targets]
        self.start = processor.tokenizer.convert_tokens_to_ids("<|startoftranscript|>")
        self.teacher_logits: TeacherLogitCache | None = None  # when set, batches carry the teacher's logits

    def __len__(self) -> int:
        return len(self.dataset)

    def batch(self, rows: list[int], device: torch.device) -> dict[str, torch.Tensor]:
        """The rows' model inputs on `device`."""
        return {name: tensor.to(device) for name, tensor in self.read(rows).items()}

    def read(self, rows: list[int]) -> dict[str, torch.Tensor]:
        """The rows' model inputs on the CPU: log-mel features, decoder inputs, labels (and teacher logits)."""
        extractor = self.processor.feature_extractor
        clips = [decode(audio, extractor.sampling_rate).samples for audio in self.source.rows(rows, ["audio"])["audio"]]
        features = extractor(clips, sampling_rate=extractor.sampling_rate, return_tensors="pt").input_features
        sequences = [self.targets[row] for row in rows]
        width = max(len(sequence) for sequence in sequences) - 1
        inputs = torch.full((len(rows), width), self.processor.tokenizer.eos_token_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
        for i, sequence in enumerate(sequences):
            inputs[i, : len(sequence) - 1] = torch.tensor(sequence[:-1])
            labels[i, : len(sequence) - 1] = torch.tensor(sequence[1:])
            labels[i, : prompt_mask_end(sequence[1:], self.start)] = IGNORE  # a previous-text prompt: no loss
        batch = {"input_features": features, "decoder_input_ids": inputs, "labels": labels}
        if self.teacher_logits is not None:
            batch["teacher_logits"] = self.teacher_logits.batch(rows, width)
        return batch


class TeacherLogitCache:
    """The teacher's logits on every training row, computed once and kept on disk (float16).

    Each row's logits over the full vocabulary (one file per row, safetensors) are what the
    KL term needs, so the teacher need not run during training. The cost is
    vocabulary × 2 bytes per target token: right for small pools and vocabularies (tiny);
    at the paper's scale (51,865 tokens) compute the teacher's logits on the fly instead.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def path(self, row: int) -> Path:
        return self.directory / f"row-{row:07d}.safetensors"

    @torch.inference_mode()
    def build(
        self, teacher: WhisperForConditionalGeneration, data: Seq2SeqData, batch_size: int = 16
    ) -> TeacherLogitCache:
        """Compute the missing rows' logits (resumable: rows already on disk are skipped)."""
        missing = [row for row in range(len(data)) if not self.path(row).exists()]
        device = next(teacher.parameters()).device
        starts = range(0, len(missing), batch_size)
        for start in progress(starts, desc="caching teacher logits", unit="batch", disable=not missing):
            rows = missing[start : start + batch_size]
            batch = data.batch(rows, device)
            logits = teacher(
                input_features=batch["input_features"].to(teacher.dtype), decoder_input_ids=batch["decoder_input_ids"]
            ).logits
            for i, row in enumerate(rows):
                length = len(data.targets[row]) - 1
                with replacing_file(self.path(row)) as temporary:
                    save_file({"logits": logits[i, :length].to(torch.float16).cpu().contiguous()}, str(temporary))
        return self

    def batch(self, rows: list[int], width: int) -> torch.Tensor:
        """The rows' logits, padded to `width` target positions (padding is masked in the loss)."""
        tensors = [load_file(str(self.path(row)))["logits"] for row in rows]
        padded = torch.zeros(len(rows), width, tensors[0].shape[-1])
        for i, tensor in enumerate(tensors):
            padded[i, : len(tensor)] = tensor.float()
        return padded


def recipe(settings: TrainingParams) -> dict[str, Any]:
    """The settings that shape a trained model (a content key's part): not the cadence of logs,
    evaluations and checkpoints, nor the trackers the logs go to (nor a null `global_batch_size`, so that the
    recipes from before it existed keep their keys)."""
    cadence = {"log_every": 1, "eval_every": 0, "save_every": 0, "keep_checkpoints": 1}
    settings_dict = {key: value for key, value in {**asdict(settings), **cadence}.items() if key != "log_with"}
    if settings.global_batch_size is None:
        del settings_dict["global_batch_size"]
    return settings_dict


def accumulation_steps(settings: TrainingParams, world: int) -> int:
    """Micro-batches per optimiser step on `world` processes: `gradient_accumulation_steps`, or when
    `global_batch_size` is set, global / (batch_size × processes), which must be a whole number."""
    if settings.global_batch_size is None:
        return settings.gradient_accumulation_steps
    per_micro_batch = settings.batch_size * world
    if settings.global_batch_size % per_micro_batch:
        raise ValueError(
            f"training.global_batch_size {settings.global_batch_size} is not a multiple of batch_size × processes "
            f"= {settings.batch_size} × {world}: choose a global batch, batch_size or number of processes that divide"
        )
    return settings.global_batch_size // per_micro_batch


def training_steps(settings: TrainingParams, size: int, world: int) -> int:
    """Optimiser steps of a run: `max_steps`, or `epochs` passes over `size` clips: with `global_batch_size`, as
    the authors count them, ⌊size / global⌋ steps per epoch; else drop-last epochs of `batch_size` clips per
    process, `gradient_accumulation_steps` micro-batches per step. Never fewer than one."""
    if settings.epochs is None:
        return settings.max_steps
    if settings.global_batch_size is not None:
        return max(int(size // settings.global_batch_size * settings.epochs), 1)
    micro_batches = max(size // (settings.batch_size * world), 1)
    return max(math.ceil(settings.epochs * micro_batches / settings.gradient_accumulation_steps), 1)


def mixed_precision(preference: str) -> str:
    if preference == "auto":
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    return preference


@contextlib.contextmanager
def deterministic_kernels(enabled: bool) -> Iterator[None]:
    """Deterministic algorithms (if `enabled`) and flushed denormals for the block; torch's previous
    settings after it (flush-denormal has no getter: it is switched back off, torch's default)."""
    previous = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    torch.set_flush_denormal(True)  # denormal floats slow CPU matmuls many times over
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        torch.set_flush_denormal(False)


def train(
    student: WhisperForConditionalGeneration,
    processor: WhisperProcessor,
    data: Seq2SeqData,
    settings: TrainingParams,
    output_dir: Path,
    *,
    loss: LossParams = CE_ONLY,
    teacher: WhisperForConditionalGeneration | None = None,
    evaluate: Callable[[WhisperForConditionalGeneration], dict[str, float]] | None = None,
    device: str = "auto",
    resume: bool = True,
    description: str = "training",
    until_step: int | None = None,
    workers: int | None = 0,
) -> TrainingResult:
    """Train `student` for `training_steps(settings, ...)` optimiser steps; write `output_dir/model` when done.

    `until_step` stops early (after checkpointing), as a time-boxed or preempted job would;
    a later call with `resume=True` continues the same schedule exactly. `workers` loader processes
    read the micro-batches ahead of the loop (`kdlib.corpus.loader`; None: one fewer than the cores).
    """
    with deterministic_kernels(settings.deterministic):
        return _train(
            student,
            processor,
            data,
            settings,
            Path(output_dir),
            loss,
            teacher,
            evaluate,
            device,
            resume,
            description,
            until_step,
            workers,
        )


def _train(
    student,
    processor,
    data,
    settings,
    output_dir,
    loss,
    teacher,
    evaluate,
    device,
    resume,
    description,
    until_step,
    workers,
) -> TrainingResult:
    # set-up: accelerator (DDP, mixed precision, accumulation), optimiser, schedule, teacher on the device
    precision = mixed_precision(settings.mixed_precision)
    accumulate = accumulation_steps(settings, PartialState(cpu=cpu_only(device)).num_processes)
    if AcceleratorState._shared_state.get("_mixed_precision", precision) != precision:
        # an earlier stage in this process (`kdlib run` builds stages 01-05 in one process on one device) made
        # accelerate's process-wide state with another precision, which a new Accelerator may not change;
        # forgotten here (the distributed state, PartialState, is kept)
        AcceleratorState._reset_state()
    accelerator = Accelerator(
        cpu=cpu_only(device),
        mixed_precision=precision,
        gradient_accumulation_steps=accumulate,
        log_with=list(settings.log_with) or None,
        project_dir=str(output_dir),
    )
    torch.manual_seed(settings.seed)
    if settings.gradient_checkpointing:
        student.activation_checkpointing_enable()  # transformers 5 renamed gradient_checkpointing_enable
    student.config.use_cache = False
    optimizer = torch.optim.AdamW(student.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    total = training_steps(settings, len(data), accelerator.num_processes)
    scheduler = get_scheduler(
        settings.scheduler, optimizer, num_warmup_steps=settings.warmup_steps, num_training_steps=total
    )
    model, optimizer = accelerator.prepare(student, optimizer)
    if teacher is not None:
        teacher.to(accelerator.device).eval().requires_grad_(False)

    # resume: the last complete checkpoint gives the step, weights, optimiser, schedule and RNG
    checkpoints = output_dir / "checkpoints"
    step, history = (
        resume_latest(checkpoints, accelerator.unwrap_model(model), optimizer, scheduler) if resume else (0, [])
    )
    accelerator.init_trackers("logs")
    loss_value = history[-1]["loss"] if history else math.nan
    bar = progress(
        total=total, initial=step, desc=description, unit="step", disable=not accelerator.is_local_main_process
    )
    stop = min(until_step or total, total)

    # data: this process' micro-batches from the step it starts at, read ahead by loader workers
    world, rank = accelerator.num_processes, accelerator.process_index
    first = step * accumulate
    micro_rows = partial(micro_batch, len(data), settings.batch_size, world, rank, settings.seed)
    loader = planned_loader(
        (stop - step) * accumulate, lambda i: data.read(micro_rows(first + i)), workers, accelerator.device
    )
    clock = WaitClock()
    micro_batches = clock.timed(loader)

    # loop: one optimiser step per iteration, over `accumulate` micro-batches
    model.train()
    while step < stop:
        terms: dict[str, float] = {}
        for _ in range(accumulate):
            batch = {
                name: tensor.to(accelerator.device, non_blocking=True) for name, tensor in next(micro_batches).items()
            }
            with accelerator.accumulate(model), accelerator.autocast():
                objective, parts = _loss(model, teacher, batch, loss)  # not `total`: the step count below
                diverged = accelerator.reduce(
                    torch.tensor(float(not torch.isfinite(objective)), device=accelerator.device), "sum"
                )
                if diverged.item() > 0:  # every rank stops together, none is left waiting in an all-reduce
                    bar.close()
                    kept = latest_checkpoint(checkpoints)
                    raise TrainingDiverged(
                        f"{description}: the loss became NaN or infinite at step {step + 1} (this process: {parts}); "
                        f"stopped. Last good checkpoint: {kept or 'none yet'}"
                    )
                accelerator.backward(objective)
                if accelerator.sync_gradients and settings.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(model.parameters(), settings.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad()
            for name, value in parts.items():
                terms[name] = terms.get(name, 0.0) + value / accumulate
        scheduler.step()
        step += 1
        loss_value = terms["loss"]
        record = {"step": step, "lr": scheduler.get_last_lr()[0], **terms}
        last = step == stop

        # evaluation: every `eval_every` steps and at the last one, on the held-out pairs
        if evaluate is not None and ((settings.eval_every and step % settings.eval_every == 0) or last):
            model.eval()
            scores = evaluate(accelerator.unwrap_model(model))
            record.update({f"eval_{k}": v for k, v in scores.items()})
            model.train()
            if scores and accelerator.is_local_main_process:
                bar.write(f"{description} at step {step}: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()))
        if step % settings.log_every == 0 or last or len(record) > len(terms) + 2:
            history.append(record)
            accelerator.log({k: v for k, v in record.items() if k != "step"}, step=step)
        bar.update(1)
        bar.set_postfix(loss=f"{loss_value:.3f}", data_wait=f"{clock.share:.0%}")

        # checkpoint: every `save_every` steps and at the last one (main process), atomically
        if accelerator.is_main_process and ((settings.save_every and step % settings.save_every == 0) or last):
            save_checkpoint(
                checkpoints,
                step,
                accelerator.unwrap_model(model),
                optimizer,
                scheduler,
                history,
                settings.keep_checkpoints,
            )
        accelerator.wait_for_everyone()
    bar.close()
    if accelerator.is_local_main_process and first < stop * accumulate:
        print(f"{description}: waited for data {clock.share:.1%} of the time", file=sys.stderr)
    for tracker in accelerator.trackers:  # not end_training(): that destroys the process group, and
        tracker.finish()  # one launch may train several students in a row
    if step < total:
        return TrainingResult(latest_checkpoint(checkpoints) or output_dir, step, loss_value, history)

    # final model: safetensors and processor, as a hub checkpoint, and the logged history
    model_dir = output_dir / "model"
    if accelerator.is_main_process:
        final = accelerator.unwrap_model(model)
        final.config.use_cache = True
        with atomic_directory(model_dir) as temporary:
            final.save_pretrained(temporary, safe_serialization=True)
            processor.save_pretrained(temporary)
        atomic_write_json(output_dir / "history.json", history)
    accelerator.wait_for_everyone()
    return TrainingResult(model_dir, step, loss_value, history)


def _loss(model, teacher, batch, config: LossParams) -> tuple[torch.Tensor, dict[str, float]]:
    need_hidden = config.hidden_weight > 0
    labels = batch["labels"]
    out = model(
        input_features=batch["input_features"],
        decoder_input_ids=batch["decoder_input_ids"],
        output_hidden_states=need_hidden,
    )
    ce = ce_loss(out.logits, labels)
    loss = config.ce_weight * ce
    parts = {"ce": ce.item()}
    if teacher is not None and (config.kl_weight > 0 or need_hidden):
        teacher_logits = batch.get("teacher_logits")
        if teacher_logits is None or need_hidden:
            with torch.no_grad():
                teacher_out = teacher(
                    input_features=batch["input_features"].to(teacher.dtype),
                    decoder_input_ids=batch["decoder_input_ids"],
                    output_hidden_states=need_hidden,
                )
            teacher_logits = teacher_out.logits if teacher_logits is None else teacher_logits
        if config.kl_weight > 0:
            kl = kl_loss(out.logits, teacher_logits, (labels != IGNORE).float(), config.temperature)
            loss = loss + config.kl_weight * kl
            parts["kl"] = kl.item()
        if need_hidden:
            hidden = hidden_loss(out, teacher_out)
            loss = loss + config.hidden_weight * hidden
            parts["hidden"] = hidden.item()
    parts["loss"] = loss.item()
    return loss, parts


CHECKPOINT_FILES = ("state.json", "model.safetensors", "optimizer.safetensors", "rng.safetensors")


def latest_checkpoint(directory: Path) -> Path | None:
    """The newest complete checkpoint folder (`step-NNNNNNN` with its state.json)."""
    complete = sorted(directory.glob("step-*[0-9]/state.json"), key=lambda p: int(p.parent.name.split("-")[1]))
    return complete[-1].parent if complete else None


def save_checkpoint(directory: Path, step: int, model, optimizer, scheduler, history: list[dict], keep: int) -> Path:
    target = directory / f"step-{step:07d}"
    with atomic_directory(target) as temporary:
        save_model(model, str(temporary / "model.safetensors"))
        state = optimizer.state_dict()
        tensors = {f"{index}.{name}": value for index, entry in state["state"].items() for name, value in entry.items()}
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(temporary / "optimizer.safetensors"))
        rng = {"cpu": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng.update({f"cuda{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
        save_file(rng, str(temporary / "rng.safetensors"))
        meta = {
            "step": step,
            "param_groups": state["param_groups"],
            "scheduler": scheduler.state_dict(),
            "history": history,
        }
        (temporary / "state.json").write_text(json.dumps(meta, indent=1))
    for old in sorted(directory.glob("step-*[0-9]"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def read_checkpoint(checkpoint: Path) -> dict:
    """Every tensor and record of a checkpoint, read and checked before any is applied (raises if unreadable)."""
    return {
        "model": load_file(str(checkpoint / "model.safetensors")),
        "optimizer": load_file(str(checkpoint / "optimizer.safetensors")),
        "rng": load_file(str(checkpoint / "rng.safetensors")),
        "meta": json.loads((checkpoint / "state.json").read_text(encoding="utf-8")),
    }


def restore(checkpoint: Path, model, optimizer, scheduler) -> tuple[int, list[dict]]:
    """Load a checkpoint written by `save_checkpoint`; return its step and log history."""
    saved = read_checkpoint(checkpoint)
    load_model(model, str(checkpoint / "model.safetensors"), device=str(next(model.parameters()).device))
    meta = saved["meta"]
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in saved["optimizer"].items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    scheduler.load_state_dict(meta["scheduler"])
    rng = saved["rng"]
    torch.set_rng_state(rng["cpu"])
    if torch.cuda.is_available():
        torch.cuda.set_rng_state_all([rng[f"cuda{i}"] for i in range(torch.cuda.device_count()) if f"cuda{i}" in rng])
    return meta["step"], meta["history"]


def resume_latest(checkpoints: Path, model, optimizer, scheduler) -> tuple[int, list[dict]]:
    """Restore the newest readable checkpoint; an unreadable one (a truncated file) is named, set aside as
    `step-NNNNNNN.unreadable` (kept for inspection, never retried) and the one before it is tried."""
    while (latest := latest_checkpoint(checkpoints)) is not None:
        problem = checkpoint_problem(latest, CHECKPOINT_FILES)
        if problem is not None:
            aside = latest.with_name(f"{latest.name}.unreadable")
            print(
                f"checkpoint {latest} is unreadable ({problem}); set aside as {aside.name}, trying the one before",
                file=sys.stderr,
                flush=True,
            )
            shutil.rmtree(aside, ignore_errors=True)
            latest.rename(aside)
            continue
        return restore(latest, model, optimizer, scheduler)
    return 0, []
