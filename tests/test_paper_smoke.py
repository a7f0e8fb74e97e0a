"""The dry run of the paper profile (`params/paper-smoke.yaml`, `make smoke-paper`): its params, and the teacher with
random weights (`teacher.source: random`) built at a tiny architecture. The dry run itself (about 20 minutes, 13 GiB)
is not part of the test suite; the README gives its measured wall time and memory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from conftest import REPO

from kdlib.config import ParamsError, load_params
from kdlib.models.cards import read_facts
from kdlib.models.students import WHISPER_LARGE_V2, make_student

pytest.importorskip("whisper", reason="openai-whisper (the smoke extra) is not installed")

SMOKE = REPO / "params" / "paper-smoke.yaml"
PAPER = REPO / "params" / "paper.yaml"
TINY = {  # a Whisper of a few thousand parameters but Whisper's vocabulary and 30 s window
    "d_model": 8,
    "encoder_layers": 2,
    "decoder_layers": 2,
    "attention_heads": 2,
    "ffn_dim": 16,
    "vocab_size": 51865,
    "chunk_length_s": 30,
    "hop_length": 160,
    "max_target_positions": 448,
}


def smoke_params(tmp_path: Path, **sections: object) -> Path:
    """The smoke profile with a tiny architecture and everything written under `tmp_path`."""
    raw = yaml.safe_load(SMOKE.read_text(encoding="utf-8"))
    raw.update(run_dir=str(tmp_path / "runs"), reports_dir=str(tmp_path / "reports"), cache_dir=str(tmp_path / "cache"))
    raw["teacher"]["architecture"] = dict(TINY)
    raw["distill"]["count_only"] = ["DW-2-1"]
    raw["distill"]["runs"] = [{"student": "DW-1-1", "thresholds": [80, None]}]
    raw.update(sections)
    path = tmp_path / "smoke.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


def test_the_smoke_profile_has_whisper_large_v2s_shapes_and_the_paper_profiles_recipe() -> None:
    smoke, paper = load_params(SMOKE), load_params(PAPER)
    shape = smoke.teacher.architecture
    assert smoke.teacher.source == "random"
    assert (shape.d_model, shape.encoder_layers, shape.decoder_layers, shape.ffn_dim, shape.vocab_size) == (
        WHISPER_LARGE_V2["d_model"],
        WHISPER_LARGE_V2["encoder_layers"],
        WHISPER_LARGE_V2["decoder_layers"],
        WHISPER_LARGE_V2["encoder_ffn_dim"],
        WHISPER_LARGE_V2["vocab_size"],
    )
    assert shape.attention_heads == WHISPER_LARGE_V2["encoder_attention_heads"]
    assert shape.max_target_positions == WHISPER_LARGE_V2["max_target_positions"]
    assert shape.chunk_length_s * smoke.data.sampling_rate // shape.hop_length // 2 == 1500  # source positions
    assert smoke.data.max_duration_s == 30.0 and all(spec.source == "synthetic" for spec in smoke.data.train)
    # the paper profile's code path: its loss, optimiser, schedule, precision, filter and scoring
    assert smoke.distill.loss == paper.distill.loss
    same = ("learning_rate", "scheduler", "warmup_steps", "weight_decay", "mixed_precision", "gradient_checkpointing")
    assert {k: getattr(smoke.distill.training, k) for k in same} == {
        k: getattr(paper.distill.training, k) for k in same
    }
    assert smoke.pseudo_label.generation.dtype == paper.pseudo_label.generation.dtype == "bfloat16"
    assert (smoke.filter.view, smoke.filter.keep, smoke.filter.selected) == ("english", "below", 80)
    assert smoke.filter.max_label_tokens == paper.filter.max_label_tokens == 225
    assert smoke.distill.targets == paper.distill.targets == "ids"
    assert smoke.distill.condition_on_prev_probability == paper.distill.condition_on_prev_probability == 0.2
    assert smoke.data.long_clips == paper.data.long_clips == "truncate"
    assert smoke.evaluate.generation.dtype == paper.evaluate.generation.dtype == "float32"
    assert smoke.evaluate.generation.batch_size == paper.evaluate.generation.batch_size == 1
    assert smoke.evaluate.views == paper.evaluate.views and smoke.evaluate.headline_view == "authors"
    assert [run.student for run in smoke.distill.runs] == ["DW-8-8"] and None in smoke.distill.runs[0].thresholds
    assert set(smoke.distill.count_only) == {"DW-16-16", "DW-32-16"}


def test_a_random_teacher_needs_the_multilingual_tokenizers_vocabulary(tmp_path: Path) -> None:
    architecture = {**TINY, "vocab_size": 512}
    path = smoke_params(tmp_path, teacher={"source": "random", "architecture": architecture})
    with pytest.raises(ParamsError, match=r"'teacher\.architecture\.vocab_size' must be 51865"):
        load_params(path)


def test_counted_students_are_checked_like_trained_ones(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match=r"'distill\.count_only\[0\]' DW-3-1 has more layers than the teacher"):
        load_params(smoke_params(tmp_path, distill={"count_only": ["DW-3-1"]}))
    with pytest.raises(ParamsError, match=r"'distill\.count_only\[0\]'.*DW-x"):
        load_params(smoke_params(tmp_path, distill={"count_only": ["DW-x"]}))


def test_the_random_teacher_is_a_hub_like_checkpoint_made_once(tmp_path: Path) -> None:
    from kdlib.models.families import WhisperModel
    from kdlib.models.teacher import random_teacher
    from kdlib.storage.whole import whole_checkpoint

    params = load_params(smoke_params(tmp_path))
    folder = random_teacher(params)
    assert folder.parent.name.startswith("random-") and whole_checkpoint(folder)
    config = json.loads((folder / "config.json").read_text())
    assert (config["vocab_size"], config["max_source_positions"], config["num_mel_bins"]) == (51865, 1500, 80)
    generation = json.loads((folder / "generation_config.json").read_text())
    assert generation["lang_to_id"]["<|ar|>"] == 50272 and len(generation["lang_to_id"]) == 99
    assert (generation["decoder_start_token_id"], generation["no_timestamps_token_id"]) == (50258, 50363)
    assert generation["task_to_id"] == {"translate": 50358, "transcribe": 50359}
    assert generation["begin_suppress_tokens"] == [220, 50257] and 50362 in generation["suppress_tokens"]
    facts = read_facts(folder)
    assert facts.kind == "teacher" and facts.train_clips == 0 and facts.architecture["d_model"] == 8
    assert "random weights" in (folder / "README.md").read_text(encoding="utf-8")

    # loaded as the hub's whisper-large-v2 is, it transcribes a 30 s window with Arabic forced
    loaded = WhisperModel.load(folder, torch.device("cpu"), params.pseudo_label.generation)
    assert loaded.model.dtype == torch.bfloat16 and loaded.window_samples == 30 * 16000
    assert loaded.processor.tokenizer.convert_tokens_to_ids("<|ar|>") == 50272
    ids = loaded.generate([torch.zeros(16000 * 3).numpy()], params.pseudo_label.generation)
    assert len(ids) == 1 and ids[0][:3] == [50258, 50272, 50359]  # the decoder sequence, from the forced prompt
    assert len(ids[0]) <= 3 + params.pseudo_label.generation.max_new_tokens  # with timestamps: no <|notimestamps|>

    # made once: a second call reuses it; a truncated weights file is caught without reading it whole
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert random_teacher(params) == folder and (folder / "model.safetensors").stat().st_mtime_ns == stamp
    with open(folder / "model.safetensors", "r+b") as handle:
        handle.truncate((folder / "model.safetensors").stat().st_size - 10)
    assert not whole_checkpoint(folder)


def test_students_of_a_bf16_teacher_are_float32_copies_with_a_tied_output_projection(tmp_path: Path) -> None:
    from kdlib.models.families import WhisperModel
    from kdlib.models.teacher import random_teacher

    params = load_params(smoke_params(tmp_path))
    teacher = WhisperModel.load(random_teacher(params), torch.device("cpu"), params.pseudo_label.generation).model
    student = make_student(teacher, "DW-2-1")
    assert student.dtype == torch.float32 and student.proj_out.weight is student.model.decoder.embed_tokens.weight
    assert torch.equal(student.model.decoder.layers[0].fc1.weight, teacher.model.decoder.layers[1].fc1.weight.float())
    assert torch.equal(student.model.encoder.layers[1].fc2.bias, teacher.model.encoder.layers[1].fc2.bias.float())
    assert student.generation_config.lang_to_id == teacher.generation_config.lang_to_id
