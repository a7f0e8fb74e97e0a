"""Model cards: what they say, the scores stage 04 adds, and that a card is not part of a model's digest."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import yaml

from kdlib.config import Params
from kdlib.models.cards import CARD, add_scores, read_facts, render_card, student_facts, write_card
from kdlib.stages.evaluate import ModelEntry, score_cards
from kdlib.storage.cache import model_digest


def front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n", 2)[1])


def fake_student(ci_params: Params, teacher: str = "openai/whisper-large-v2"):
    return student_facts(ci_params, "DW-8-8", "default", "80", teacher, (32, 32), (1000, 600, 50), 0.25)


def test_a_student_card_names_its_teacher_layers_pool_lambda_and_recipe(ci_params: Params) -> None:
    text = render_card(fake_student(ci_params))
    front = front_matter(text)
    assert front["language"] == "ar" and front["library_name"] == "transformers"
    assert front["base_model"] == "openai/whisper-large-v2"
    assert front["datasets"] == ["synth-pool"] and front["metrics"] == ["wer"]
    assert "knowledge-distillation" in front["tags"] and "model-index" not in front
    assert "encoder layers [0, 4, 8, 13, 17, 22, 26, 31], decoder layers [0, 4, 8, 13, 17, 22, 26, 31]" in text
    assert "synth-pool, 1000 clips" in text and "**λ:** 80" in text and "600 training pairs, 50 held out" in text
    assert "| kl_weight | 0.8 |" in text and "| temperature | 2.0 |" in text
    assert f"| learning_rate | {ci_params.distill.training.learning_rate} |" in text
    assert "50 held-out pool pairs (normalized view): 25.00 %" in text
    assert "not evaluated yet" in text


def test_a_local_teacher_is_described_not_given_as_base_model(ci_params: Params, tmp_path: Path) -> None:
    teacher = tmp_path / "0123abcd" / "model"
    teacher.mkdir(parents=True)
    facts = fake_student(ci_params, str(teacher))
    assert facts.base_model is None and "0123abcd" in facts.teacher and str(tmp_path) not in facts.teacher
    assert "base_model" not in front_matter(render_card(facts))


def test_scores_are_added_by_re_rendering_the_card(ci_params: Params, tmp_path: Path) -> None:
    write_card(tmp_path, fake_student(ci_params))
    assert add_scores(tmp_path, {"MSA": 0.125, "PAL": 0.5}, "normalized")
    text = (tmp_path / CARD).read_text(encoding="utf-8")
    results = front_matter(text)["model-index"][0]["results"]
    assert [(r["dataset"]["name"], r["metrics"][0]["value"]) for r in results] == [("MSA", 12.5), ("PAL", 50.0)]
    assert "| MSA | 12.50 % |" in text and "not evaluated yet" not in text
    expected = replace(fake_student(ci_params), test_wer={"MSA": 0.125, "PAL": 0.5}, view="normalized")
    assert read_facts(tmp_path) == expected  # the facts round-trip through the card
    assert add_scores(tmp_path, {"MSA": 0.25}, "orthographic")  # a second update replaces the first
    assert read_facts(tmp_path).test_wer == {"MSA": 0.25}


def test_cards_that_are_not_kdlibs_are_left_alone(tmp_path: Path) -> None:
    assert not add_scores(tmp_path, {"MSA": 0.1}, "normalized")  # no card
    foreign = "---\nlicense: mit\n---\n# Someone's model\n"
    (tmp_path / CARD).write_text(foreign, encoding="utf-8")
    assert not add_scores(tmp_path, {"MSA": 0.1}, "normalized")
    (tmp_path / CARD).write_text("# no front matter\n", encoding="utf-8")
    assert not add_scores(tmp_path, {"MSA": 0.1}, "normalized")
    assert (tmp_path / CARD).read_text(encoding="utf-8") == "# no front matter\n"


def test_stage_04_scores_the_cards_of_students_and_teacher_only(ci_params: Params, tmp_path: Path) -> None:
    folders = {name: tmp_path / name for name in ("teacher", "student", "baseline")}
    for folder in folders.values():
        write_card(folder, fake_student(ci_params))
    entries = [
        ModelEntry("teacher", "teacher", str(folders["teacher"])),
        ModelEntry("DW-8-8 λ=80", "student", str(folders["student"]), "DW-8-8", "80"),
        ModelEntry("baseline", "baseline", str(folders["baseline"])),
        ModelEntry("openai/whisper-small", "baseline", "openai/whisper-small"),
    ]
    scores = pd.DataFrame(
        [
            {"model": model, "dataset": dataset, "view": view, "wer": normalized + offset}
            for model, normalized in (("teacher", 0.1), ("DW-8-8 λ=80", 0.3), ("baseline", 0.5))
            for dataset in ("MSA", "PAL")
            for view, offset in (("normalized", 0.0), ("orthographic", 0.01))
        ]
    )
    assert score_cards(entries, scores, "normalized") == ["teacher", "DW-8-8 λ=80"]
    assert read_facts(folders["teacher"]).test_wer == {"MSA": 0.1, "PAL": 0.1}
    assert read_facts(folders["student"]).test_wer == {"MSA": 0.3, "PAL": 0.3}
    assert read_facts(folders["baseline"]).test_wer == {}


def test_a_card_is_not_part_of_a_models_digest(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    before = model_digest(tmp_path)
    (tmp_path / CARD).write_text("---\nkdlib: {}\n---\n", encoding="utf-8")
    assert model_digest(tmp_path) == before
    (tmp_path / "config.json").write_text("{}", encoding="utf-8")
    assert model_digest(tmp_path) != before


def test_the_trained_teacher_has_a_card(ci_params: Params, ci_teacher: str) -> None:
    facts = read_facts(ci_teacher)
    assert facts.kind == "teacher" and facts.datasets == ["synth-teacher"] and facts.train_clips > 0
    assert facts.architecture["d_model"] == ci_params.teacher.architecture.d_model
    front = front_matter((Path(ci_teacher) / CARD).read_text(encoding="utf-8"))
    assert front["language"] == "ar" and "base_model" not in front
