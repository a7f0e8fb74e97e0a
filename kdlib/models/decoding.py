"""Greedy Whisper decoding with little per-step overhead: the same sequences as transformers' `generate`, faster.

`WhisperForConditionalGeneration.generate` spends most of a small model's time outside the model: per step it
runs its logits processors, stopping criteria, cache bookkeeping and mask builders, and it keeps decoding rows
that have already ended until the longest row of the batch ends. `WhisperGreedy` runs the same computation with
none of that:

- the encoder runs as the model's own; the prompt step (`<|sot|><|lang|><|task|>`, and `<|notimestamps|>`
  without timestamps) and each later step are the decoder written out with the model's own weights, the same
  operations in the same order and on the same shapes as transformers' Whisper layers with SDPA attention
  (q scaled before attention, SDPA with scale 1, exact GELU), so the logits are bitwise `generate`'s; heads
  are views where transformers copies them;
- the self-attention keys and values go into buffers allocated once per batch for the longest sequence, and
  attention reads views of them (no concatenation per step);
- the processors `generate` would apply are applied in its order: suppressed tokens, begin-suppressed tokens at
  the first generated step, end-of-text held back until `min_new_tokens`, then (with timestamps) transformers'
  own `WhisperTimeStampLogitsProcessor` on the live rows' sequences; then argmax;
- rows that have emitted end-of-text leave the batch: live rows from its end move into their places and the
  buffers are narrowed (views), down to the fewest rows whose matrix products still give every row the same
  bits as the whole batch (`smallest_exact_batch`, probed once per batch size), so that each row's numbers are
  those of `generate`, which keeps every row to the end.

Each row comes back as `WhisperModel.generate` returns it (main's protocol, one generate call per batch): the
prompt, the generated tokens, and the end-of-text token when the row ended itself. Only the settings `generate`
handles with exactly these steps take this path: `unsupported` says why any other does not (beam search,
eager attention, temperature fallback, no-speech detection, processors kdlib does not mirror, ...), and the
caller then uses `generate` itself.

On the CPU, a small model's steps (`step_threads`) run on one thread: a step is a hundred operations of a few µs,
which two threads only slow down (each waits for the other). There, q, k and v are also projected in one product
where the exact-size probe finds the same bits as three (`smallest_exact_batch`).

The loop is written for any device: on a GPU it launches the same few kernels per step. It is not compiled:
`torch.compile` of the attention alone took 158 s on this project's 2-core CPU and ran slower than SDPA; on a GPU,
CUDA graphs over `_step` (static buffers, fixed row counts) are the next step, not yet measured.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import WhisperForConditionalGeneration
from transformers.generation.logits_process import WhisperTimeStampLogitsProcessor
from transformers.models.whisper.tokenization_whisper import TO_LANGUAGE_CODE

from kdlib.config import GenerationParams

# generation-config fields that add logits processors or change the search; the loop mirrors none of them,
# so each must hold one of these values (otherwise `generate` runs)
NEUTRAL_SETTINGS: dict[str, tuple] = {
    "do_sample": (None, False),
    "temperature": (None, 1.0),
    "repetition_penalty": (None, 1.0),
    "encoder_repetition_penalty": (None, 1.0),
    "no_repeat_ngram_size": (None, 0),
    "encoder_no_repeat_ngram_size": (None, 0),
    "bad_words_ids": (None,),
    "sequence_bias": (None,),
    "min_length": (None, 0),
    "forced_bos_token_id": (None,),
    "forced_eos_token_id": (None,),
    "exponential_decay_length_penalty": (None,),
    "guidance_scale": (None, 1.0),
    "renormalize_logits": (None, False),
    "no_speech_threshold": (None,),
    "logprob_threshold": (None,),
    "compression_ratio_threshold": (None,),
    "max_time": (None,),
    "stop_strings": (None,),
    "num_return_sequences": (None, 1),
    "output_scores": (None, False),
    "output_logits": (None, False),
    "return_dict_in_generate": (None, False),
    "prompt_ids": (None,),
    "condition_on_prev_tokens": (None, False),
    "cache_implementation": (None, "dynamic"),
}


# a decoding step with less work than this (2 · rows · the decoder's weights per step, in FLOPs) runs on one thread
SINGLE_THREAD_STEP_FLOPS = 100e6

# smallest_exact_batch's answers (floor, fused), by (rows, threads, device, dtype, decoder width, ffn width,
# vocabulary, heads)
EXACT_ROWS: dict[tuple, int] = {}


@dataclass(frozen=True)
class GreedySettings:
    """What `generate` would do for one batch, reduced to what the greedy loop needs."""

    prompt: tuple[int, ...]
    max_new_tokens: int
    eos: tuple[int, ...]
    suppress: tuple[int, ...]
    begin_suppress: tuple[int, ...]
    min_new_tokens: int
    timestamps: bool  # transformers' timestamp processor runs after the masks


def unsupported(model: torch.nn.Module, generation: GenerationParams, max_new_tokens: int) -> str | None:
    """Why `WhisperGreedy` cannot reproduce `model.generate` for these settings (`max_new_tokens` as
    `WhisperModel.generate` passes it as `max_length`); None when it can."""
    if not isinstance(model, WhisperForConditionalGeneration):
        return f"{type(model).__name__} is not a Whisper model"
    if getattr(model, "_original_forward", None) is not None:  # accelerate's mark on a forward it wrapped
        return "its forward runs under accelerate's mixed-precision autocast (a student in bf16 training)"
    if generation.num_beams != 1:
        return "beam search"
    if model.config._attn_implementation != "sdpa":
        return f"{model.config._attn_implementation} attention (the loop mirrors SDPA)"
    config = model.generation_config
    for name, neutral in NEUTRAL_SETTINGS.items():
        if getattr(config, name, None) not in neutral:
            return f"generation_config.{name} = {getattr(config, name)!r}"
    if not getattr(config, "is_multilingual", False):
        return "not a multilingual Whisper (no language and task tokens)"
    try:
        settings = greedy_settings(model, generation, max_new_tokens)
    except (KeyError, AttributeError, TypeError, ValueError) as error:
        return f"prompt not derivable ({error})"
    if settings.max_new_tokens < 1:
        return "no token to generate"
    if len(settings.prompt) > model.config.max_target_positions // 2 - 1:
        return "a prompt longer than generate's initial-token limit"
    return None


def greedy_settings(
    model: WhisperForConditionalGeneration, generation: GenerationParams, max_new_tokens: int
) -> GreedySettings:
    """The prompt, limits and masks `WhisperForConditionalGeneration.generate` uses for greedy decoding with
    `language` and `task` given and `max_length=max_new_tokens` (its `_retrieve_init_tokens`,
    `_set_max_new_tokens_and_length` and `_retrieve_logit_processors`)."""
    config = model.generation_config
    language = generation.language.lower()
    if language not in config.lang_to_id:
        code = TO_LANGUAGE_CODE.get(language, language)
        language = f"<|{code}|>"
    prompt = (
        int(config.decoder_start_token_id),
        int(config.lang_to_id[language]),
        int(config.task_to_id[generation.task]),
    )
    if not generation.return_timestamps:
        prompt += (int(config.no_timestamps_token_id),)
    eos = config.eos_token_id
    eos = (int(eos),) if isinstance(eos, int) else tuple(int(token) for token in eos)
    if not eos:
        raise ValueError("no eos_token_id")
    if getattr(config, "pad_token_id", None) is None:
        raise ValueError("no pad_token_id")
    if generation.return_timestamps and int(config.no_timestamps_token_id) + 1 >= model.config.vocab_size:
        raise ValueError("no timestamp tokens")
    # generate's max_length: the given one plus the prompt, at most the decoder's positions
    total = min(max_new_tokens + len(prompt), model.config.max_target_positions)
    return GreedySettings(
        prompt=prompt,
        max_new_tokens=total - len(prompt),
        eos=eos,
        suppress=tuple(int(token) for token in (config.suppress_tokens or ())),
        begin_suppress=tuple(int(token) for token in (config.begin_suppress_tokens or ())),
        min_new_tokens=int(getattr(config, "min_new_tokens", None) or 0),
        timestamps=bool(generation.return_timestamps),
    )


class _Layer:
    """One decoder layer's weights, read once (attribute look-ups cost more than a small matmul). Each linear
    map is kept as (bias, weight transposed): `torch.addmm(bias, x, weight_t)` is what `nn.Linear` runs on a
    batch of rows, without the module call around it."""

    def __init__(self, layer: torch.nn.Module) -> None:
        attention, cross = layer.self_attn, layer.encoder_attn
        self.heads, self.head_dim = attention.num_heads, attention.head_dim
        self.scaling, self.cross_scaling = attention.scaling, cross.scaling
        self.norm1 = _norm(layer.self_attn_layer_norm)
        self.q, self.k, self.v, self.o = (
            _linear(attention, name) for name in ("q_proj", "k_proj", "v_proj", "out_proj")
        )
        self.norm2 = _norm(layer.encoder_attn_layer_norm)
        self.cross_q, self.cross_k, self.cross_v, self.cross_o = (
            _linear(cross, name) for name in ("q_proj", "k_proj", "v_proj", "out_proj")
        )
        self.norm3 = _norm(layer.final_layer_norm)
        self.fc1, self.fc2 = _linear(layer, "fc1"), _linear(layer, "fc2")
        self.activation = layer.activation_fn

    @functools.cached_property
    def qkv(self) -> tuple[torch.Tensor, torch.Tensor]:
        """q, k and v as one linear map (k has no bias in Whisper: zeros there, which add nothing)."""
        linears = (self.q, self.k, self.v)
        biases = [bias if bias is not None else torch.zeros_like(weight[0]) for bias, weight in linears]
        return (torch.cat(biases), torch.cat([weight for _, weight in linears], dim=1))


def _norm(norm: torch.nn.LayerNorm) -> tuple:
    return (norm.normalized_shape, norm.weight, norm.bias, norm.eps)


def _linear(module: torch.nn.Module, name: str) -> tuple[torch.Tensor | None, torch.Tensor]:
    linear = getattr(module, name)
    return (linear.bias, linear.weight.t())


def _apply(linear: tuple[torch.Tensor | None, torch.Tensor], rows: torch.Tensor) -> torch.Tensor:
    bias, weight_t = linear
    return torch.mm(rows, weight_t) if bias is None else torch.addmm(bias, rows, weight_t)


def weights_stamp(model: torch.nn.Module) -> tuple[tuple[int, int], ...]:
    """Where each of the model's decoder weights is and how often it was changed in place (torch's version counter,
    which an optimizer step advances): equal stamps, the same weights."""
    return tuple((weight.data_ptr(), weight._version) for weight in model.model.decoder.parameters())


class WhisperGreedy:
    """The greedy loop over one Whisper model's decoder (weights shared with the model; for small models on the
    CPU, q, k and v are also kept as one map)."""

    @classmethod
    def of(cls, model: WhisperForConditionalGeneration) -> WhisperGreedy:
        """The model's loop, kept on the model: made once, and again when its weights changed (moved to another
        device or dtype, or updated in place: a student evaluated between optimizer steps), since the loop keeps
        copies of some (the fused q, k and v)."""
        loop = model.__dict__.get("_kdlib_greedy")
        if loop is None or loop.model is not model or loop.weights != weights_stamp(model):
            loop = model.__dict__["_kdlib_greedy"] = cls(model)
        return loop

    def __init__(self, model: WhisperForConditionalGeneration) -> None:
        self.model = model
        self.weights = weights_stamp(model)
        decoder = model.model.decoder
        self.embed_tokens = decoder.embed_tokens.weight
        self.embed_positions = decoder.embed_positions.weight
        self.final_norm = _norm(decoder.layer_norm)
        self.proj_out = (None, model.proj_out.weight.t())
        self.layers = [_Layer(layer) for layer in decoder.layers]
        config = model.config
        self._shape = (config.d_model, config.decoder_ffn_dim, config.vocab_size, config.decoder_attention_heads)
        # the weights a step multiplies by (the cross-attention keys and values are computed once, at the prompt)
        self.step_weights = (
            sum(
                weight.numel()
                for layer in self.layers
                for _, weight in (
                    layer.q,
                    layer.k,
                    layer.v,
                    layer.o,
                    layer.cross_q,
                    layer.cross_o,
                    layer.fc1,
                    layer.fc2,
                )
            )
            + self.proj_out[1].numel()
        )

    def step_threads(self, rows: int) -> int:
        """The threads a step of `rows` rows runs on: one when its work is below `SINGLE_THREAD_STEP_FLOPS` (a
        small model's step is a hundred small operations, each too small to share: with two threads each waits for
        the other, which on a shared machine may not be running: the tiny teacher's steps measured up to 4× faster
        on one thread of this project's 2-core machine under load, and the same bits), else torch's threads."""
        return 1 if 2 * rows * self.step_weights < SINGLE_THREAD_STEP_FLOPS else torch.get_num_threads()

    @torch.inference_mode()
    def __call__(self, features: torch.Tensor, settings: GreedySettings) -> list[list[int]]:
        """Each row's decoder sequence: the prompt, the generated tokens, and the end-of-text token that ended
        it (none when it reached `max_new_tokens`). The encoder and the prompt step run on torch's threads, the
        later steps on `step_threads` (on a GPU: the device's)."""
        threads = torch.get_num_threads()
        try:
            return self._decode(features, settings)
        finally:
            torch.set_num_threads(threads)

    def _decode(self, features: torch.Tensor, settings: GreedySettings) -> list[list[int]]:
        model, device = self.model, features.device
        batch, vocabulary = features.shape[0], model.config.vocab_size
        encoder_states = model.model.encoder(features).last_hidden_state
        start = len(settings.prompt)
        states, logits = self._prompt(encoder_states, settings.prompt, start + settings.max_new_tokens)
        del encoder_states

        suppress = _vocabulary_mask(settings.suppress, vocabulary, device)
        begin_suppress = _vocabulary_mask(settings.suppress + settings.begin_suppress, vocabulary, device)
        eos, eos_set = torch.tensor(settings.eos, device=device), set(settings.eos)
        stamps = None
        if settings.timestamps:
            stamps = WhisperTimeStampLogitsProcessor(model.generation_config, begin_index=start)
            sequences = torch.empty((batch, start + settings.max_new_tokens), dtype=torch.long, device=device)
            sequences[:, :start] = torch.tensor(settings.prompt, device=device)
        if device.type == "cpu":
            torch.set_num_threads(self.step_threads(batch))
        owner: list[int | None] = list(range(batch))  # the input row of each buffer row (None: it has ended)
        generated: list[list[int]] = [list(settings.prompt) for _ in range(batch)]
        floor, fused = None, False
        live = batch
        for count in range(settings.max_new_tokens):
            mask = begin_suppress if count == 0 else suppress
            if mask is not None:
                logits = torch.where(mask, -float("inf"), logits)
            if count < settings.min_new_tokens:
                logits[:, eos] = -float("inf")
            if stamps is not None:
                logits[:live] = stamps(sequences[:live, : start + count], logits[:live])
            tokens = logits.argmax(-1)
            for row, token in enumerate(tokens.tolist()):
                if owner[row] is not None:
                    generated[owner[row]].append(token)
                    if token in eos_set:
                        owner[row] = None
            alive = [row for row, source in enumerate(owner) if source is not None]
            if not alive or count + 1 == settings.max_new_tokens:
                break
            if stamps is not None:
                sequences[:live, start + count] = tokens[:live]
            if floor is None:
                floor, fused = self.smallest_exact_batch(tokens, start + count, states)
            live = len(alive)
            size = max(live, floor)
            if live < len(owner):  # live rows move to the front; the buffers keep `size` rows
                tail = [row for row in alive if row >= live]
                holes = [row for row in range(live) if owner[row] is None]
                if tail:
                    source, target = torch.tensor(tail, device=device), torch.tensor(holes, device=device)
                    for layer in states:
                        for buffer in layer:
                            buffer[target] = buffer[source]
                    if stamps is not None:
                        sequences[target] = sequences[source]
                    tokens[target] = tokens[source]
                    for hole, row in zip(holes, tail):
                        owner[hole], owner[row] = owner[row], None
                if size < len(owner):
                    del owner[size:]
                    states = [[buffer[:size] for buffer in layer] for layer in states]
                    tokens = tokens[:size]
            logits = self._step(tokens, start + count, states, live, fused)
        return generated

    def smallest_exact_batch(
        self, tokens: torch.Tensor, position: int, states: list[list[torch.Tensor]]
    ) -> tuple[int, bool]:
        """The fewest rows a step of this batch may run on and still give each row the numbers the whole batch
        gives it, bit for bit (matrix products pick their kernels by the number of rows: on this project's CPU,
        fewer than 16 rows of a 32-row batch come out different in the last bits), and whether the steps may
        project queries, keys and values in one product (`fused`: only where that gives the same bits as three,
        at the batch's row count and every count down to the floor; on this CPU from 6 rows on). Found once per
        batch size,
        thread count, device, dtype and decoder shape by running a step on ever fewer of the batch's rows, and
        remembered for the process (`EXACT_ROWS`)."""
        key = (tokens.shape[0], torch.get_num_threads(), str(tokens.device), self.embed_tokens.dtype, *self._shape)
        if key not in EXACT_ROWS:
            # on the batch's own buffers (no copies: a large model's cross-attention states are gigabytes): each
            # step writes its keys and values at `position` before it reads them, and the next real step writes
            # them again
            whole = self._step(tokens, position, states)
            small = tokens.device.type == "cpu" and self.step_threads(tokens.shape[0]) == 1
            fused = small and torch.equal(self._step(tokens, position, states, fused=True), whole)
            floor = tokens.shape[0]
            for rows in range(tokens.shape[0] - 1, 0, -1):
                subset = [[buffer[:rows] for buffer in layer] for layer in states]
                if not torch.equal(self._step(tokens[:rows], position, subset, fused=fused), whole[:rows]):
                    break
                floor = rows
            EXACT_ROWS[key] = (floor, fused)
        return EXACT_ROWS[key]

    def _prompt(
        self, encoder_states: torch.Tensor, prompt: Sequence[int], limit: int
    ) -> tuple[list[list[torch.Tensor]], torch.Tensor]:
        """The decoder on the prompt (every row's the same): each layer's self-attention key and value buffers
        (rows, heads, `limit`, head size; the prompt's filled in) and cross-attention keys and values (rows,
        frames, width: the heads are views), and the logits (float32) of the prompt's last position."""
        batch, frames, width = encoder_states.shape
        length = len(prompt)
        tokens = torch.tensor(prompt, device=encoder_states.device).expand(batch, length)
        hidden = F.embedding(tokens, self.embed_tokens) + self.embed_positions[:length]
        hidden = hidden.reshape(batch * length, width)
        encoded = encoder_states.reshape(batch * frames, width)
        states = []
        for layer in self.layers:
            heads, head_dim = layer.heads, layer.head_dim

            def split(rows: torch.Tensor, positions: int) -> torch.Tensor:
                return rows.view(batch, positions, heads, head_dim).transpose(1, 2)  # noqa: B023

            keys = encoder_states.new_empty((batch, heads, limit, head_dim))
            values = encoder_states.new_empty((batch, heads, limit, head_dim))
            normed = F.layer_norm(hidden, *layer.norm1)
            query = split(_apply(layer.q, normed) * layer.scaling, length)
            keys[:, :, :length] = split(_apply(layer.k, normed), length)
            values[:, :, :length] = split(_apply(layer.v, normed), length)
            attended = F.scaled_dot_product_attention(
                query, keys[:, :, :length], values[:, :, :length], is_causal=True, scale=1.0
            )
            hidden = hidden + _apply(layer.o, attended.transpose(1, 2).reshape(batch * length, width))
            normed = F.layer_norm(hidden, *layer.norm2)
            query = split(_apply(layer.cross_q, normed) * layer.cross_scaling, length)
            cross_key_rows = _apply(layer.cross_k, encoded).view(batch, frames, width)
            cross_value_rows = _apply(layer.cross_v, encoded).view(batch, frames, width)
            cross_keys, cross_values = split(cross_key_rows, frames), split(cross_value_rows, frames)
            attended = F.scaled_dot_product_attention(query, cross_keys, cross_values, scale=1.0)
            hidden = hidden + _apply(layer.cross_o, attended.transpose(1, 2).reshape(batch * length, width))
            normed = F.layer_norm(hidden, *layer.norm3)
            hidden = hidden + _apply(layer.fc2, layer.activation(_apply(layer.fc1, normed)))
            states.append([keys, values, cross_key_rows, cross_value_rows])
        hidden = F.layer_norm(hidden, *self.final_norm)
        logits = _apply(self.proj_out, hidden).view(batch, length, -1)[:, -1, :].to(copy=True, dtype=torch.float32)
        return states, logits

    def _step(
        self,
        tokens: torch.Tensor,
        position: int,
        states: list[list[torch.Tensor]],
        live: int | None = None,
        fused: bool = False,
    ) -> torch.Tensor:
        """The next token's logits (float32) after `tokens` at `position`; writes their keys and values.

        The operations and their order are those of transformers' `WhisperDecoderLayer` with SDPA attention
        (a decoding step of one token per row), on rows instead of (rows, 1) sequences. Attention (per row) runs
        on the first `live` rows only; the other rows are there for the row count of the matrix products
        (`smallest_exact_batch`), their attention read as zeros."""
        rows = tokens.shape[0]
        live = rows if live is None else live
        hidden = F.embedding(tokens, self.embed_tokens) + self.embed_positions[position]
        padded = hidden.new_zeros((rows, hidden.shape[1])) if live < rows else None
        for layer, (keys, values, cross_key_rows, cross_value_rows) in zip(self.layers, states):
            split = (rows, layer.heads, 1, layer.head_dim)
            cross = (live, cross_key_rows.shape[1], layer.heads, layer.head_dim)
            cross_keys = cross_key_rows[:live].view(cross).transpose(1, 2)
            cross_values = cross_value_rows[:live].view(cross).transpose(1, 2)
            normed = F.layer_norm(hidden, *layer.norm1)
            heads = (rows, layer.heads, layer.head_dim)
            if fused:  # one product for q, k and v (`smallest_exact_batch` checked it gives the same bits)
                projected = _apply(layer.qkv, normed)
                width = projected.shape[1] // 3
                query = (projected[:, :width] * layer.scaling).view(split)
                keys[:, :, position] = projected[:, width : 2 * width].view(heads)
                values[:, :, position] = projected[:, 2 * width :].view(heads)
            else:
                query = (_apply(layer.q, normed) * layer.scaling).view(split)
                keys[:, :, position] = _apply(layer.k, normed).view(heads)
                values[:, :, position] = _apply(layer.v, normed).view(heads)
            attended = F.scaled_dot_product_attention(
                query[:live], keys[:live, :, : position + 1], values[:live, :, : position + 1], scale=1.0
            )
            hidden = hidden + _apply(layer.o, _rows(attended, padded, live))
            normed = F.layer_norm(hidden, *layer.norm2)
            query = (_apply(layer.cross_q, normed) * layer.cross_scaling).view(split)
            attended = F.scaled_dot_product_attention(query[:live], cross_keys, cross_values, scale=1.0)
            hidden = hidden + _apply(layer.cross_o, _rows(attended, padded, live))
            normed = F.layer_norm(hidden, *layer.norm3)
            hidden = hidden + _apply(layer.fc2, layer.activation(_apply(layer.fc1, normed)))
        hidden = F.layer_norm(hidden, *self.final_norm)
        return _apply(self.proj_out, hidden).to(copy=True, dtype=torch.float32)


def _rows(attended: torch.Tensor, padded: torch.Tensor | None, live: int) -> torch.Tensor:
    """Attention's output (live rows, heads, 1, head size) as rows of the model's width, in `padded` (zeros
    below the live rows) when the step runs on more rows than are live."""
    if padded is None:
        return attended.view(live, -1)
    padded[:live] = attended.view(live, -1)
    return padded


def _vocabulary_mask(tokens: Sequence[int], size: int, device: torch.device) -> torch.Tensor | None:
    """True at the suppressed tokens (None when there are none)."""
    if not tokens:
        return None
    return torch.isin(torch.arange(size, device=device), torch.tensor(list(tokens), device=device))
