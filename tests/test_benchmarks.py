"""The compute-floor arithmetic of benchmarks/bench_transcribe.py (CPU, no data, no trained model)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from transformers import WhisperConfig, WhisperForConditionalGeneration

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_transcribe.py"
spec = importlib.util.spec_from_file_location("bench_transcribe", SCRIPT)
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def small_whisper(frames: int, decoder_layers: int = 1) -> WhisperForConditionalGeneration:
    config = WhisperConfig(
        vocab_size=64,
        num_mel_bins=8,
        d_model=16,
        encoder_layers=2,
        decoder_layers=decoder_layers,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_source_positions=frames,
        max_target_positions=16,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=1,
        decoder_start_token_id=2,
    )
    return WhisperForConditionalGeneration(config)


def test_encoder_flops_are_twice_encoder_parameters_times_frames() -> None:
    model = small_whisper(frames=20)
    encoder_parameters = sum(parameter.numel() for parameter in model.model.encoder.parameters())
    assert bench.encoder_flops(model) == 2 * encoder_parameters * 20
    assert bench.encoder_flops(small_whisper(frames=20, decoder_layers=3)) == bench.encoder_flops(model)  # no decoder
    assert bench.encoder_flops(small_whisper(frames=40)) > 2 * bench.encoder_flops(model)  # more frames and positions


def test_floor_and_fraction_of_it() -> None:
    # 1 GFLOP per clip at 100 GFLOP/s: 100 clips/s at best; 10 clips in 2 s is 5 clips/s, 5% of it.
    assert bench.floor_fields(clips=10, seconds=2.0, flops_per_clip=1e9, flops_per_s=1e11) == {
        "floor_clips_per_s": 100.0,
        "fraction_of_floor": 0.05,
    }
    assert bench.floor_fields(3, 1.0, 7e9, 1e10)["floor_clips_per_s"] == pytest.approx(1.43)  # 3 significant figures


def test_matmul_rate_is_positive_on_the_cpu() -> None:
    assert bench.matmul_tflops(torch.device("cpu"), torch.float32, n=64, repeats=2) > 0
