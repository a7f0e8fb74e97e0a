"""The model families kdlib transcribes with: one class per family, each running and decoding its
checkpoints the way their authors intend. They load by one method (`SpeechModel.load`): each family names
its model and processor classes and what it does to a loaded checkpoint (`prepare`).

- `WhisperModel`: `WhisperForConditionalGeneration` (the teacher, the students, OpenAI's checkpoints),
  language and task forced in the decoder prompt, clips cut into the model's 30 s window.
- `SeamlessModel`: SeamlessM4T (v1 and v2, e.g. `facebook/seamless-m4t-v2-large`) speech-to-text,
  its text decoder started with the target-language token (`tgt_lang`).
- `CtcModel`: wav2vec2-style CTC models, e.g. MMS (`facebook/mms-1b-all`): greedy CTC decoding; when
  the checkpoint has language adapters, the target language's adapter and vocabulary are loaded.

The class is chosen by the checkpoint's `config.json` (`model_type`) in `MODEL_TYPES`. Whisper takes the
language as params give it (`ar`); the others name languages with ISO 639-3 codes, looked up in
their `language_codes` or given per family in `evaluate.language_codes`. Weights load from
safetensors only.
"""

from __future__ import annotations

import functools
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from huggingface_hub.errors import HFValidationError
from safetensors import SafetensorError
from transformers import (
    AutoConfig,
    AutoModelForCTC,
    AutoModelForSpeechSeq2Seq,
    AutoProcessor,
    BatchFeature,
    ProcessorMixin,
    WhisperForConditionalGeneration,
    WhisperProcessor,
)

from kdlib.config import GenerationParams
from kdlib.config.errors import KdlibError
from kdlib.models.decoding import WhisperGreedy, greedy_settings, unsupported
from kdlib.models.runtime import parameter_count, resolve_attention, resolve_dtype, text_token_ids


class _WhisperOwnCall(logging.Filter):
    """Drops the one warning that transformers' Whisper `generate()` causes itself: it hands its generation config
    and its suppressed tokens to the generic `generate()` together (a workaround of its own, see transformers PR
    #48108), which then calls that deprecated. No argument of kdlib's makes or avoids it."""

    MESSAGE = "Passing `generation_config` together with generation-related arguments=({'"

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith(self.MESSAGE) and "suppress_tokens" in message)


logging.getLogger("transformers.generation.utils").addFilter(_WhisperOwnCall())


@dataclass
class SpeechModel(ABC):
    """A checkpoint ready to transcribe, with its processor and where it came from.

    `language` is the family's own code for the target language (None for Whisper, which takes it
    from the generation settings).
    """

    family: ClassVar[str]
    language_codes: ClassVar[Mapping[str, str]] = {}  # Whisper's language names → this family's codes

    name: str
    source: str
    model: torch.nn.Module
    processor: ProcessorMixin
    language: str | None = None

    # how a family's checkpoints load: the model and processor classes, and whether the model takes
    # `attn_implementation`
    model_loader: ClassVar[type] = AutoModelForSpeechSeq2Seq
    processor_loader: ClassVar[type] = AutoProcessor
    attention: ClassVar[bool] = True

    @classmethod
    def load(
        cls,
        source: str | Path,
        device: torch.device,
        generation: GenerationParams = GenerationParams(),
        name: str | None = None,
        language_codes: Mapping[str, str] | None = None,
    ) -> SpeechModel:
        """Load a checkpoint of this family from a hub id or a local folder (safetensors only), on `device`, in
        eval mode, with the family's code for the target language (`target_language`)."""
        language = cls.target_language(generation.language, language_codes)
        processor = cls.processor_loader.from_pretrained(str(source))
        options = {"attn_implementation": resolve_attention(generation.attn_implementation)} if cls.attention else {}
        model = cls.model_loader.from_pretrained(
            str(source), dtype=resolve_dtype(generation.dtype, device), use_safetensors=True, **options
        )
        cls.prepare(model, processor, language)
        model.to(device).eval()
        return cls(_name(source, name), str(source), model, processor, language)

    @classmethod
    def target_language(cls, language: str, overrides: Mapping[str, str] | None = None) -> str | None:
        """The language a loaded model keeps (`language_code`; None where generation takes it from params)."""
        return cls.language_code(language, overrides)

    @classmethod
    def prepare(cls, model: torch.nn.Module, processor: ProcessorMixin, language: str | None) -> None:
        """Anything a family does to a loaded checkpoint before it runs (CTC: its language adapter)."""
        return None  # nothing, for most families

    @abstractmethod
    def generate(self, clips: Sequence[np.ndarray], generation: GenerationParams) -> list[list[int]]:
        """The token ids generated for each clip (each clip no longer than `window_samples`), which `decode`
        turns into its transcript: the text's tokens, or (Whisper) the whole decoder sequence."""

    def front_end(self) -> Callable[[Sequence[np.ndarray]], torch.Tensor] | None:
        """A function of the clips that the loader (its workers or read-ahead thread) runs ahead of `generate` (its
        result is passed to it as `features`); None: `generate` computes what it needs."""
        return None

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def parameters(self) -> int:
        return parameter_count(self.model)

    @property
    def window_samples(self) -> int | None:
        """The longest clip the model takes, in samples; None when it takes a clip whole."""
        return None

    @classmethod
    def language_code(cls, language: str, overrides: Mapping[str, str] | None = None) -> str:
        """This family's code for `language` (params' `evaluate.language_codes` first)."""
        if overrides and cls.family in overrides:
            return overrides[cls.family]
        code = cls.language_codes.get(language.lower())
        if code is None:
            raise ValueError(
                f"no {cls.family} language code known for {language!r}: "
                f"set evaluate.language_codes.{cls.family} in params"
            )
        return code

    def decode(self, token_ids: Sequence[int], timestamps: bool = False) -> str:
        """The text of a transcript's tokens (`timestamps`: with Whisper's timestamp tokens as `<|1.08|>`;
        families without them ignore it)."""
        return self.processor.tokenizer.decode(list(token_ids), skip_special_tokens=True).strip()


