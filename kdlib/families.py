"""The model families stage 04 can evaluate, each loaded and run the way its authors intend.

- **whisper**: `WhisperForConditionalGeneration` (the teacher, the students, OpenAI's checkpoints),
  language and task forced in the decoder prompt (`kdlib.models`).
- **seamless**: SeamlessM4T (v1 and v2, e.g. `facebook/seamless-m4t-v2-large`) speech-to-text,
  its text decoder started with the target-language token (`tgt_lang`).
- **ctc**: wav2vec2-style CTC models, e.g. MMS (`facebook/mms-1b-all`): greedy CTC decoding; when
  the checkpoint has language adapters, the target language's adapter and vocabulary are loaded.

The family is read from the checkpoint's `config.json` (`model_type`). Whisper takes the
language as params give it (`ar`); the others name languages with ISO 639-3 codes, looked up in
`LANGUAGE_CODES` or given per family in `evaluate.language_codes`. Weights load from
safetensors only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from transformers import AutoConfig, AutoModelForCTC, AutoProcessor, SeamlessM4TForSpeechToText, SeamlessM4Tv2ForSpeechToText

from kdlib.config import GenerationParams
from kdlib.models import LoadedModel, load_whisper, resolve_attention, resolve_dtype, text_token_ids

MODEL_TYPES = {
    "whisper": "whisper",
    "seamless_m4t": "seamless",
    "seamless_m4t_v2": "seamless",
    "wav2vec2": "ctc",
    "wav2vec2-conformer": "ctc",
    "hubert": "ctc",
    "wavlm": "ctc",
    "data2vec-audio": "ctc",
}

# Whisper's language names → each family's code (SeamlessM4T: MSA is `arb`; MMS: `ara`)
LANGUAGE_CODES: dict[str, dict[str, str]] = {
    "seamless": {"ar": "arb", "arabic": "arb"},
    "ctc": {"ar": "ara", "arabic": "ara"},
}


def model_family(source: str | Path) -> str:
    """`whisper`, `seamless` or `ctc`, from the checkpoint's `model_type`."""
    return _family(AutoConfig.from_pretrained(str(source)).model_type, source)


def _family(model_type: str, source: str | Path) -> str:
    if model_type not in MODEL_TYPES:
        raise ValueError(
            f"{source}: model type {model_type!r} is not supported; kdlib evaluates {sorted(MODEL_TYPES)}"
        )
    return MODEL_TYPES[model_type]


def language_code(family: str, language: str, overrides: Mapping[str, str] | None = None) -> str:
    """The code `family` uses for `language` (params' `evaluate.language_codes` first)."""
    if family == "whisper":
        return language
    if overrides and family in overrides:
        return overrides[family]
    code = LANGUAGE_CODES[family].get(language.lower())
    if code is None:
        raise ValueError(
            f"no {family} language code known for {language!r}: set evaluate.language_codes.{family} in params"
        )
    return code


def load_model(
    source: str | Path,
    device: torch.device,
    generation: GenerationParams = GenerationParams(),
    name: str | None = None,
    language_codes: Mapping[str, str] | None = None,
) -> LoadedModel:
    """Load any supported checkpoint (hub id or local folder) for transcription."""
    model_type = AutoConfig.from_pretrained(str(source)).model_type
    family = _family(model_type, source)
    name = name or Path(str(source)).name
    if family == "whisper":
        return load_whisper(source, device, generation, name)
    language = language_code(family, generation.language, language_codes)
    dtype = resolve_dtype(generation.dtype, device)
    processor = AutoProcessor.from_pretrained(str(source))
    if family == "seamless":
        model = _seamless_class(model_type).from_pretrained(
            str(source), dtype=dtype, attn_implementation=resolve_attention(generation.attn_implementation), use_safetensors=True
        )
    else:
        model = AutoModelForCTC.from_pretrained(str(source), dtype=dtype, use_safetensors=True)
        if getattr(model.config, "adapter_attn_dim", None) is not None:
            model.load_adapter(language, use_safetensors=True)
            processor.tokenizer.set_target_lang(language)
    model.to(device).eval()
    return LoadedModel(name, str(source), model, processor, family=family, language=language)


def _seamless_class(model_type: str) -> type:
    return SeamlessM4Tv2ForSpeechToText if model_type == "seamless_m4t_v2" else SeamlessM4TForSpeechToText


def generate_seamless(loaded: LoadedModel, clips: Sequence[np.ndarray], generation: GenerationParams) -> list[list[int]]:
    """Text token ids of each clip, the decoder started with the target-language token."""
    extractor = loaded.processor.feature_extractor
    inputs = extractor(list(clips), sampling_rate=extractor.sampling_rate, padding=True, return_attention_mask=True, return_tensors="pt")
    output = loaded.model.generate(
        input_features=inputs.input_features.to(loaded.device, dtype=loaded.model.dtype),
        attention_mask=inputs.attention_mask.to(loaded.device),
        tgt_lang=loaded.language,
        num_beams=generation.num_beams,
        max_new_tokens=generation.max_new_tokens,
    )
    sequences = output.sequences if hasattr(output, "sequences") else output
    return [text_token_ids(loaded.processor, row) for row in sequences.tolist()]


def generate_ctc(loaded: LoadedModel, clips: Sequence[np.ndarray]) -> list[list[int]]:
    """Greedy CTC: each clip's frame-wise best tokens over its own frames (padding cut off),
    repeats merged and blanks dropped."""
    extractor = loaded.processor.feature_extractor
    inputs = extractor(list(clips), sampling_rate=extractor.sampling_rate, padding=True, return_attention_mask=True, return_tensors="pt")
    model = loaded.model
    logits = model(
        input_values=inputs.input_values.to(loaded.device, dtype=model.dtype),
        attention_mask=inputs.attention_mask.to(loaded.device),
    ).logits
    frames = model._get_feat_extract_output_lengths(inputs.attention_mask.sum(-1)).tolist()
    blank = model.config.pad_token_id
    best = logits.argmax(-1).tolist()
    tokens = []
    for row, length in zip(best, frames):
        merged = [index for position, index in enumerate(row[:length]) if position == 0 or index != row[position - 1]]
        tokens.append([index for index in merged if index != blank])
    return tokens


def decode(loaded: LoadedModel, token_ids: Sequence[int]) -> str:
    """The text of a transcript's tokens.

    CTC tokens come merged and without blanks from `generate_ctc`, so they are not grouped
    again (and transformers' `skip_special_tokens=True` path, which drops the blank before
    merging repeats and so fuses doubled letters, is not relied on).
    """
    tokenizer = loaded.processor.tokenizer
    if loaded.family == "ctc":
        return tokenizer.decode(list(token_ids), skip_special_tokens=True, group_tokens=False).strip()
    return tokenizer.decode(list(token_ids), skip_special_tokens=True).strip()
