"""Timestamps in pseudo-labels (`return_timestamps`): kept apart from the text that is scored and filtered,
and what the student is trained on when they are on (a share `timestamp_probability` of the pairs)."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml
from conftest import with_overrides
from tiny_checkpoints import timestamp_whisper_checkpoint

from kdlib.config import Params, load_params
from kdlib.corpus.preparation import load_mixture
from kdlib.models.families import load_model
from kdlib.models.runtime import prompt_ids, target_ids
from kdlib.models.training import Seq2SeqData
from kdlib.models.transcription import transcribe
from kdlib.pipeline.graph import build, stage_named
from kdlib.scoring.metrics import score_pairs
from kdlib.stages.distill import distill_one, keeps_timestamps, target_texts
from kdlib.stages.products import TIMESTAMPED, read_pseudo_labels

TIMESTAMP = re.compile(r"<\|\d+\.\d\d\|>")


@pytest.fixture(scope="module")
def stamped_teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return timestamp_whisper_checkpoint(tmp_path_factory.mktemp("stamped") / "teacher")


@pytest.fixture(scope="module")
def stamped_params(ci_yaml: Path, stamped_teacher: Path, tmp_path_factory: pytest.TempPathFactory) -> Params:
    """The ci profile with the timestamp-capable teacher, labelling with timestamps, in its own run folder."""
    raw = yaml.safe_load(ci_yaml.read_text())
    generation = {**raw["pseudo_label"]["generation"], "return_timestamps": True}
    folder = tmp_path_factory.mktemp("stamped-run")
    return load_params(
        with_overrides(
            ci_yaml,
            folder / "stamped.yaml",
            run_dir=str(folder / "runs"),
            teacher={"source": "hub", "model": str(stamped_teacher)},
            pseudo_label={**raw["pseudo_label"], "generation": generation},
            distill={**raw["distill"], "runs": [{"student": "DW-1-1", "thresholds": [None]}]},
        )
    )


def test_a_timestamped_transcript_keeps_its_text_apart(stamped_teacher: Path, ci_params: Params) -> None:
    loaded = load_model(str(stamped_teacher), torch.device("cpu"))
    clips = load_mixture(ci_params.data.train, ci_params, "train").dataset.select(range(4))
    generation = replace(ci_params.pseudo_label.generation, return_timestamps=True)
    stamped = transcribe(loaded, clips, generation)
    for transcript in stamped:
        assert TIMESTAMP.match(transcript.timestamped)  # Whisper starts a timestamped transcript with a time
        assert "<|" not in transcript.text
        assert TIMESTAMP.sub("", transcript.timestamped).split() == transcript.text.split()
    assert all(t.timestamped is None for t in transcribe(loaded, clips, ci_params.pseudo_label.generation))


def test_pseudo_labels_are_scored_and_filtered_without_their_timestamps(stamped_params: Params) -> None:
    build(stamped_params, stage_named("01"))
    labels = read_pseudo_labels(stamped_params).remove_columns("audio").to_pandas()
    assert (
        labels[TIMESTAMPED].str.match(TIMESTAMP.pattern).all()
        and not labels["pseudo_label"].str.contains("<|", regex=False).any()
    )
    view, rules = stamped_params.filter.view, stamped_params.normalization
    plain = score_pairs(labels["text"], labels["pseudo_label"], view, rules)
    assert labels["teacher_wer"].tolist() == plain["wer"].tolist()
    assert (
        labels["teacher_wer"].tolist() != score_pairs(labels["text"], labels[TIMESTAMPED], view, rules)["wer"].tolist()
    )


def test_a_timestamped_target_is_predicted_without_the_no_timestamps_token(stamped_teacher: Path) -> None:
    processor = load_model(str(stamped_teacher), torch.device("cpu")).processor
    prompt = prompt_ids(processor, "ar", "transcribe")
    no_timestamps = processor.tokenizer.convert_tokens_to_ids("<|notimestamps|>")
    stamped = target_ids(processor, "<|0.00|> السلام<|0.40|>", prompt)
    assert stamped[: len(prompt) - 1] == [token for token in prompt if token != no_timestamps]
    assert stamped[len(prompt) - 1] == processor.tokenizer.convert_tokens_to_ids("<|0.00|>")
    assert target_ids(processor, "السلام", prompt)[: len(prompt)] == prompt


def test_a_share_of_the_pairs_is_trained_on_timestamps_the_same_at_every_lambda(stamped_params: Params) -> None:
    build(stamped_params, stage_named("01"))
    pairs = read_pseudo_labels(stamped_params)
    processor = load_model(stamped_params.teacher.model, torch.device("cpu")).processor
    no_timestamps = processor.tokenizer.convert_tokens_to_ids("<|notimestamps|>")

    def timestamped_rows(probability: float, seed: int = 0) -> list[bool]:
        data = Seq2SeqData(
            pairs.add_column("target", target_texts(pairs, probability, seed)), "target", processor, "ar", "transcribe"
        )
        return [no_timestamps not in target for target in data.targets]

    assert not any(timestamped_rows(0.0)) and all(timestamped_rows(1.0))
    half = timestamped_rows(0.5)
    assert 0 < sum(half) < len(half) and half == timestamped_rows(0.5) != timestamped_rows(0.5, seed=1)
    subset = pairs.select(range(1, len(pairs), 2))  # another λ keeps other pairs: each clip keeps its draw
    assert target_texts(subset, 0.5, 0) == [target for target in target_texts(pairs, 0.5, 0)[1::2]]
    assert sum(keeps_timestamps(f"clip-{i}", 0.2, 0) for i in range(2000)) == pytest.approx(400, abs=60)
    assert target_texts(pairs.remove_columns(TIMESTAMPED), 1.0, 0) == pairs["pseudo_label"]  # no timestamps: plain


def test_a_student_distils_from_timestamped_pseudo_labels(stamped_params: Params) -> None:
    params = replace(stamped_params, distill=replace(stamped_params.distill, timestamp_probability=1.0))
    build(params, stage_named("01"))
    build(params, stage_named("02"))
    result = distill_one(params, "DW-1-1", None)
    assert result.status == "trained" and result.steps == params.distill.training.max_steps