class WhisperModel(SpeechModel):
    """Whisper: log-mel windows of the feature extractor's chunk length (30 s), language and task forced."""

    family = "whisper"
    model_loader = WhisperForConditionalGeneration
    processor_loader = WhisperProcessor

    @classmethod
    def target_language(cls, language: str, overrides: Mapping[str, str] | None = None) -> None:
        """None: Whisper takes the language from the generation settings at each call."""
        return None

    @classmethod
    def language_code(cls, language: str, overrides: Mapping[str, str] | None = None) -> str:
        """Whisper names languages as params do."""
        return language

    @property
    def window_samples(self) -> int:
        extractor = self.processor.feature_extractor
        return int(extractor.chunk_length * extractor.sampling_rate)

    def max_new_tokens(self, generation: GenerationParams) -> int:
        """`generation.max_new_tokens`, or when it is null the checkpoint's: its generation `max_length` less the
        decoder prompt (start, language, task and, without timestamps, <|notimestamps|>): 448 − 4 = 444 for
        Whisper, as the authors' evaluation (transformers' generate given no length) had it."""
        if generation.max_new_tokens is not None:
            return generation.max_new_tokens
        prompt = 3 if generation.return_timestamps else 4
        return self.model.generation_config.max_length - prompt

    def log_mel(self, clips: Sequence[np.ndarray], device: torch.device | str | None = None) -> torch.Tensor:
        """The clips' log-mel windows (float32), computed on `device` (the model's by default: on a GPU the STFT
        of a batch of 30 s windows costs about as much CPU time as the encoder's GPU time)."""
        extractor = self.processor.feature_extractor
        device = str(self.device if device is None else device)
        return extractor(
            list(clips), sampling_rate=extractor.sampling_rate, return_tensors="pt", device=device
        ).input_features

    def front_end(self) -> Callable[[Sequence[np.ndarray]], torch.Tensor] | None:
        """The log-mel front end for the loader when the model runs on the CPU (the same function, so the same
        features); None on a GPU, where the model's device computes them."""
        return functools.partial(self.log_mel, device="cpu") if self.device.type == "cpu" else None

    @torch.inference_mode()
    def generate(
        self, clips: Sequence[np.ndarray], generation: GenerationParams, features: torch.Tensor | None = None
    ) -> list[list[int]]:
        """Each clip's decoder sequence as generated: <|startoftranscript|>, language, task (and <|notimestamps|>
        without timestamps), the text and timestamp tokens, and <|endoftext|> when the model ended the transcript
        itself (a transcript cut at the length cap has none); padding removed (`features`: the clips' log-mel
        windows when the loader computed them). Greedy decoding runs kdlib's own loop (`kdlib.models.decoding`:
        the same sequences, faster); what it does not mirror (`decoding.unsupported`) runs transformers'
        generate, one call per batch (`force_unique_generate_call`): with timestamps, transformers 5 would
        otherwise go on from the last timestamp of a window it did not finish, and drop the tokens after it."""
        features = self.log_mel(clips) if features is None else features
        features = features.to(self.device, dtype=self.model.dtype)
        prompt = 3 if generation.return_timestamps else 4
        end = self.processor.tokenizer.eos_token_id
        if unsupported(self.model, generation, self.max_new_tokens(generation)) is None:
            settings = greedy_settings(self.model, generation, self.max_new_tokens(generation))
            return [_until_end(row, prompt, end) for row in WhisperGreedy.of(self.model)(features, settings)]
        output = self.model.generate(
            input_features=features,
            # Whisper reads every frame of its window (it masks none); saying so spares generate() its guess
            # from the pad token, which is the end-of-text token here
            attention_mask=torch.ones(features.shape[0], features.shape[-1], dtype=torch.long, device=self.device),
            language=generation.language,
            task=generation.task,
            num_beams=generation.num_beams,
            # Whisper counts `max_length` after its prompt (start, language, task): the same limit as
            # `max_new_tokens`, which would clash with the length Whisper's generate() fills in
            max_length=self.max_new_tokens(generation),
            return_timestamps=generation.return_timestamps,
            force_unique_generate_call=True,
        )
        sequences = output.sequences if hasattr(output, "sequences") else output
        return [_until_end(row, prompt, end) for row in sequences.tolist()]

    def decode(self, token_ids: Sequence[int], timestamps: bool = False) -> str:
        """The text of a transcript's tokens; timestamp tokens dropped, or written `<|1.08|>` with `timestamps`."""
        tokenizer = self.processor.tokenizer
        return tokenizer.decode(list(token_ids), skip_special_tokens=True, decode_with_timestamps=timestamps).strip()


