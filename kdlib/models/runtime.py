"""Where and in which precision models run, and Whisper's token conventions (the model classes: `kdlib.models.families`)."""

from __future__ import annotations

import ctypes
import gc
import platform

import torch
from accelerate import PartialState
from transformers import ProcessorMixin, WhisperProcessor


def resolve_device(preference: str = "auto") -> torch.device:
    """This process's device; under `accelerate launch`, the GPU of its local rank."""
    if preference == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("params ask for device 'cuda' but no CUDA device is available")
    return PartialState(cpu=cpu_only(preference)).device


def cpu_only(preference: str = "auto") -> bool:
    """Whether to run on the CPU (for `Accelerator(cpu=...)`: gloo across CPU processes)."""
    return preference == "cpu" or not torch.cuda.is_available()


def compute_signature(preference: str = "auto") -> dict[str, str | int]:
    """What the bytes a model trains or computes to depend on besides its inputs, for the content keys of cached
    results: the device (on the CPU, torch's thread count, which changes how matrix products are summed, and the
    platform; on a GPU, its name) and torch's version. Changing `OMP_NUM_THREADS` or the machine makes new
    entries instead of reusing ones whose bytes would differ."""
    if cpu_only(preference):
        return {
            "device": "cpu",
            "threads": torch.get_num_threads(),
            "platform": platform.machine(),
            "torch": torch.__version__,
        }
    return {"device": torch.cuda.get_device_name(), "torch": torch.__version__}


def resolve_dtype(preference: str, device: torch.device) -> torch.dtype:
    """`auto`: bfloat16 on a GPU, float32 on the CPU (where bf16 matmuls are slow)."""
    if preference == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, preference)


def resolve_attention(preference: str) -> str:
    return "sdpa" if preference == "auto" else preference


def release_memory() -> None:
    """Free what unreachable objects hold (models and optimiser states sit in reference cycles once accelerate
    has wrapped them) and hand the freed heap back to the system: glibc keeps freed blocks of a few MB for the
    process, so a stage that is done with a 1.5 B model would otherwise keep most of its memory (measured here:
    7.8 GB kept after distilling DW-8-8 of whisper-large-v2, 0.7 GB after this)."""
    gc.collect()
    trim = getattr(ctypes.CDLL(None), "malloc_trim", None)  # glibc's; other C libraries go without
    if trim is not None:
        trim(0)


def parameter_count(model: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


def prompt_ids(processor: WhisperProcessor, language: str, task: str) -> list[int]:
    """Whisper's decoder prompt: start-of-transcript, language, task, no-timestamps."""
    tokens = ["<|startoftranscript|>", f"<|{language}|>", f"<|{task}|>", "<|notimestamps|>"]
    ids = processor.tokenizer.convert_tokens_to_ids(tokens)
    missing = [token for token, index in zip(tokens, ids) if index is None or index == processor.tokenizer.unk_token_id]
    if missing:
        raise ValueError(f"the tokenizer has no special token {missing[0]}")
    return ids


def target_ids(processor: WhisperProcessor, text: str, prompt: list[int]) -> list[int]:
    """The full decoder sequence of a transcript: prompt, text tokens, end-of-text. A transcript with
    timestamp tokens (`<|0.00|> text<|1.20|>`) is one to predict timestamps for: its prompt loses `<|notimestamps|>`."""
    tokenizer = processor.tokenizer
    tokens = tokenizer.encode(text, add_special_tokens=False)
    no_timestamps = tokenizer.convert_tokens_to_ids("<|notimestamps|>")
    if any(token > no_timestamps for token in tokens):  # Whisper's timestamp tokens follow <|notimestamps|>
        prompt = [token for token in prompt if token != no_timestamps]
    return [*prompt, *tokens, tokenizer.eos_token_id]


def text_token_ids(processor: ProcessorMixin, sequence: list[int]) -> list[int]:
    """The transcript's own tokens of a generated sequence (special tokens removed)."""
    special = set(processor.tokenizer.all_special_ids)
    return [index for index in sequence if index not in special]
