"""The paper profile computes what the authors computed: recipe, filter boundary and scoring from the brief."""

from __future__ import annotations

from pathlib import Path

from kdlib.config import load_params, pools_in_use, run_name
from kdlib.report.published import read_published

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
        222,  # the authors' max_length 225 counts the 3 forced tokens (transformers 4.35)
    )
    assert generation.return_timestamps and params.distill.timestamp_probability == 0.2  # distil-whisper's default


def test_the_paper_profile_filters_and_scores_as_the_authors() -> None:
    params = load_params(PAPER)
    assert params.filter.keep == "below" and params.filter.selected == 80 and params.filter.thresholds[-1] is None
    assert params.evaluate.headline_view == "authors" and "authors" in params.evaluate.views
    names = params.evaluate.published_names
    assert names["teacher"] == "whisper-large-v2" and names["DW-32-16 λ=80"] == "DW-32-16"


def test_the_paper_profile_distils_on_the_released_pools() -> None:
    params = load_params(PAPER)
    runs = {
        (run_name(run.student, run.pool, params.data.default_pool), threshold)
        for run in params.distill.runs
        for threshold in run.thresholds
    }
    sweep = (10, 20, 40, 80, None)
    expected = {(student, t) for student in ("DW-16-16", "DW-32-16") for t in sweep}
    expected |= {("DW-16-16@500K", 80), ("DW-32-16@500K", 80), ("DW-8-8", 80), ("DW-16-32", 80)}
    assert runs == expected
    assert pools_in_use(params) == ["100K", "500K"]  # 1M is listed, not labelled
    pools = {name: params.data.pool(name) for name in ("100K", "500K", "1M")}
    assert {name: [spec.path for spec in specs] for name, specs in pools.items()} == {
        name: [f"UBC-NLP/masc_cv15_asc_fleurs_mgb5_mgb2_qasr_{name}"] for name in pools
    }
    published = set(read_published()["model"])
    names = params.evaluate.published_names
    assert names["DW-16-16@500K λ=80"] == "DW-16-16++" and names["DW-32-16@500K λ=80"] == "DW-32-16++"
    assert {name for name in names.values() if name.startswith("DW-")} <= published


def test_the_public_profile_is_the_paper_on_its_public_test_sets() -> None:
    """params/paper-public.yaml: the same teacher, pools, recipe, filter and scoring as params/paper.yaml; only the
    test sets (the five a user can obtain) and the average mapping differ."""
    from kdlib.config import params_to_dict

    paper = params_to_dict(load_params(PAPER))
    public = params_to_dict(load_params(PAPER.with_name("paper-public.yaml")))
    for raw in (paper, public):
        for key in ("profile", "run_dir", "reports_dir", "source_file"):
            raw.pop(key)
    assert [spec["name"] for spec in public["data"].pop("test")] == ["CV-15.0", "MGB-2", "MGB-3", "MGB-5", "Fleurs"]
    tests = {spec["name"]: spec for spec in paper["data"].pop("test")}
    assert {name for name, spec in tests.items() if spec["source"] == "local"} == {"ALG", "JOR", "PAL", "UAE", "YEM"}
    assert paper["evaluate"]["published_names"].pop("avg all") == "avg_10"  # 04 recomputes the averages
    assert public == paper