class SeamlessModel(SpeechModel):
    """SeamlessM4T speech-to-text: the text decoder started with the target-language token."""

    family = "seamless"
    language_codes = {"ar": "arb", "arabic": "arb"}  # Modern Standard Arabic
    model_loader = AutoModelForSpeechSeq2Seq  # SeamlessM4T(v2)ForSpeechToText, by model_type

    @torch.inference_mode()
    def generate(self, clips: Sequence[np.ndarray], generation: GenerationParams) -> list[list[int]]:
        inputs = _padded_batch(self.processor, clips)
        output = self.model.generate(
            input_features=inputs.input_features.to(self.device, dtype=self.model.dtype),
            attention_mask=inputs.attention_mask.to(self.device),
            tgt_lang=self.language,
            num_beams=generation.num_beams,
            max_new_tokens=generation.max_new_tokens,
        )
        sequences = output.sequences if hasattr(output, "sequences") else output
        return [text_token_ids(self.processor, row) for row in sequences.tolist()]


class CtcModel(SpeechModel):
    """wav2vec2-style CTC (e.g. MMS): greedy decoding, the target language's adapter when there are adapters."""

    family = "ctc"
    language_codes = {"ar": "ara", "arabic": "ara"}
    model_loader = AutoModelForCTC
    attention = False

    @classmethod
    def prepare(cls, model: torch.nn.Module, processor: ProcessorMixin, language: str | None) -> None:
        """A checkpoint with language adapters (MMS) gets the target language's adapter and vocabulary."""
        if getattr(model.config, "adapter_attn_dim", None) is not None:
            model.load_adapter(language, use_safetensors=True)
            processor.tokenizer.set_target_lang(language)

    @torch.inference_mode()
    def generate(self, clips: Sequence[np.ndarray], generation: GenerationParams) -> list[list[int]]:
        """Greedy CTC: each clip's frame-wise best tokens over its own frames (padding cut off),
        repeats merged and blanks dropped."""
        inputs = _padded_batch(self.processor, clips)
        logits = self.model(
            input_values=inputs.input_values.to(self.device, dtype=self.model.dtype),
            attention_mask=inputs.attention_mask.to(self.device),
        ).logits
        frames = self.model._get_feat_extract_output_lengths(inputs.attention_mask.sum(-1)).tolist()
        blank = self.model.config.pad_token_id
        best = logits.argmax(-1).tolist()
        tokens = []
        for row, length in zip(best, frames):
            merged = [
                index for position, index in enumerate(row[:length]) if position == 0 or index != row[position - 1]
            ]
            tokens.append([index for index in merged if index != blank])
        return tokens

    def decode(self, token_ids: Sequence[int], timestamps: bool = False) -> str:
        """The tokens come merged and without blanks from `generate`, so they are not grouped again
        (transformers' `skip_special_tokens=True` path, which drops the blank before merging repeats
        and so fuses doubled letters, is not relied on)."""
        return self.processor.tokenizer.decode(list(token_ids), skip_special_tokens=True, group_tokens=False).strip()


