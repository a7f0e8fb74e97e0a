"""The loss terms, exact resume after a stop, and a clean stop on a diverging loss."""

from __future__ import annotations

import hashlib
import math
import warnings
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from safetensors.torch import load_file

from kdlib.config import LossParams, Params, TrainingParams
from kdlib.corpus.preparation import load_mixture
from kdlib.models.families import load_model
from kdlib.models.runtime import release_memory
from kdlib.models.students import make_student
from kdlib.models.training import (
    IGNORE,
    Seq2SeqData,
    TeacherLogitCache,
    TrainingDiverged,
    ce_loss,
    deterministic_kernels,
    kl_loss,
    micro_batch,
    recipe,
    train,
    training_steps,
)


def test_kl_of_identical_distributions_is_zero_and_positive_otherwise() -> None:
    logits = torch.randn(2, 3, 11)
    mask = torch.ones(2, 3)
    assert kl_loss(logits, logits.clone(), mask, temperature=2.0).item() == pytest.approx(0.0, abs=1e-6)
    assert kl_loss(logits, torch.randn(2, 3, 11), mask, temperature=2.0).item() > 0


def test_kl_matches_a_hand_computation_with_temperature_and_mask() -> None:
    student = torch.tensor([[[0.0, 0.0], [5.0, 5.0]]])
    teacher = torch.tensor([[[math.log(3.0) * 2, 0.0], [0.0, 0.0]]])  # at T=2: p = (3/4, 1/4)
    mask = torch.tensor([[1.0, 0.0]])  # the second position is padding
    expected = (0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)) * 2.0**2
    assert kl_loss(student, teacher, mask, temperature=2.0).item() == pytest.approx(expected, rel=1e-5)


def test_ce_matches_a_hand_computation_and_ignores_padding() -> None:
    logits = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [9.0, 9.0, 9.0]]])
    labels = torch.tensor([[0, 2, IGNORE]])
    first = -math.log(math.exp(2) / (math.exp(2) + 2))
    second = -math.log(1 / (math.e + 2))
    assert ce_loss(logits, labels).item() == pytest.approx((first + second) / 2, rel=1e-6)


