"""The paper profile computes what the authors computed: recipe, filter boundary and scoring from the brief."""

from __future__ import annotations

from pathlib import Path

from kdlib.config import load_params

PAPER = Path(__file__).resolve().parents[1] / "params" / "paper.yaml"


def test_the_paper_profile_uses_the_authors_recipe() -> None:
    params = load_params(PAPER)
    loss, training = params.distill.loss, params.distill.training
    assert (loss.ce_weight, loss.kl_weight, loss.temperature, loss.hidden_weight) == (0.8, 1.0, 2.0, 0.0)
    assert (training.learning_rate, training.scheduler, training.warmup_steps) == (1e-4, "constant_with_warmup", 50)
    assert (training.epochs, training.max_steps, training.weight_decay) == (10, None, 0.0)
    assert (training.batch_size, training.gradient_accumulation_steps) == (16, 1)
    assert (training.mixed_precision, training.gradient_checkpointing) == ("bf16", True)
    assert params.teacher.model == "openai/whisper-large-v2"
    generation = params.pseudo_label.generation
    assert (generation.language, generation.task, generation.num_beams, generation.max_new_tokens) == (
        "ar",
        "transcribe",
        1,
        225,
    )


def test_the_paper_profile_filters_and_scores_as_the_authors() -> None:
    params = load_params(PAPER)
    assert params.filter.keep == "below" and params.filter.selected == 80 and params.filter.thresholds[-1] is None
    assert params.evaluate.headline_view == "authors" and "authors" in params.evaluate.views
    runs = {(run.student, threshold) for run in params.distill.runs for threshold in run.thresholds}
    assert {("DW-16-16", t) for t in (10, 20, 40, 80, None)} <= runs
    assert {("DW-32-16", 80), ("DW-8-8", 80), ("DW-16-32", 80)} <= runs
    names = params.evaluate.published_names
    assert names["teacher"] == "whisper-large-v2" and names["DW-32-16 λ=80"] == "DW-32-16"
