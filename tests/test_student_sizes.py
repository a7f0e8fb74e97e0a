"""Parameter counts of the whisper-large-v2 students, built without weights on the meta device.

`make_student` copies the teacher's weights to the CPU, which a meta-device teacher cannot do, so these tests
check its two ingredients: the config change (encoder_layers/decoder_layers from `parse_student`) and the layer
indices.
"""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import WhisperConfig, WhisperForConditionalGeneration

from kdlib.config import parse_student
from kdlib.students import layer_indices

LARGE_V2 = WhisperConfig(
    d_model=1280,
    encoder_layers=32,
    decoder_layers=32,
    encoder_attention_heads=20,
    decoder_attention_heads=20,
    encoder_ffn_dim=5120,
    decoder_ffn_dim=5120,
    vocab_size=51865,
    num_mel_bins=80,
    max_source_positions=1500,
    max_target_positions=448,
)


def parameter_count(config: WhisperConfig) -> int:
    """Distinct parameters (the output projection is tied to the token embedding) of a weightless model."""
    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config)
    assert model.proj_out.weight is model.model.decoder.embed_tokens.weight
    return sum(parameter.numel() for parameter in model.parameters())


def test_teacher_size() -> None:
    assert parameter_count(LARGE_V2) == 1_543_304_960


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("DW-32-16", 1_123_526_400),
        ("DW-16-32", 1_228_486_400),
        ("DW-16-16", 808_707_840),
        ("DW-8-8", 441_409_280),
    ],
)
def test_student_sizes(name: str, expected: int) -> None:
    config = copy.deepcopy(LARGE_V2)
    config.encoder_layers, config.decoder_layers = parse_student(name)
    assert parameter_count(config) == expected


def test_large_v2_layer_indices() -> None:
    assert layer_indices(32, 16) == [*range(0, 30, 2), 31]
    assert layer_indices(32, 8) == [0, 4, 8, 13, 17, 22, 26, 31]