def test_micro_batches_cover_each_epoch_once_across_ranks() -> None:
    size, batch, world = 20, 3, 2
    epoch = [
        row
        for micro in range(size // (batch * world))
        for rank in range(world)
        for row in micro_batch(size, batch, world, rank, 7, micro)
    ]
    assert len(epoch) == len(set(epoch)) == 18
    assert micro_batch(size, batch, world, 0, 7, 5) == micro_batch(size, batch, world, 0, 7, 5)


def test_a_set_smaller_than_one_global_batch_still_feeds_every_rank() -> None:
    batches = [micro_batch(3, 4, 2, rank, 0, 0) for rank in range(2)]
    assert all(len(rows) == 4 for rows in batches) and set(batches[0] + batches[1]) == {0, 1, 2}
    with pytest.raises(ValueError, match="empty"):
        micro_batch(0, 4, 2, 0, 0, 0)


@pytest.fixture(scope="module")
def setup(ci_params: Params, ci_teacher: str):
    corpus = load_mixture(ci_params.data.teacher_train, ci_params, "train").dataset.select(range(12))
    teacher = load_model(ci_teacher, torch.device("cpu"))
    return corpus, teacher


LOSS = LossParams(kl_weight=0.8, ce_weight=1.0, temperature=2.0)


def config(**changes) -> TrainingParams:
    base = dict(max_steps=4, batch_size=4, learning_rate=1e-3, warmup_steps=1, save_every=2, log_every=1, eval_every=0)
    return TrainingParams(**{**base, **changes})


def distil(teacher, data: Seq2SeqData, settings: TrainingParams, output: Path, **options):
    """A fresh DW-1-1 of `teacher` trained with the KL + CE loss on the CPU."""
    student = make_student(teacher.model, "DW-1-1")
    return train(
        student, teacher.processor, data, settings, output, loss=LOSS, teacher=teacher.model, device="cpu", **options
    )


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_stop_and_resume_equals_training_straight_through(setup, tmp_path: Path) -> None:
    corpus, teacher = setup
    data = Seq2SeqData(corpus, "text", teacher.processor, "ar", "transcribe")
    straight = distil(teacher, data, config(), tmp_path / "a")
    stopped = distil(teacher, data, config(), tmp_path / "b", until_step=2)
    assert stopped.steps == 2 and not (tmp_path / "b" / "model").exists()
    resumed = distil(teacher, data, config(), tmp_path / "b")
    assert resumed.steps == straight.steps == 4
    assert resumed.final_loss == pytest.approx(straight.final_loss, rel=1e-5)
    a = load_file(str(tmp_path / "a" / "model" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "model" / "model.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[key], b[key], atol=1e-6) for key in a)
    fresh = make_student(teacher.model, "DW-1-1").state_dict()
    assert any(not torch.allclose(a[key], fresh[key]) for key in a)  # training did change the weights


def test_gradient_checkpointing_trains_the_same_without_a_warning(setup, tmp_path: Path) -> None:
    """Activation checkpointing recomputes what it dropped: the same losses; and it is switched on through
    transformers' current method, without its deprecation warning (FutureWarning under the old name)."""
    corpus, teacher = setup
    data = Seq2SeqData(corpus, "text", teacher.processor, "ar", "transcribe")
    plain = distil(teacher, data, config(max_steps=2, save_every=0), tmp_path / "plain")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        checkpointed = distil(
            teacher, data, config(max_steps=2, save_every=0, gradient_checkpointing=True), tmp_path / "c"
        )
    assert checkpointed.final_loss == pytest.approx(plain.final_loss, rel=1e-5)


def test_a_finished_run_saves_its_model_whatever_its_loss(setup, tmp_path: Path) -> None:
    """One step from a fresh student ends with a loss far above 1 (the step count): the run is still finished
    and its model saved (the loss once shadowed the step count, and such a run returned its checkpoint)."""
    corpus, teacher = setup
    data = Seq2SeqData(corpus, "text", teacher.processor, "ar", "transcribe")
    result = distil(teacher, data, config(max_steps=1, save_every=0), tmp_path)
    assert result.steps == 1 and result.final_loss > 1
    assert result.model_dir == tmp_path / "model" and (tmp_path / "model" / "model.safetensors").exists()
    assert (tmp_path / "history.json").exists()


def test_training_in_bf16_after_another_precision_in_the_same_process(setup, tmp_path: Path) -> None:
    """`kdlib run` builds stage 01 (an Accelerator without mixed precision) and then stage 03 (the paper
    profile's bf16) in one process: accelerate's process-wide state must not refuse the second precision."""
    corpus, teacher = setup
    AcceleratorState._reset_state()
    Accelerator(cpu=True, mixed_precision="no")  # as stage 01 leaves it
    data = Seq2SeqData(corpus, "text", teacher.processor, "ar", "transcribe")
    result = distil(teacher, data, config(max_steps=1, mixed_precision="bf16", save_every=0), tmp_path / "bf16")
    assert result.steps == 1 and math.isfinite(result.final_loss)
    assert AcceleratorState().mixed_precision == "bf16"
    result = distil(teacher, data, config(max_steps=1, mixed_precision="no", save_every=0), tmp_path / "fp32")
    assert result.steps == 1 and AcceleratorState().mixed_precision == "no"


def test_release_memory_frees_models_held_in_cycles() -> None:
    def resident_mib() -> float:
        status = Path("/proc/self/status").read_text()
        return int(status.split("VmRSS:")[1].split()[0]) / 1024

    class Held:  # as accelerate leaves a prepared model: its forward wrapped in a closure over itself
        def __init__(self) -> None:
            self.tensor = torch.ones(2_000_000)  # 8 MB
            self.myself = self

    before = resident_mib()
    for _ in range(64):
        Held()
    release_memory()
    assert resident_mib() < before + 128  # 512 MB were held in cycles


class PoisonedData(Seq2SeqData):
    """Fault injection: the batches of optimiser steps past `clean` carry NaN features."""

    def __init__(self, *args, clean: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.calls, self.clean = 0, clean

    def read(self, rows):
        self.calls += 1
        batch = super().read(rows)
        if self.calls > self.clean:
            batch["input_features"] = batch["input_features"] * float("nan")
        return batch


def test_a_nan_loss_stops_with_a_clear_message_and_keeps_the_last_checkpoint(setup, tmp_path: Path) -> None:
    corpus, teacher = setup
    data = PoisonedData(corpus, "text", teacher.processor, "ar", "transcribe", clean=2)
    with pytest.raises(TrainingDiverged, match=r"step 3.*step-0000002"):
        distil(teacher, data, config(), tmp_path)
    checkpoint = tmp_path / "checkpoints" / "step-0000002"
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-0000002"]
    before = {p.name: digest(p) for p in checkpoint.iterdir()}
    weights = load_file(str(checkpoint / "model.safetensors"))
    assert all(torch.isfinite(value).all() for value in weights.values())
    with pytest.raises(TrainingDiverged):  # resuming hits the same bad data: still nothing overwritten
        distil(
            teacher, PoisonedData(corpus, "text", teacher.processor, "ar", "transcribe", clean=0), config(), tmp_path
        )
    assert {p.name: digest(p) for p in checkpoint.iterdir()} == before


def test_cached_teacher_logits_train_exactly_like_logits_on_the_fly(setup, tmp_path: Path) -> None:
    corpus, teacher = setup
    on_the_fly = Seq2SeqData(corpus, "text", teacher.processor, "ar", "transcribe")
    cached = Seq2SeqData(corpus, "text", teacher.processor, "ar", "transcribe")
    cached.teacher_logits = TeacherLogitCache(tmp_path / "logits").build(teacher.model, cached)
    assert len(list((tmp_path / "logits").glob("row-*.safetensors"))) == len(corpus)
    short = config(max_steps=2, save_every=0)
    a = distil(teacher, on_the_fly, short, tmp_path / "a")
    b = distil(teacher, cached, short, tmp_path / "b")
    assert [round(r["kl"], 3) for r in a.history] == [round(r["kl"], 3) for r in b.history]  # float16 storage
    assert b.final_loss == pytest.approx(a.final_loss, rel=1e-3)


def test_deterministic_kernels_restore_torch_settings() -> None:
    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    with deterministic_kernels(not before[0]):
        assert torch.are_deterministic_algorithms_enabled() == (not before[0])
    assert (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    ) == before


def test_a_truncated_checkpoint_is_named_set_aside_and_the_one_before_resumes(setup, tmp_path: Path, capsys) -> None:
    corpus, teacher = setup
    data = Seq2SeqData(corpus, "text", teacher.processor, "ar", "transcribe")
    straight = distil(teacher, data, config(), tmp_path / "a")
    stopped = tmp_path / "b"
    distil(teacher, data, config(save_every=1, keep_checkpoints=3), stopped, until_step=3)
    newest = stopped / "checkpoints" / "step-0000003" / "model.safetensors"
    newest.write_bytes(newest.read_bytes()[:100])  # a write cut short by a crash or a full disk
    resumed = distil(teacher, data, config(save_every=1, keep_checkpoints=3), stopped)
    assert "step-0000003" in capsys.readouterr().err and (stopped / "checkpoints" / "step-0000003.unreadable").is_dir()
    assert resumed.steps == 4 and resumed.final_loss == pytest.approx(
        straight.final_loss, rel=1e-5
    )  # resumed from step 2
    a = load_file(str(tmp_path / "a" / "model" / "model.safetensors"))
    b = load_file(str(stopped / "model" / "model.safetensors"))
    assert all(torch.allclose(a[key], b[key], atol=1e-6) for key in a)


def test_epochs_set_the_number_of_steps() -> None:
    by_epochs = TrainingParams(max_steps=None, epochs=2, batch_size=4, gradient_accumulation_steps=1)
    assert training_steps(by_epochs, size=12, world=1) == 6  # 3 batches of 4 per epoch
    assert training_steps(by_epochs, size=12, world=2) == 2  # 1 global batch of 8 per epoch (drop-last)
    assert training_steps(replace(by_epochs, gradient_accumulation_steps=2), size=12, world=1) == 3
    assert training_steps(replace(by_epochs, epochs=0.5), size=3, world=1) == 1  # never 0
    assert training_steps(TrainingParams(max_steps=7), size=12, world=1) == 7


def test_a_constant_schedule_after_warm_up_trains_for_the_epochs_given(setup, tmp_path: Path) -> None:
    corpus, teacher = setup
    data = Seq2SeqData(corpus, "text", teacher.processor, "ar", "transcribe")
    settings = config(max_steps=None, epochs=1, scheduler="constant_with_warmup", warmup_steps=1, save_every=0)
    outcome = distil(teacher, data, settings, tmp_path)
    assert outcome.steps == 3 == len(outcome.history)  # 12 clips, batches of 4
    assert [record["lr"] for record in outcome.history] == [settings.learning_rate] * 3


def test_the_recipe_leaves_out_cadence_and_trackers() -> None:
    base = TrainingParams(max_steps=10)
    assert recipe(base) == recipe(
        replace(base, log_every=3, eval_every=7, save_every=5, keep_checkpoints=4, log_with=())
    )
    assert "log_with" not in recipe(base)
    assert recipe(base) != recipe(replace(base, learning_rate=0.5))
