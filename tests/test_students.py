"""DW-e-d students: layer choice as in distil-whisper, weights copied from the teacher, a normal checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import WhisperConfig, WhisperForConditionalGeneration

from kdlib.config import ParamsError
from kdlib.models.students import layer_indices, make_student


@pytest.mark.parametrize(
    ("teacher", "student", "expected"),
    [
        (32, 32, list(range(32))),
        (32, 16, [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 31]),
        (32, 8, [0, 4, 8, 13, 17, 22, 26, 31]),
        (32, 2, [0, 31]),
        (4, 2, [0, 3]),
        (4, 3, [0, 1, 3]),
        (4, 1, [3]),
    ],
)
def test_layer_indices_are_maximally_spaced_first_and_last_kept(
    teacher: int, student: int, expected: list[int]
) -> None:
    assert layer_indices(teacher, student) == expected


def test_layer_indices_rejects_impossible_students() -> None:
    with pytest.raises(ValueError):
        layer_indices(4, 5)
    with pytest.raises(ValueError):
        layer_indices(4, 0)


def tiny_teacher() -> WhisperForConditionalGeneration:
    torch.manual_seed(0)
    config = WhisperConfig(
        vocab_size=64,
        d_model=32,
        encoder_layers=4,
        decoder_layers=4,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_source_positions=50,
        max_target_positions=20,
        num_mel_bins=80,
        pad_token_id=0,
        bos_token_id=0,
        eos_token_id=0,
        decoder_start_token_id=1,
    )
    return WhisperForConditionalGeneration(config)


def test_student_copies_the_chosen_teacher_layers_and_the_rest(tmp_path: Path) -> None:
    teacher = tiny_teacher()
    student = make_student(teacher, "DW-2-3")
    assert (student.config.encoder_layers, student.config.decoder_layers) == (2, 3)
    t, s = teacher.state_dict(), student.state_dict()
    for position, index in enumerate([0, 3]):
        assert torch.equal(
            s[f"model.encoder.layers.{position}.fc1.weight"], t[f"model.encoder.layers.{index}.fc1.weight"]
        )
    for position, index in enumerate([0, 1, 3]):
        assert torch.equal(
            s[f"model.decoder.layers.{position}.encoder_attn.q_proj.weight"],
            t[f"model.decoder.layers.{index}.encoder_attn.q_proj.weight"],
        )
    for shared in (
        "model.encoder.conv1.weight",
        "model.encoder.embed_positions.weight",
        "model.decoder.embed_tokens.weight",
        "model.decoder.layer_norm.weight",
    ):
        assert torch.equal(s[shared], t[shared])
    smaller = sum(p.numel() for p in student.parameters()) < sum(p.numel() for p in teacher.parameters())
    assert smaller
    student.save_pretrained(tmp_path, safe_serialization=True)
    assert (tmp_path / "model.safetensors").exists() and not list(tmp_path.glob("*.bin"))
    reloaded = WhisperForConditionalGeneration.from_pretrained(tmp_path, use_safetensors=True)
    features = torch.randn(1, 80, 100)
    decoder = torch.tensor([[1, 5, 7]])
    with torch.no_grad():
        assert torch.allclose(
            reloaded(input_features=features, decoder_input_ids=decoder).logits,
            student.eval()(input_features=features, decoder_input_ids=decoder).logits,
            atol=1e-6,
        )


def test_a_full_size_student_equals_its_teacher() -> None:
    teacher = tiny_teacher().eval()
    student = make_student(teacher, "DW-4-4").eval()
    features, decoder = torch.randn(1, 80, 100), torch.tensor([[1, 2, 3]])
    with torch.no_grad():
        assert torch.allclose(
            student(input_features=features, decoder_input_ids=decoder).logits,
            teacher(input_features=features, decoder_input_ids=decoder).logits,
        )


def test_bad_student_names_are_rejected() -> None:
    with pytest.raises(ParamsError, match="DW-<encoder layers>-<decoder layers>"):
        make_student(tiny_teacher(), "DW8-8")
