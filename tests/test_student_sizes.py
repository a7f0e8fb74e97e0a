"""Parameter counts of the whisper-large-v2 students, built without weights on the meta device.

`make_student` copies the teacher's weights to the CPU, which a meta-device teacher cannot do, so these tests
check its two ingredients: the student's config (`student_config`, which `make_student` builds on) and the layer
indices.
"""

from __future__ import annotations

import pytest
import torch
from transformers import WhisperConfig, WhisperForConditionalGeneration

from kdlib.models.students import WHISPER_LARGE_V2, layer_indices, student_config

LARGE_V2 = WhisperConfig(**WHISPER_LARGE_V2)


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
    assert parameter_count(student_config(LARGE_V2, name)) == expected


def test_large_v2_layer_indices() -> None:
    assert layer_indices(32, 16) == [*range(0, 30, 2), 31]
    assert layer_indices(32, 8) == [0, 4, 8, 13, 17, 22, 26, 31]