# each checkpoint `model_type` kdlib runs → the class that runs it
MODEL_TYPES: dict[str, type[SpeechModel]] = {
    "whisper": WhisperModel,
    "seamless_m4t": SeamlessModel,
    "seamless_m4t_v2": SeamlessModel,
    "wav2vec2": CtcModel,
    "wav2vec2-conformer": CtcModel,
    "hubert": CtcModel,
    "wavlm": CtcModel,
    "data2vec-audio": CtcModel,
}


class ModelUnavailable(KdlibError, RuntimeError):
    """A model that cannot be found: not a local checkpoint folder, not in the hub cache, and the hub unreachable
    or without it."""


def model_class(source: str | Path, param: str | None = None) -> type[SpeechModel]:
    """The class that runs the checkpoint, from its `model_type`; ModelUnavailable (one line naming it, and
    `param`, the param that names it) when its config cannot be read."""
    try:
        model_type = AutoConfig.from_pretrained(str(source)).model_type
    except (OSError, HFValidationError) as error:
        what = f"{param} {str(source)!r}" if param else f"the model {str(source)!r}"
        why = " ".join(str(error).split())
        raise ModelUnavailable(
            f"{what} could not be loaded: it is not a local checkpoint folder, not in the local hub cache, and the "
            f"hub is unreachable or has no such model ({why[:300]}{'…' if len(why) > 300 else ''}): check the id and "
            "the network (or `huggingface-cli login`), or download it and give its folder"
        ) from None
    if model_type not in MODEL_TYPES:
        raise ValueError(f"{source}: model type {model_type!r} is not supported; kdlib evaluates {sorted(MODEL_TYPES)}")
    return MODEL_TYPES[model_type]


def model_family(source: str | Path) -> str:
    """The checkpoint's family (`whisper`, `seamless`, `ctc`), from its `model_type`."""
    return model_class(source).family


def load_model(
    source: str | Path,
    device: torch.device,
    generation: GenerationParams = GenerationParams(),
    name: str | None = None,
    language_codes: Mapping[str, str] | None = None,
) -> SpeechModel:
    """Load any supported checkpoint (hub id or local folder) for transcription, with its family's class;
    a checkpoint that cannot be read is a RuntimeError naming it."""
    family = model_class(source)
    try:
        return family.load(source, device, generation, name, language_codes)
    except (OSError, ValueError, SafetensorError) as error:
        raise RuntimeError(f"cannot load the model at {source}: {' '.join(str(error).split())}") from error


def language_code(family: str, language: str, overrides: Mapping[str, str] | None = None) -> str:
    """The code `family` uses for `language` (params' `evaluate.language_codes` first)."""
    classes = {family_class.family: family_class for family_class in MODEL_TYPES.values()}
    return classes[family].language_code(language, overrides)


def _until_end(row: list[int], prompt: int, end: int) -> list[int]:
    """A generated row up to its first end token after the `prompt` tokens (kept), padding cut off."""
    return row[: row.index(end, prompt) + 1] if end in row[prompt:] else row


def _padded_batch(processor: ProcessorMixin, clips: Sequence[np.ndarray]) -> BatchFeature:
    """The clips' features padded to the longest, with the attention mask that marks the padding."""
    extractor = processor.feature_extractor
    return extractor(
        list(clips),
        sampling_rate=extractor.sampling_rate,
        padding=True,
        return_attention_mask=True,
        return_tensors="pt",
    )


def _name(source: str | Path, name: str | None) -> str:
    """The given name, or the checkpoint's folder name (a hub id's last part)."""
    return name or Path(str(source)).name
