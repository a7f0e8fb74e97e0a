"""DW-e-d students: e encoder and d decoder layers, initialised from the teacher.

As in distil-whisper, everything but the transformer layers (convolutional front end,
positional and token embeddings, final layer norms, the tied output projection) is copied
from the teacher, and the student's layers are copies of maximally spaced teacher layers,
first and last kept: `numpy.linspace(0, L - 1, n)` truncated to integers (a one-layer side
keeps the teacher's last layer, the one its output projection was trained on). For
whisper-large-v2 (32 + 32 layers): DW-32-16 keeps every encoder layer and decoder layers
0, 2, 4, …, 28, 31; DW-16-16 keeps 0, 2, …, 28, 31 on both sides; DW-8-8 keeps
0, 4, 8, 13, 17, 22, 26, 31 on both sides.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from transformers import WhisperConfig, WhisperForConditionalGeneration

from kdlib.config import parse_student

# openai/whisper-large-v2's architecture (its config.json): 32 + 32 layers of width 1280, 80 mel bins, a 30 s
# window (1,500 encoder frames), 51,865 tokens; 1,543,304,960 parameters
WHISPER_LARGE_V2 = dict(
    d_model=1280,
    encoder_layers=32,
    decoder_layers=32,
    encoder_attention_heads=20,
    decoder_attention_heads=20,
    encoder_ffn_dim=5120,
    decoder_ffn_dim=5120,
    num_mel_bins=80,
    max_source_positions=1500,
    max_target_positions=448,
    vocab_size=51865,
)


def layer_indices(teacher_layers: int, student_layers: int) -> list[int]:
    """Teacher layers a student keeps: maximally spaced, the first and the last included."""
    if not 1 <= student_layers <= teacher_layers:
        raise ValueError(f"a student needs 1..{teacher_layers} layers, not {student_layers}")
    if student_layers == 1:
        return [teacher_layers - 1]
    return [int(i) for i in np.linspace(0, teacher_layers - 1, student_layers, dtype=int)]


def student_config(teacher: WhisperConfig, name: str) -> WhisperConfig:
    """The config of a DW-e-d student of a teacher with config `teacher`: its layers, all else the same."""
    config = copy.deepcopy(teacher)
    config.encoder_layers, config.decoder_layers = parse_student(name)
    return config


def make_student(teacher: WhisperForConditionalGeneration, name: str) -> WhisperForConditionalGeneration:
    """A DW-e-d student (e.g. `"DW-16-16"`) of `teacher`, on the CPU in float32.

    The student is allocated without initialisation (every tensor is then copied from the teacher, converted
    to float32 one at a time), so that making a student of whisper-large-v2 takes seconds and no more memory
    than the student itself."""
    config = student_config(teacher.config, name)
    with torch.device("meta"):
        student = WhisperForConditionalGeneration(config)
    student.to_empty(device="cpu")
    student.tie_weights()  # to_empty unties the output projection from the token embedding
    source = teacher.state_dict()
    mapping = {
        "model.encoder.layers": layer_indices(teacher.config.encoder_layers, config.encoder_layers),
        "model.decoder.layers": layer_indices(teacher.config.decoder_layers, config.decoder_layers),
    }
    with torch.no_grad():
        for key, tensor in student.state_dict().items():
            teacher_key = key
            for prefix, indices in mapping.items():
                if key.startswith(prefix + "."):
                    index, rest = key[len(prefix) + 1 :].split(".", 1)
                    teacher_key = f"{prefix}.{indices[int(index)]}.{rest}"
            tensor.copy_(source[teacher_key])
    student.generation_config = copy.deepcopy(teacher.generation_config)
    return student
